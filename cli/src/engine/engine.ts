import { readFile } from 'node:fs/promises';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import { CacheStore, RuntimeWorker, Solver, type FailedExecState, type PrefetchImageOptions, type RuntimeWorkerDeps } from '@kiln/solver';
import {
  ContentStore,
  writeFileAtomic,
  ImageStore,
  LocalSnapshotter,
  RegistryClient,
  RuncExecutor,
  applyFileAction,
  ensureImage,
  hostPlatform,
  proxiedGlobalFetch,
  unpackLayer,
  explainUnmappedOwner,
  usernsState,
  type EnsuredImage,
  type Platform,
  type RegistryClientOptions,
} from '@kiln/runtime';
import { RootActivity } from './activity.js';
import { CallerCredentials } from './credentials.js';
import { emptySnapshot } from './backend.js';
import { StoreFirstMetaResolver } from './image-meta.js';
import { BuildImages, LayerCache } from './layers.js';
import { ensureRootDir } from './root-dir.js';

/** What a build needs of a solver: building a loaded edge (see {@link KilnEngine.solver}). */
export type BuildSolver = Pick<Solver, 'build'> & {
  /** Starts resolving and unpacking an image a FROM will need (see RuntimeWorker.prefetchImage). */
  prefetchImage?(reference: string, opts: PrefetchImageOptions): void;
  /** The images this build resolved: its exports take their layer blobs (see {@link BuildImages}). */
  readonly images?: BuildImages;
};

/** What a sweep of a root's snapshots may take (see {@link orphanRules}). */
export type OrphanOptions = NonNullable<Parameters<LocalSnapshotter['orphans']>[0]>;
/** A snapshot a killed kiln process left behind (see {@link KilnEngine.sweepOrphans}). */
export type OrphanSnapshot = Awaited<ReturnType<LocalSnapshotter['orphans']>>[number];

/** Options of {@link KilnEngine.open}. */
export interface EngineOptions {
  /** The kiln root (resolved by the caller: `--root`, `KILN_ROOT`, or the default). */
  readonly root: string;
  /**
   * `--parallelism N`: at most N containers (exec ops) and at most min(N, CPUs) of kiln's own
   * CPU-bound ops (file ops, sources, merges) at once. Default: the solver's bounds
   * (`defaultParallelism`: containers `max(8, 4 × CPUs)`, CPU-bound ops the CPU count), so 4
   * independent `sleep 1` stages overlap fully on a 2-core machine, as in BuildKit, which does
   * not cap ops by core count.
   */
  readonly parallelism?: number;
  /** Registry client options (credentials, plain-HTTP hosts). Localhost registries use plain HTTP. */
  readonly registry?: RegistryClientOptions;
  /** The runc binary (default `runc` from PATH). */
  readonly runc?: string;
}

/**
 * What one build hands the worker: local directories by source name, secrets and ssh agents
 * (kept in memory, never written under the kiln root), and the `--allow` entitlements.
 */
export interface BuildSession {
  readonly localDirs: Readonly<Record<string, string>>;
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  readonly ssh?: Readonly<Record<string, string>>;
  readonly allowInsecure?: boolean;
  readonly allowNetworkHost?: boolean;
  readonly platform?: Platform;
  /** `--parallelism N` for this build (overrides the engine's; see {@link EngineOptions.parallelism}). */
  readonly parallelism?: number;
  /** Receives the state of each failed exec, for a debug shell (`--invoke`); see RuntimeWorkerDeps.onFailedExec. */
  readonly onFailedExec?: (state: FailedExecState) => void;
  /** Collects the images this session's worker resolves (see {@link BuildImages}). */
  readonly images?: BuildImages;
}

/**
 * The runtime wired into the solver under one kiln root: content and image stores, the overlay
 * snapshotter, the runc executor, the registry client, the persistent cache store and the layer
 * cache exporters use. One per process; {@link KilnEngine.solver} makes a solver for one build session.
 *
 * Layout of the root: `content/`, `images/` (runtime stores), `snapshots/`, `mounts/`,
 * `executor/`, `runc/` (runtime), `cache/solver.db` (cache store), `solver/` (local-source
 * mirrors and cache mounts), `engine/layers/` (snapshot → layer blob records).
 */
