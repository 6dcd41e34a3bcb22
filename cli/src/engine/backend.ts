import { randomBytes, randomUUID } from 'node:crypto';
import type { Container, Definition, Platform, ResolveImageConfigOptions, ResolvedImageConfig } from '@kiln/llb-core';
import { parsePlatform, runnablePlatforms } from '@kiln/runtime';
import type { BackendContainerRequest, BackendSolveOptions, FrontendContainerRequest, FrontendContainerResult, SolveBackend } from '@kiln/gateway';
import { EMPTY_SNAPSHOT, applySourcePolicy, loadGraph, type BuildResult, type ImportedCache, type LoadImportedResult, type ProgressSink, type SolverVertex, type SourcePolicyEngine } from '@kiln/solver';
import type { BuildSolver, KilnEngine } from './engine.js';
import { SnapshotRef } from './snapshot-ref.js';
import { newEngineContainer } from './container.js';
import { policyImageRef } from './source-policy.js';

/** Build-wide options every solve of one build shares. */
export interface BackendOptions {
  readonly progress?: ProgressSink;
  readonly signal?: AbortSignal;
  /** `--no-cache`. */
  readonly noCache?: boolean;
  /** `--no-cache-filter`: vertices that ignore the cache. */
  readonly noCacheFilter?: (vertex: SolverVertex) => boolean;
  /** `--cache-from` caches every solve looks keys up in, and how their results are fetched. */
  readonly cacheImports?: readonly ImportedCache[];
  readonly loadImported?: LoadImportedResult;
  /** The build's secrets (`--secret`), for a frontend container's `secret` mounts. */
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  /** The build's ssh agents (`--ssh`), for a frontend container's `ssh` mounts. */
  readonly ssh?: Readonly<Record<string, string>>;
  /** `--allow security.insecure`: a container process may run insecure. */
  readonly allowInsecure?: boolean;
  /** `--allow network.host`: a container may use the host's network. */
  readonly allowNetworkHost?: boolean;
  /**
   * `--source-policy-file` / `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`: applied to every Definition
   * solved and every image config resolved, whichever frontend asks.
   */
  readonly sourcePolicy?: SourcePolicyEngine;
}

/**
 * The gateway's {@link SolveBackend} over the solver: every Definition a frontend solves becomes a
 * {@link SnapshotRef} (its result snapshot, readable in place). Results stay leased until
 * {@link SolverBackend.release}, so nothing a build still reads is pruned under it.
 */
export class SolverBackend implements SolveBackend {
  readonly #engine: KilnEngine;
  readonly #solver: BuildSolver;
  readonly #opts: BackendOptions;
  readonly #refs: SnapshotRef[] = [];
  readonly #results = new WeakMap<SnapshotRef, BuildResult>();
  readonly #progress: ProgressSink | undefined;
  readonly #session = randomUUID();
  readonly #prefetches = new AbortController();
  /** Containers made for the frontend and not released yet. */
  readonly #containers = new Set<Container>();

  constructor(engine: KilnEngine, solver: BuildSolver, opts: BackendOptions = {}) {
    this.#engine = engine;
    this.#solver = solver;
    this.#opts = opts;
    this.#progress = opts.progress === undefined ? undefined : onceSink(opts.progress);
  }