export class KilnEngine {
  readonly root: string;
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly snapshotter: LocalSnapshotter;
  readonly executor: RuncExecutor;
  readonly registry: RegistryClient;
  readonly cache: CacheStore;
  readonly layers: LayerCache;
  readonly meta: StoreFirstMetaResolver;
  /** Registry credentials of the build being served (see {@link CallerCredentials.run}). */
  readonly credentials: CallerCredentials;
  readonly #parallelism: number | undefined;
  /** Builds and prunes of this root across processes. */
  readonly activity: RootActivity;
  /** Deletes what the cache store drops: snapshots, and `cachemount:<id>` directories. */
  readonly #releaser: RuntimeWorker;
  /** Solvers shared by the builds of this engine, one per entitlement set (see {@link KilnEngine.solver}). */
  readonly #shared = new Map<string, Solver>();

  private constructor(opts: EngineOptions, content: ContentStore, images: ImageStore, snapshotter: LocalSnapshotter) {
    this.root = opts.root;
    this.content = content;
    this.images = images;
    this.snapshotter = snapshotter;
    this.executor = new RuncExecutor({ root: opts.root, ...(opts.runc === undefined ? {} : { runc: opts.runc }) });
    this.credentials = new CallerCredentials(opts.registry?.credentials);
    this.registry = new RegistryClient({ ...opts.registry, credentials: this.credentials.provider });
    this.cache = CacheStore.open({
      path: join(opts.root, 'cache', 'solver.db'),
      // Snapshots the cache store drops are removed (kept while a child still stacks on them).
      releaseSnapshot: (id, ctx) => this.#releaser.releaseSnapshot(id, ctx),
    });
    this.layers = new LayerCache(opts.root, content, snapshotter);
    this.meta = new StoreFirstMetaResolver(images, content, this.registry);
    this.#parallelism = opts.parallelism;
    this.activity = new RootActivity(opts.root);
    this.#releaser = new RuntimeWorker(this.workerDeps({ localDirs: {} }));
  }

  /** Opens (creating if needed) every store under `opts.root`. */
  static async open(opts: EngineOptions): Promise<KilnEngine> {
    await ensureRootDir(opts.root);
    const [content, images] = await Promise.all([ContentStore.open(opts.root), ImageStore.open(opts.root)]);
    const snapshotter = await openSnapshotter(opts.root);
    const engine = new KilnEngine(opts, content, images, snapshotter);
    // The shared empty snapshot (scratch) exists before any op asks for it, so concurrent first
    // uses (one per platform of a multi-platform build) do not race to create it.
    await emptySnapshot(engine);
    await engine.recover();
    return engine;
  }

  /**
   * Cleans up after kiln processes that died (SIGKILL, crash) in this root: at open, and in a
   * `kiln daemon` before a command when a build of another process was killed since (see
   * {@link RootActivity.killedBuilds}). Safe while this process builds: it touches only what dead
   * processes left, and the sweep runs only when nothing builds (refused otherwise: the dead
   * marks stay, and the next open or daemon command tries again).
   */
  async recover(): Promise<void> {
    // Containers, bundles and cache-mount users of kiln processes that died (SIGKILL, crash) are
    // cleaned up first: an orphaned container must not keep using a locked cache mount.
    await this.executor.recover().catch(() => 0);
    // Snapshot mounts a killed kiln process left behind (they would keep their snapshots busy).
    await this.snapshotter.recoverMounts().catch(() => 0);
    // Snapshots an earlier prune dropped but could not remove (busy, or the process died first):
    // removed now that those mounts are gone; what still fails stays pending for the next try.
    // Under the prune lock and only while no other process builds here: a build elsewhere may be
    // recording one of them again (an image layer unpacked into the same `layer-<chain>` id).
    // What builds killed mid-way left (see sweepOrphans) goes under the same lock, when a mark
    // of a dead process says a build was killed; refused while another process builds here, the
    // marks stay and the next open tries again.
    const killed = this.activity.killedBuilds();
    if (killed || this.cache.pendingReleaseCount() > 0) {
      await this.activity
        .exclusive(async () => {
          await this.cache.retryReleases();
          // Also when a build was killed after the look above: its mark, found dead under the
          // lock, is dropped once this succeeded, so what it left must go now.
          if (killed || this.activity.killedBuilds()) await this.sweepOrphans();
        })
        .catch(() => undefined);
    }
  }

  /**
   * Removes the snapshots kiln processes killed mid-build left behind (see {@link orphanRules}):
   * a RUN's writable root, a bind mount's scratch layer, a file op's, merge's or container's
   * writable snapshot, a failed RUN's state kept for `--invoke`, results committed but never
   * recorded in the cache store. Call it only inside {@link RootActivity.exclusive}: no other
   * process may be recording or leasing snapshots meanwhile. Returns what it removed.
   */
  sweepOrphans(): Promise<OrphanSnapshot[]> {
    return this.snapshotter.removeOrphans(orphanRules(this.cache));
  }

  /**
   * The solver for one build session: its worker runs the session's ops (its local directories,
   * secrets, ssh agents) on this engine's runtime. Builds share one solver, so identical vertices
   * of concurrent builds (two `kiln build` clients of a daemon) run once — but only builds with
   * the same entitlements (`--allow`), since a shared vertex is checked once. A build with its
   * own `--parallelism` gets a solver of its own.
   */
  solver(session: BuildSession): BuildSolver {
    const images = session.images ?? new BuildImages();
    const worker = new RuntimeWorker(this.workerDeps({ ...session, images }));
    // A frontend resolving a base image's config is about to need its layers: unpack them meanwhile.
    const prefetchImage = (reference: string, opts: PrefetchImageOptions): void => void worker.prefetchImage(reference, opts);
    const n = session.parallelism ?? this.#parallelism;
    if (n !== undefined) {
      const own = new Solver({ worker, store: this.cache, execParallelism: n, parallelism: Math.min(n, availableParallelism()), track: this.#trackOp });
      return { build: (edge, opts) => own.build(edge, opts), prefetchImage, images };
    }
    const key = `${session.allowInsecure === true}|${session.allowNetworkHost === true}`;
    let shared = this.#shared.get(key);
    if (shared === undefined) {
      shared = new Solver({ worker: this.#releaser, store: this.cache, track: this.#trackOp });
      this.#shared.set(key, shared);
    }
    const solver = shared;
    return { build: (edge, opts = {}) => solver.build(edge, { ...opts, worker }), prefetchImage, images };
  }

  /** The runtime services the solver's worker uses (the one place they are bound). */
  workerDeps(session: BuildSession): RuntimeWorkerDeps {
    const platform = session.platform ?? hostPlatform();
    return {
      root: this.root,
      snapshotter: this.snapshotter,
      executor: this.executor,
      content: this.content,
      ensureImage: async (reference, o): Promise<EnsuredImage> => {
        const img = await ensureImage(reference, { ...o, store: this.content, images: this.images, registry: this.registry });
        await this.layers.rememberImage(img);
        session.images?.add(img);
        return img;
      },
      // Rootless kiln: a file whose owner has no id in kiln's namespace is named, with what to do.
      ...(usernsState() === undefined
        ? { unpackLayer, applyFileAction }
        : {
            unpackLayer: (...a: Parameters<typeof unpackLayer>) => explainUnmappedOwner(() => unpackLayer(...a)),
            applyFileAction: (...a: Parameters<typeof applyFileAction>) => explainUnmappedOwner(() => applyFileAction(...a)),
          }),
      // http(s) sources honour this process's HTTP(S)_PROXY/NO_PROXY (a daemon's own, as buildkitd's).
      fetch: proxiedGlobalFetch,
      localDirs: session.localDirs,
      ...(session.secrets === undefined ? {} : { secrets: session.secrets }),
      ...(session.ssh === undefined ? {} : { ssh: session.ssh }),
      ...(session.allowInsecure === undefined ? {} : { allowInsecure: session.allowInsecure }),
      ...(session.allowNetworkHost === undefined ? {} : { allowNetworkHost: session.allowNetworkHost }),
      ...(session.onFailedExec === undefined ? {} : { onFailedExec: session.onFailedExec }),
      // Cache mounts are listed by `kiln du` and removed by `kiln prune` through the cache store.
      recordUsage: (rec) => this.cache.upsertRecord(rec),
      recordSize: (rec) => this.cache.updateRecordSize(rec),
      background: (task) => this.#track(task),
      // Sources lease a fixed-id snapshot (`layer-<chain>`, `local-<digest>`…) before they look it up.
      leaseSnapshot: (id) => this.cache.lease(id),
      platform,
    };
  }

  /** Ends one build mark of this process and closes the cache store. */
  close(): void {
    this.activity.end();
    this.cache.close();
  }

  /** Background work of the workers (see RuntimeWorkerDeps.background), until it settles. */
  readonly #pending = new Set<Promise<unknown>>();

  #track(task: Promise<unknown>): void {
    const settled: Promise<unknown> = task.then(
      () => this.#pending.delete(settled),
      () => this.#pending.delete(settled),
    );
    this.#pending.add(settled);
  }

  /**
   * Op runs of this engine's solvers not settled yet. A cancelled build ends before its ops do:
   * they end once their containers are killed, or (a container that had just exited) commit
   * and record their results. Until then the snapshots they make are theirs alone.
   */
  readonly #ops = new Set<Promise<unknown>>();

  readonly #trackOp = (run: Promise<unknown>): void => {
    const settled: Promise<unknown> = run.then(
      () => this.#ops.delete(settled),
      () => this.#ops.delete(settled),
    );
    this.#ops.add(settled);
  };

  /** No op of this engine is running (see {@link closeWhenSettled}). */
  get opsSettled(): boolean {
    return this.#ops.size === 0;
  }

  /**
   * {@link close} once the ops still running (a cancelled build's) have recorded their results and
   * the workers' background work (a cache mount's size) is recorded. The build mark goes last: a
   * process that exits before (a second Ctrl-C) leaves it, and the next open sweeps what those
   * ops left.
   */
  async closeWhenSettled(): Promise<void> {
    while (this.#pending.size > 0 || this.#ops.size > 0) await Promise.all([...this.#pending, ...this.#ops]);
    this.close();
  }
}

/**
 * Committed snapshots that only a running build holds (the solver worker's newSnapshotId kinds):
 * results of exec, file, merge and diff ops between their commit and their cache record, the
 * intermediate layers of a merge, and failed RUN states kept for a debugger. Every other
 * committed id is kept by the sweep whatever refers to it: image layers (`layer-<chain>`), local
 * context, git and http snapshots (`local-`, `git-`, `http-`, found again by their fixed ids) and
 * the shared `scratch-empty`.
 */
const TRANSIENT_COMMITTED = /^(?:exec|file|merge|diff|failed)-[0-9a-z]+-[0-9a-f]{12}(?:\.part-[0-9a-f]{8})?$/;

/**
 * What a sweep of `root`'s snapshots may take (see LocalSnapshotter.orphans): active snapshots
 * and the transient committed kinds above, once the process that made them is gone, unless the
 * cache store owns them (results, pending removals, leases of this process) or a kept snapshot
 * stacks on them.
 */
export function orphanRules(cache: CacheStore): OrphanOptions {
  const owned = cache.ownedSnapshots();
  return { transient: (id) => TRANSIENT_COMMITTED.test(id), owned: (id) => owned.has(id) };
}

/**
 * The snapshotter of `root`. Probing overlayfs mounts a test overlay (tens to hundreds of ms per
 * process), so the outcome is remembered in `<root>/engine/snapshot-driver` together with the
 * kernel release, and probed again only when the kernel changes.
 */
async function openSnapshotter(root: string): Promise<LocalSnapshotter> {
  const file = join(root, 'engine', 'snapshot-driver');
  const remembered = await readFile(file, 'utf8').catch(() => '');
  const [driver, kernel] = remembered.trim().split(' ');
  if ((driver === 'overlay' || driver === 'copy') && kernel === release()) {
    const s = new LocalSnapshotter({ root, driver });
    await s.init();
    return s;
  }
  const s = new LocalSnapshotter({ root });
  await s.init();
  await writeFileAtomic(file, Buffer.from(`${s.driver} ${release()}\n`));
  return s;
}