  async solve(definition: Definition, options: BackendSolveOptions = {}): Promise<SnapshotRef> {
    const signal = options.signal ?? this.#opts.signal;
    const common = {
      // One session per build: its local sources (and what depends on them) are shared by the
      // main solve and by every solve the frontend makes.
      session: this.#session,
      ...(this.#opts.noCache === undefined ? {} : { noCache: this.#opts.noCache }),
      ...(this.#opts.noCacheFilter === undefined ? {} : { noCacheFilter: this.#opts.noCacheFilter }),
      ...(this.#opts.cacheImports === undefined || this.#opts.cacheImports.length === 0 ? {} : { cacheImports: this.#opts.cacheImports }),
      ...(this.#opts.loadImported === undefined ? {} : { loadImported: this.#opts.loadImported }),
    };
    const policy = this.#opts.sourcePolicy;
    const { root } = loadGraph(definition, policy === undefined ? {} : { sourcePolicy: policy });
    const progress = this.#progress;
    const result =
      root === undefined
        ? undefined
        : await this.#solver.build(root, { ...common, ...(signal === undefined ? {} : { signal }), ...(progress === undefined ? {} : { progress }) });
    const ref =
      result === undefined
        ? new SnapshotRef(this.#engine.snapshotter, await emptySnapshot(this.#engine), () => undefined)
        : new SnapshotRef(this.#engine.snapshotter, result.ref.snapshot, () => result.release());
    this.#refs.push(ref);
    if (result !== undefined) this.#results.set(ref, result);
    return ref;
  }

  /**
   * `definition` as the solver ran it: with the build's source policy applied (itself without
   * one), for provenance, whose materials are the sources the build used (BuildKit captures them
   * from the loaded, converted ops). Call it only for a Definition that solved: it does not throw then.
   */
  protected converted(definition: Definition): Definition {
    const policy = this.#opts.sourcePolicy;
    return policy === undefined ? definition : applySourcePolicy(definition, policy, () => undefined);
  }

  /** What this machine runs, as `kiln inspect` lists it: the host's platform, then the emulated ones (binfmt_misc). */
  workerPlatforms(): readonly Platform[] {
    return runnablePlatforms().map(parsePlatform);
  }

  /** The build's session id: local sources of every solve share it; an external frontend gets it as `BUILDKIT_SESSION_ID`. */
  get sessionId(): string {
    return this.#session;
  }

  /**
   * Runs an external frontend's container as buildkitd's gateway does: an active snapshot on the
   * frontend image's result is its writable root (removed afterwards, whatever happened), the
   * metadata files are bound read-only from memory (nosuid, nodev, noexec, mode 0400, as
   * buildkitd's metadata mount), and the executor's stream mode carries fds 0/1.
   */
  async runFrontendContainer(req: FrontendContainerRequest): Promise<FrontendContainerResult> {
    if (!(req.rootfs instanceof SnapshotRef)) throw new Error('runFrontendContainer: the rootfs is not a result of this backend');
    const s = this.#engine.snapshotter;
    const active = `frontend-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    await s.prepare(active, req.rootfs.snapshot);
    try {
      const signal = req.signal ?? this.#opts.signal;
      const onStderr = req.onStderr;
      const result = await this.#engine.executor.run({
        rootfs: await s.mounts(active),
        process: { args: req.args, env: req.env, cwd: req.cwd },
        mounts: req.files.map((f) => ({ kind: 'secret' as const, target: f.path, data: f.data, mode: 0o400 })),
        network: req.network,
        stdio: { stdin: req.stdin, stdout: req.stdout },
        ...(onStderr === undefined ? {} : { onOutput: (l: { readonly line: string }) => onStderr(l.line) }),
        ...(signal === undefined ? {} : { signal }),
      });
      return { exitCode: result.exitCode };
    } finally {
      await s.remove(active).catch(() => undefined);
    }
  }

  /**
   * A frontend's container (BuildKit's gateway NewContainer) on the engine's runc executor, see
   * {@link newEngineContainer}. The refs it mounts stay leased until {@link release}, which also
   * releases the containers still open (the gateway releases them first at the end of a build).
   */
  async newContainer(request: BackendContainerRequest): Promise<Container> {
    const o = this.#opts;
    const c = await newEngineContainer(
      this.#engine,
      {
        ...(o.secrets === undefined ? {} : { secrets: o.secrets }),
        ...(o.ssh === undefined ? {} : { ssh: o.ssh }),
        ...(o.allowInsecure === undefined ? {} : { allowInsecure: o.allowInsecure }),
        ...(o.allowNetworkHost === undefined ? {} : { allowNetworkHost: o.allowNetworkHost }),
        emptySnapshot: () => emptySnapshot(this.#engine),
      },
      request,
    );
    this.#containers.add(c);
    return {
      start: (r) => c.start(r),
      release: async () => {
        await c.release();
        this.#containers.delete(c);
      },
    };
  }

  /** The solver's result behind a ref this backend returned (its cache key graph, for cache export). */
  buildResultOf(ref: SnapshotRef): BuildResult | undefined {
    return this.#results.get(ref);
  }

  /**
   * The engine's resolver (image store first, then the registry). Under a source policy the image
   * is looked up as the policy converts it (BuildKit's bridge evaluates `docker-image://REF`
   * first), so a frontend pins the digest of the converted image; `ref` then says which it was.
   */
  async resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    const policy = this.#opts.sourcePolicy;
    const target = policy === undefined ? ref : policyImageRef(policy, ref, options);
    const resolved = await this.#engine.meta.resolveImageConfig(target, options);
    return target === ref ? resolved : { ...resolved, ref: target };
  }

  /**
   * The gateway calls this after a frontend resolved an image: its FROM usually follows. A
   * prefetch the build never joined stops when the build ends ({@link release}), so it neither
   * outlives a build that failed early nor keeps a `kiln build` process waiting on a download.
   */
  prefetchImage(ref: string, options: ResolveImageConfigOptions): void {
    if (this.#solver.prefetchImage === undefined) return;
    // The image the FROM will pull is the one the policy makes of it; a denied one is not fetched.
    let target = ref;
    try {
      if (this.#opts.sourcePolicy !== undefined) target = policyImageRef(this.#opts.sourcePolicy, ref, options);
    } catch {
      return;
    }
    const outer = options.signal ?? this.#opts.signal;
    if (outer !== undefined) {
      if (outer.aborted) return;
      outer.addEventListener('abort', () => this.#prefetches.abort(), { once: true, signal: this.#prefetches.signal });
    }
    this.#solver.prefetchImage(target, {
      ...(options.platform === undefined ? {} : { platform: options.platform }),
      ...(options.resolveMode === undefined ? {} : { resolveMode: options.resolveMode }),
      signal: this.#prefetches.signal,
    });
  }

  /** Releases open containers, unmounts every result, stops unfinished prefetches and ends the build's leases. */
  async release(): Promise<void> {
    this.#prefetches.abort();
    // Before the refs: a container's mounts stand on their snapshots.
    await Promise.all([...this.#containers].map((c) => c.release().catch(() => undefined)));
    this.#containers.clear();
    const refs = this.#refs.splice(0);
    await Promise.all(refs.map((r) => r.release()));
  }
}

/** The shared empty committed snapshot (an empty Definition's result: scratch). */
export async function emptySnapshot(engine: KilnEngine): Promise<string> {
  const id = EMPTY_SNAPSHOT;
  const s = engine.snapshotter;
  if (await s.stat(id).then(() => true, () => false)) return id;
  const tmp = `${id}.tmp-${process.pid}-${randomUUID()}`;
  await s.prepare(tmp);
  try {
    await s.commit(id, tmp);
  } catch (err) {
    await s.remove(tmp).catch(() => undefined);
    if (!(await s.stat(id).then(() => true, () => false))) throw err;
  }
  return id;
}

/** Forwards each event object once (the scheduler hands a shared vertex's events to every job). */
function onceSink(sink: ProgressSink): ProgressSink {
  const seen = new WeakSet<object>();
  return {
    emit(ev) {
      if (seen.has(ev)) return;
      seen.add(ev);
      sink.emit(ev);
    },
  };
}
