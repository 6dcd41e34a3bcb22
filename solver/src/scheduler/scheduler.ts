import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { CacheKey, slowCacheKey, type CacheKeyWithSelector } from '../cache/cache-key.js';
import type { CacheManager, CacheMatch, ImportedMatch } from '../cache/cache-manager.js';
import type { ImportedCache } from '../cache/remote-import.js';
import { SolverError, throwIfCancelled } from '../errors.js';
import type { ProgressEvent, ProgressSink } from '../progress/events.js';
import { StepLogLimiter, stepLogLimitsFromEnv, type StepLogLimits } from '../progress/step-log-limit.js';
import { InflightIndex, NO_DIGESTS, mergeId } from './inflight.js';
import { LogTail } from './log-tail.js';
import { Semaphore } from './semaphore.js';
import type { BuildOptions, BuildResult, CacheMap, KeyResult, LoadImportedResult, Op, OpContext, OpResourceClass, ResolveOp, SessionAttachables, SessionGroup, SolverEdge, SolverVertex, WorkerRef } from './types.js';
import { VertexError, execDetails } from './vertex-error.js';

/**
 * The default bounds of a {@link Scheduler} on a machine with `cpus` CPUs: `cpu`-class ops at
 * most `cpus` at once, `exec`-class ops (containers) at most `max(8, 4 × cpus)` at once.
 */
export function defaultParallelism(cpus: number): { readonly cpu: number; readonly exec: number } {
  const n = Math.max(1, Math.floor(cpus));
  return { cpu: n, exec: Math.max(8, 4 * n) };
}

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** The default op resolver (a build may bring its own). */
  readonly resolveOp: ResolveOp;
  /** True for a vertex whose result depends on the build's session (a local source). */
  readonly sessionBound?: (vertex: SolverVertex) => boolean;
  readonly cache: CacheManager;
  /**
   * `cpu`-class ops (file ops, sources, merges: kiln's own hashing, copying and compression)
   * running at once across all builds. Default: the number of CPUs ({@link SchedulerOptions.cpus}).
   */
  readonly parallelism?: number;
  /**
   * `exec`-class ops (containers) running at once across all builds, counted separately from
   * {@link SchedulerOptions.parallelism}. Default: `max(8, 4 × CPUs)` — a container mostly waits
   * or uses its own CPU, so 4 independent `sleep 1` stages take 1 s, not 2 s, on 2 cores.
   */
  readonly execParallelism?: number;
  /** The CPU count the defaults derive from. Default `os.availableParallelism()` (tests set it). */
  readonly cpus?: number;
  /** Clock in ms (tests). */
  readonly now?: () => number;
  /** Output lines kept for a failed vertex's error. Default 20. */
  readonly logTailLines?: number;
  /**
   * How much of a step's output reaches the progress stream. Default: BuildKit's, or
   * `BUILDKIT_STEP_LOG_MAX_SIZE`/`BUILDKIT_STEP_LOG_MAX_SPEED` of this process.
   */
  readonly stepLogLimits?: StepLogLimits;
  /**
   * Given each op run (with the recording of its results) as it starts. A cancelled build ends
   * at once, while its ops run on until their containers are killed, or finish, commit and record
   * their results: the owner of the store closes it (and ends its build mark) after them.
   */
  readonly track?: (run: Promise<unknown>) => void;
}

interface EdgeKey {
  /** The key a result of this output is saved under (every input key, definition and content). */
  readonly key: CacheKey;
  /**
   * The key dependents may look up through, or undefined when this output matched nothing that
   * is stored (BuildKit's edge `keys`, which come only from cache matches): a vertex that ignored
   * the cache, or one downstream of it that missed, offers no definition key to its dependents,
   * so they can only match by the content key of its result (solver/edge.go probeCache,
   * checkDepMatchPossible). Without this, a RUN on a stage rebuilt by --no-cache-filter reused
   * its old result, made from the stage's old files.
   */
  readonly match: CacheKey | undefined;
  readonly hit: CacheMatch | ImportedMatch | undefined;
  /**
   * The merge id of this output: equal for outputs of two vertices that are the same work once
   * their keys are known (see {@link mergeId}), whatever their digests. Two builds' `RUN`s below their
   * own local sources get the same id once the context's content checksums are equal.
   */
  readonly id: string;
}

/**
 * How a build takes part in a vertex (absent from {@link VertexState.roles}: `own`):
 * - `own`: the vertex is in the build's graph: the build sees its progress and fails with its error;
 * - `follow`: the build waits for this run in place of a vertex of its own with the same key
 *   (BuildKit's merged edge): it sees the progress, and reports a failure with its own vertex;
 * - `quiet`: the build only keeps the vertex running for a run it follows (an input of it).
 */
type Role = 'own' | 'follow' | 'quiet';
const RANK: Readonly<Record<Role, number>> = { own: 0, follow: 1, quiet: 2 };

interface Job {
  readonly resolveOp: ResolveOp;
  readonly session: string;
  readonly attachables: SessionAttachables | undefined;
  readonly signal: AbortSignal | undefined;
  readonly progress: ProgressSink | undefined;
  readonly states: Set<VertexState>;
  readonly leases: Array<() => void>;
  readonly imports: readonly ImportedCache[];
  readonly loadImported: LoadImportedResult | undefined;
  /** Called with the first error of a vertex this build needs: the build fails with it at once. */
  readonly failed: (err: VertexError) => void;
  /** The build has returned: it joins nothing more (work it started goes on for the others). */
  ended: boolean;
}

/** The shared state of one vertex while some build needs it (BuildKit's sharedOp). */
class VertexState {
  readonly id: string;
  readonly vertex: SolverVertex;
  readonly ignoreCache: boolean;
  readonly jobs = new Set<Job>();
  /** The role of each build in `jobs` that is not `own`. */
  readonly roles = new Map<Job, Exclude<Role, 'own'>>();
  readonly history: ProgressEvent[] = [];
  /** The last lines of its output, for its error (made at its first output). */
  tail: LogTail | undefined;
  readonly controller = new AbortController();
  op: Op | undefined;
  cacheMap: Promise<CacheMap> | undefined;
  readonly keys = new Map<number, Promise<EdgeKey>>();
  readonly slowDigests = new Map<number, Promise<string>>();
  /** Imported results being fetched, by output. */
  readonly imported = new Map<number, Promise<WorkerRef | undefined>>();
  exec: Promise<readonly WorkerRef[]> | undefined;
  /** {@link exec} has settled (this vertex is no longer in flight). */
  execSettled = false;
  /** The in-flight vertex this one takes its result from (same cache key), while it does. */
  owner: VertexState | undefined;
  /** The result of each output taken from {@link owner} (or run here after all); made when first needed. */
  follows: Map<number, Promise<WorkerRef>> | undefined;
  /** The states of the inputs, once the first key computation chose them; every build in this one is in them too. */
  inputs: readonly VertexState[] | undefined;
  cachedEmitted = false;
  /** Started and not yet done or failed. */
  running = false;
  /** Started by #announce (output while its key was computed) and not run since. */
  announced = false;
  /** Its cache map (the key computation: a download) has finished. */
  keyed = false;
  failed = false;
  /**
   * The run failed while a build with this vertex in its own graph was still in it. A run that
   * failed with only followers left ran for them in the session of builds that are gone (an ssh
   * agent stopped with its build): they run the step themselves rather than take that failure.
   */
  failedOwned = false;
  error: unknown;
  /** The log limits of the current run (made when it starts). */
  logLimit: StepLogLimiter | undefined;
  /** The attachables of the builds in {@link jobs}, made when an op first asks. */
  #group: SessionGroup | undefined;

  constructor(id: string, vertex: SolverVertex, ignoreCache: boolean) {
    this.id = id;
    this.vertex = vertex;
    this.ignoreCache = ignoreCache;
  }

  /**
   * Secrets and ssh agents of the builds in this vertex, first joined first, looked up at each
   * use: the op was made with the worker of the build that reached the vertex first, which may
   * have left since (BuildKit's session.Group of a shared op).
   */
  get group(): SessionGroup {
    const jobs = this.jobs;
    const first = <T>(pick: (a: SessionAttachables) => T | undefined): T | undefined => {
      for (const j of jobs) {
        const v = j.attachables === undefined ? undefined : pick(j.attachables);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    return (this.#group ??= {
      secret: (id) => first((a) => a.secrets?.[id]),
      sshSockets: (id) => {
        const all: string[] = [];
        for (const j of jobs) {
          const v = j.attachables?.ssh?.[id];
          if (v !== undefined) all.push(v);
        }
        return all;
      },
      onFailedExec: () => first((a) => a.onFailedExec),
    });
  }
}

/**
 * Runs vertex graphs: merges identical vertices (same digest) within a build and across
 * concurrent builds, computes BuildKit-model cache keys (definition keys first, content keys when
 * those miss), loads hits from the cache store and executes misses on the ops: at most
 * `parallelism` `cpu`-class and `execParallelism` `exec`-class ops at a time (two separate
 * bounds, see {@link defaultParallelism}). Independent vertices run concurrently. Aborting a build's signal
 * stops the ops only that build needed; the store is only written after an op succeeded.
 */
export class Scheduler {
  readonly #resolveOp: ResolveOp;
  readonly #sessionBound: (vertex: SolverVertex) => boolean;
  readonly #bound = new WeakMap<SolverVertex, boolean>();
  readonly #cache: CacheManager;
  readonly #sems: Readonly<Record<OpResourceClass, Semaphore>>;
  readonly #now: () => number;
  readonly #tailLines: number;
  readonly #logLimits: StepLogLimits;
  readonly #track: ((run: Promise<unknown>) => void) | undefined;
  readonly #actives = new Map<string, VertexState>();
  /** Vertices running or about to, by the merge id of each output asked for (see EdgeKey.id). */
  readonly #inflight = new InflightIndex<VertexState>();
  /** The result known for each cache key computed (for cache export, {@link BuildResult.cacheResult}). */
  readonly #keyResults = new WeakMap<CacheKey, KeyResult>();

  constructor(opts: SchedulerOptions) {
    this.#resolveOp = opts.resolveOp;
    this.#sessionBound = opts.sessionBound ?? (() => false);
    this.#cache = opts.cache;
    const bounds = defaultParallelism(opts.cpus ?? availableParallelism());
    this.#sems = {
      cpu: new Semaphore(opts.parallelism ?? bounds.cpu),
      exec: new Semaphore(opts.execParallelism ?? bounds.exec),
    };
    this.#now = opts.now ?? Date.now;
    this.#tailLines = opts.logTailLines ?? 20;
    this.#logLimits = opts.stepLogLimits ?? stepLogLimitsFromEnv(process.env);
    this.#track = opts.track;
  }

  /** Number of vertices currently shared by running builds. */
  get activeVertices(): number {
    return this.#actives.size;
  }

  /** Number of cache keys (merge ids) whose run is in flight, for other vertices to take. */
  get inflightKeys(): number {
    return this.#inflight.size;
  }

  /** Builds `target` and returns its result; throws a {@link VertexError} if a vertex fails. */
  async build(target: SolverEdge, opts: BuildOptions = {}): Promise<BuildResult> {
    // Every vertex a build joins is one it needs (a key is only computed, a step only run, for
    // the target), so the first failure anywhere ends the build, as a failed edge ends a BuildKit
    // solve: the other branches stop (#leave) instead of running to their end first. Waiting on
    // the target alone reported a failed stage only once an earlier COPY --from's stage was done.
    let failed: (err: VertexError) => void = noop;
    const failure = new Promise<never>((_, reject) => (failed = reject));
    failure.catch(noop);
    const job: Job = {
      resolveOp: opts.resolveOp ?? this.#resolveOp,
      // Without a session, a build shares session-bound vertices with nobody.
      session: opts.session ?? randomUUID(),
      attachables: opts.attachables,
      signal: opts.signal,
      progress: opts.progress,
      states: new Set(),
      leases: [],
      imports: opts.cacheImports ?? [],
      loadImported: opts.loadImported,
      failed: (err) => failed(err),
      ended: false,
    };
    const onAbort = (): void => {
      for (const st of job.states) this.#leave(st, job);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      throwIfCancelled(opts.signal);
      const root = this.#state(target.vertex, job, opts);
      const cancelled = new Promise<never>((_, reject) => {
        if (opts.signal === undefined) return;
        const fail = (): void => reject(new SolverError('SOLVER_CANCELLED', 'build cancelled', { cause: opts.signal?.reason }));
        if (opts.signal.aborted) fail();
        else opts.signal.addEventListener('abort', fail, { once: true });
      });
      cancelled.catch(() => undefined);
      const { ref, cached } = await Promise.race([this.#result(root, target.index, job, opts), cancelled, failure]);
      const { key } = await this.#edgeKey(root, target.index, job, opts);
      const keyResults = this.#keyResults;
      // The result keeps its own snapshot; the steps' leases end with the build (the snapshots
      // the result is made of are its parents, which a prune cannot remove while it exists).
      return { ref, cached, release: this.#cache.store.lease(ref.snapshot), cacheKey: key, cacheResult: (k) => keyResults.get(k) };
    } finally {
      job.ended = true;
      opts.signal?.removeEventListener('abort', onAbort);
      for (const st of [...job.states]) this.#leave(st, job);
      for (const l of job.leases) l();
    }
  }

  #state(v: SolverVertex, job: Job, opts: BuildOptions): VertexState {
    const ignore = v.options.ignoreCache === true || opts.noCache === true || opts.noCacheFilter?.(v) === true;
    // A vertex that ignores the cache is different work from the same vertex using it (BuildKit
    // gives it another digest), so they are not merged.
    // Session-bound work (and everything built on it) is only shared within its session.
    const scope = this.#isBound(v) ? `@${job.session}` : '';
    const id = `${v.digest}${ignore ? '+nocache' : ''}${scope}`;
    let st = this.#actives.get(id);
    if (st === undefined || st.failed) {
      st = new VertexState(id, v, ignore);
      this.#actives.set(id, st);
    }
    this.#join(st, job);
    return st;
  }

  /**
   * `job` needs `st`, and so everything `st` is made of: a build that joins a shared vertex whose
   * key another build computed never looks at its inputs itself, yet must keep them running when
   * that other build leaves (fails, is cancelled), and sees their progress.
   */
  #join(st: VertexState, job: Job, role: Role = 'own'): void {
    if (job.ended) return;
    const had = st.jobs.has(job) ? (st.roles.get(job) ?? 'own') : undefined;
    if (had !== undefined && RANK[role] >= RANK[had]) return;
    if (had === undefined) {
      st.jobs.add(job);
      job.states.add(st);
    }
    if (role === 'own') st.roles.delete(job);
    else st.roles.set(job, role);
    // Late joiners see what already happened to a shared vertex (once: not again when a build
    // that followed it turns out to need it itself).
    if (role !== 'quiet' && (had === undefined || had === 'quiet') && job.progress !== undefined) for (const ev of st.history) job.progress.emit(ev);
    for (const input of st.inputs ?? []) this.#join(input, job, role === 'own' ? 'own' : 'quiet');
    if (st.owner !== undefined) this.#join(st.owner, job, role === 'quiet' ? 'quiet' : 'follow');
  }

  /** A build still in `st` to do its work for: `job` if it is, else another (`job` when none is left). */
  #live(st: VertexState, job: Job): Job {
    if (st.jobs.has(job)) return job;
    for (const j of st.jobs) return j;
    return job;
  }

  /** Leases `snapshot` until the end of a build still in `st` (released at once when none is). */
  #lease(st: VertexState, job: Job, snapshot: string): void {
    const release = this.#cache.store.lease(snapshot);
    const holder = this.#live(st, job);
    if (holder.ended) release();
    else holder.leases.push(release);
  }

  /** The states of `st`'s inputs: those chosen first, joined by every build in `st`. */
  #inputs(st: VertexState, job: Job, opts: BuildOptions): readonly VertexState[] {
    if (st.inputs === undefined) {
      const inputs = st.vertex.inputs.map((e) => this.#state(e.vertex, job, opts));
      st.inputs = inputs;
      for (const j of st.jobs) for (const input of inputs) this.#join(input, j, st.roles.has(j) ? 'quiet' : 'own');
    }
    return st.inputs;
  }

  #isBound(v: SolverVertex): boolean {
    let b = this.#bound.get(v);
    if (b === undefined) {
      b = this.#sessionBound(v) || v.inputs.some((e) => this.#isBound(e.vertex));
      this.#bound.set(v, b);
    }
    return b;
  }

  #leave(st: VertexState, job: Job): void {
    if (!st.jobs.delete(job)) return;
    const role = st.roles.get(job);
    st.roles.delete(job);
    // A step still running when its build leaves it ends as cancelled for that build (BuildKit's
    // `#N CANCELED`): its own error event, if the op stops, reaches only the builds still in it.
    // A step shown only for its key computation (a download), which finished, and not run since
    // (a later step hit) is done, as BuildKit completes a source vertex after its CacheMap.
    if (st.running && role !== 'quiet') {
      const t = this.#now();
      job.progress?.emit(st.announced && st.keyed ? { kind: 'vertex.done', vertex: st.vertex.digest, time: t } : { kind: 'vertex.error', vertex: st.vertex.digest, error: 'cancelled', time: t });
    }
    job.states.delete(st);
    if (st.jobs.size === 0) {
      st.controller.abort(job.signal?.reason);
      if (this.#actives.get(st.id) === st) this.#actives.delete(st.id);
      this.#inflight.delete(st);
    }
  }

  #emit(st: VertexState, ev: ProgressEvent): void {
    if (ev.kind === 'vertex.started') {
      st.running = true;
      // Each run is limited on its own, its speed allowance counted from its start.
      st.logLimit = new StepLogLimiter(this.#logLimits, ev.time);
    } else if (ev.kind === 'vertex.done' || ev.kind === 'vertex.error' || ev.kind === 'vertex.cached') st.running = false;
    st.history.push(ev);
    // The builds that follow this run see it as it is (one event object: bake shows it once).
    for (const j of st.jobs) if (st.roles.size === 0 || st.roles.get(j) !== 'quiet') j.progress?.emit(ev);
  }

  /**
   * Output of an op that has not started (a source fetched to compute its key: an http source's
   * download) comes after its step is shown by name, as BuildKit notifies a source vertex's start
   * around its CacheMap; else the printers title the step by its digest.
   */
  #announce(st: VertexState): void {
    if (st.running || st.history.some((e) => e.kind === 'vertex.started')) return;
    const v = st.vertex;
    st.announced = true;
    this.#emit(st, { kind: 'vertex.started', vertex: v.digest, name: v.name, inputs: v.inputs.map((e) => e.vertex.digest), time: this.#now() });
  }

  #ctx(st: VertexState): OpContext {
    return {
      signal: st.controller.signal,
      vertex: st.vertex,
      group: st.group,
      log: (stream, data) => {
        this.#announce(st);
        // The failure's last lines come from the real output, not the clipped stream: a test
        // suite that failed after 3 MB of output still shows the lines that say why.
        (st.tail ??= new LogTail(this.#tailLines)).push(data);
        const time = this.#now();
        // A progress event per line shown (a RUN's output comes a read of many lines at a time).
        (st.logLimit ??= new StepLogLimiter(this.#logLimits, time)).clipLines(stream, data, time, (shown) =>
          this.#emit(st, { kind: 'log', vertex: st.vertex.digest, stream, data: shown, time }),
        );
      },
      status: (id, current, total, done) => {
        this.#announce(st);
        const t = this.#now();
        this.#emit(st, {
          kind: 'status',
          vertex: st.vertex.digest,
          id,
          current,
          ...(total === undefined ? {} : { total }),
          ...(done === true ? { completed: t } : {}),
          time: t,
        });
      },
    };
  }

  #op(st: VertexState, job: Job): Op {
    st.op ??= job.resolveOp(st.vertex);
    return st.op;
  }

  /** The cache key of output `index` of `st`, and a stored result if one matches. */
  #edgeKey(st: VertexState, index: number, job: Job, opts: BuildOptions): Promise<EdgeKey> {
    let p = st.keys.get(index);
    if (p === undefined) {
      p = this.#computeEdgeKey(st, index, job, opts);
      p.catch(noop); // failures surface where the key is awaited; never as an unhandled rejection
      st.keys.set(index, p);
      // A vertex whose key is new (never stored) runs in this build whatever else happens: a key
      // built on a new key is new too, and a content key needs the result. So it starts now, not
      // when the root's whole key is known: `COPY --from=a` runs as soon as stage a is done, while
      // stage b still runs (BuildKit's edges progress independently too). Its outcome is awaited
      // where needed. A known key without a result (pruned) may still lead to a stored result of a
      // later vertex, which then needs nothing of this one: it waits to be asked.
      p.then((k) => {
        // (a defined match is a key with stored ids: see #matched)
        if (k.hit === undefined && !st.failed && !st.controller.signal.aborted && k.match === undefined) {
          this.#result(st, index, this.#live(st, job), opts).catch(noop);
        }
      }, noop);
    }
    return p;
  }

  async #computeEdgeKey(st: VertexState, index: number, job: Job, opts: BuildOptions): Promise<EdgeKey> {
    const v = st.vertex;
    const op = this.#op(st, job);
    if (st.cacheMap === undefined) {
      st.cacheMap = op.cacheMap(this.#ctx(st));
      st.cacheMap.then(() => (st.keyed = true), noop);
    }
    const cacheMap = st.cacheMap;
    const inputStates = this.#inputs(st, job, opts);
    const inputKeyPromises = v.inputs.map((e, i) => this.#edgeKey(inputStates[i] ?? this.#state(e.vertex, job, opts), e.index, job, opts));
    // An input without a result whose key cannot lead to a stored key of this vertex (a new key,
    // or a source key nothing stored for this vertex links from) will run whatever happens here,
    // so its content digest is started at once, not after every other input's key: independent
    // branches joined by a COPY run in parallel, and a COPY --from=<image> pulls while an earlier
    // stage runs (BuildKit's edges make progress on each dep independently). An input whose key
    // does link to this vertex (an imported min-mode record, a pruned result) waits: this vertex's
    // own key may still hit, and then the input is never needed.
    for (const [i, ikp] of inputKeyPromises.entries()) {
      void Promise.all([cacheMap, ikp]).then(
        ([cm, ik]) => {
          const dep = cm.deps[i];
          if (ik.hit !== undefined || dep?.computeDigest === undefined) return;
          const link = { input: i, output: index, digest: cm.digest, selector: dep.selector ?? '' };
          if (ik.match !== undefined && this.#cache.linksOut(ik.match, link, job.imports)) return;
          this.#slowDigest(st, i, cm, this.#live(st, job), opts);
        },
        noop,
      );
    }
    const [cm, inputKeys] = await Promise.all([
      // A failing cache map (an image that cannot be resolved) is this vertex's error.
      cacheMap.catch((err: unknown) => {
        throw this.#fail(st, err);
      }),
      Promise.all(inputKeyPromises),
    ]);
    const deps: CacheKeyWithSelector[][] = inputKeys.map((ik, i) => [{ selector: cm.deps[i]?.selector ?? '', key: ik.key }]);
    // Lookups go only through the inputs' matchable keys (see EdgeKey.match).
    const matchDeps: CacheKeyWithSelector[][] = inputKeys.map((ik, i) => (ik.match === undefined ? [] : [{ selector: cm.deps[i]?.selector ?? '', key: ik.match }]));
    const usesCache = !st.ignoreCache && op.cacheable !== false;
    const slow = cm.deps.map((d, i) => ({ d, i })).filter(({ d }) => d.computeDigest !== undefined);
    // Looks `key` up through its matchable form (every input offers a key). A miss that is this
    // vertex's last probe offers the dependents that form only when something is stored under it.
    const probe = (key: CacheKey, md: CacheKeyWithSelector[][], last: boolean, id: () => string): EdgeKey => {
      const match = md.every((d) => d.length > 0) ? new CacheKey(cm.digest, index, md) : undefined;
      const hit = usesCache && match !== undefined ? (this.#cache.load(match) ?? this.#cache.loadImported(match, job.imports)) : undefined;
      if (hit !== undefined && match !== undefined) return this.#hit(st, key, match, hit, id());
      return { key, match: usesCache && last ? this.#matched(match, job) : undefined, hit: undefined, id: last ? id() : '' };
    };
    const fast = probe(new CacheKey(cm.digest, index, deps), matchDeps, slow.length === 0, () => mergeId(cm, index, inputKeys, NO_DIGESTS, op.cacheable !== false, st.ignoreCache));
    if (fast.hit !== undefined || slow.length === 0) return fast;
    // The definition key missed: key the inputs by content (BuildKit's slow cache).
    const withSlow = deps.map((d) => [...d]);
    const matchSlow = matchDeps.map((d) => [...d]);
    const digests: Array<string | undefined> = [];
    await Promise.all(
      slow.map(async ({ i }) => {
        const dg = this.#slowDigest(st, i, cm, job, opts);
        if (dg === undefined) return;
        digests[i] = await dg;
        const k = { selector: '', key: slowCacheKey(digests[i]) };
        withSlow[i]?.push(k);
        matchSlow[i]?.push(k);
      }),
    );
    return probe(new CacheKey(cm.digest, index, withSlow), matchSlow, true, () => mergeId(cm, index, inputKeys, digests, op.cacheable !== false, st.ignoreCache));
  }

  /** `key` when it matches a stored key (a result may be gone: pruned), else undefined. */
  #matched(key: CacheKey | undefined, job: Job): CacheKey | undefined {
    if (key === undefined) return undefined;
    // A root key (a source) is always offered, as BuildKit's Query(nil, …) of a source.
    return key.isRoot || this.#cache.ids(key, job.imports).length > 0 ? key : undefined;
  }

  /** The content digest of input `i` (BuildKit's slow cache key), computed once per vertex. */
  #slowDigest(st: VertexState, i: number, cm: CacheMap, job: Job, opts: BuildOptions): Promise<string> | undefined {
    const input = st.vertex.inputs[i];
    const compute = cm.deps[i]?.computeDigest;
    if (input === undefined || compute === undefined) return undefined;
    let dg = st.slowDigests.get(i);
    if (dg === undefined) {
      dg = (async () => {
        const j = this.#live(st, job);
        const { ref } = await this.#result(this.#inputs(st, j, opts)[i] ?? this.#state(input.vertex, j, opts), input.index, j, opts);
        try {
          return await compute(ref, st.controller.signal);
        } catch (err) {
          // A cancel passes as it came (this vertex never started: nothing to show).
          if (st.controller.signal.aborted || (err instanceof SolverError && err.code === 'SOLVER_CANCELLED')) throw err;
          // The input is there but what this vertex selects of it is not (COPY of a missing
          // path): this vertex's failure, reported at its Dockerfile line as BuildKit does.
          throw this.#fail(st, err);
        }
      })();
      dg.catch(noop);
      st.slowDigests.set(i, dg);
    }
    return dg;
  }

  /** Reports a cache hit (once per vertex, like BuildKit's `#N CACHED`). */
  #hit(st: VertexState, key: CacheKey, match: CacheKey, hit: CacheMatch | ImportedMatch, id: string): EdgeKey {
    this.#keyResults.set(key, 'imported' in hit ? { kind: 'imported', result: hit.imported } : { kind: 'snapshot', snapshot: hit.record.snapshot, created: hit.record.created });
    if (!st.cachedEmitted) {
      st.cachedEmitted = true;
      this.#emit(st, { kind: 'vertex.cached', vertex: st.vertex.digest, name: st.vertex.name, time: this.#now() });
    }
    return { key, match, hit, id };
  }

  /** The result of output `index` of `st`: from the cache or by running the op. */
  async #result(st: VertexState, index: number, job: Job, opts: BuildOptions): Promise<{ ref: WorkerRef; cached: boolean }> {
    const edgeKey = await this.#edgeKey(st, index, job, opts);
    const { hit, key } = edgeKey;
    if (hit !== undefined && 'imported' in hit) {
      const ref = await this.#fetchImported(st, index, key, hit, job);
      if (ref !== undefined) {
        this.#lease(st, job, ref.snapshot);
        return { ref, cached: true };
      }
    } else if (hit !== undefined) {
      this.#lease(st, job, hit.record.snapshot);
      return { ref: { snapshot: hit.record.snapshot, size: hit.record.size }, cached: true };
    }
    const ref = await this.#run(st, index, edgeKey, job, opts);
    this.#lease(st, job, ref.snapshot);
    return { ref, cached: false };
  }

  /**
   * The result of output `index` of `st`, whose key missed: taken from a vertex with the same
   * merge id that is in flight (BuildKit's edge merging, scheduler.go mergeTo), else run here.
   * Once `st` runs itself it is in flight for the others in turn.
   */
  #run(st: VertexState, index: number, { key, id }: EdgeKey, job: Job, opts: BuildOptions): Promise<WorkerRef> {
    if (st.exec === undefined) {
      let taken = st.follows?.get(index);
      if (taken === undefined && id !== '') {
        // BuildKit (index.go LoadOrStore): an edge that ignores the cache is never merged into one
        // that does not, while one that uses the cache may take the new result of one that ignores it.
        const owner = this.#inflight.get(id) ?? (st.ignoreCache ? undefined : this.#inflight.get(`!${id}`));
        if (owner !== undefined && owner !== st && !owner.failed && !owner.controller.signal.aborted && owner.exec !== undefined) {
          taken = this.#follow(st, owner, owner.exec, index, key, id, job, opts);
          taken.catch(noop);
          (st.follows ??= new Map()).set(index, taken);
        }
      }
      if (taken !== undefined) return taken;
    }
    return this.#own(st, index, id, job, opts);
  }

  /** Output `index` of `st`'s own run (started on first need), in flight for others meanwhile. */
  async #own(st: VertexState, index: number, id: string, job: Job, opts: BuildOptions): Promise<WorkerRef> {
    if (st.exec === undefined) {
      st.exec = this.#exec(st, this.#live(st, job), opts);
      st.exec.catch(noop);
      this.#track?.(st.exec);
    }
    if (id !== '' && !st.execSettled && !st.failed) this.#inflight.add(id, st);
    const refs = await st.exec;
    const ref = refs[index];
    if (ref === undefined) {
      throw new SolverError('SOLVER_INVALID_DEFINITION', `vertex ${st.vertex.name} has no output ${index}`);
    }
    return ref;
  }

  /**
   * `st` waits for `owner`'s run (same key) instead of running (BuildKit's merged edge). Its
   * builds join the owner, so that the run goes on when the owner's own builds leave it (fail
   * fast, Ctrl-C), and see its progress; its inputs only quietly. A failure of the run itself is
   * reported by each build with its own vertex (its own Dockerfile line); when the owner stops
   * for any other reason (an input of its build failed), or fails after all its own builds left
   * (see VertexState.failedOwned), `st` runs itself.
   */
  async #follow(st: VertexState, owner: VertexState, run: Promise<readonly WorkerRef[]>, index: number, key: CacheKey, id: string, job: Job, opts: BuildOptions): Promise<WorkerRef> {
    st.owner = owner;
    for (const j of st.jobs) this.#join(owner, j, st.roles.has(j) ? 'quiet' : 'follow');
    try {
      const ref = (await run)[index];
      if (ref === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', `vertex ${owner.vertex.name} has no output ${index}`);
      const ownerKey = owner.keys.get(index);
      const known = ownerKey === undefined ? undefined : this.#keyResults.get((await ownerKey).key);
      if (known !== undefined) this.#keyResults.set(key, known);
      return ref;
    } catch (err) {
      if (err instanceof VertexError && err.vertex === owner.vertex.digest && owner.failedOwned) throw this.#mirror(st, err);
      st.owner = undefined;
      // Every build that waited here has left (cancelled): nobody needs the step any more, so it
      // is neither prepared nor run, nor offered to others as in flight.
      throwIfCancelled(st.controller.signal);
      return this.#own(st, index, id, this.#live(st, job), opts);
    }
  }

  /** `st`'s own report of the failure of the run it followed: the same command, exit code and output. */
  #mirror(st: VertexState, err: VertexError): VertexError {
    st.failed = true;
    if (st.error instanceof VertexError) return st.error;
    const v = st.vertex;
    const verr = new VertexError(
      { vertex: v.digest, name: v.name, op: err.op, locations: v.options.locations ?? [], command: err.command, exitCode: err.exitCode, logTail: err.logTail },
      err.cause,
    );
    st.error = verr;
    for (const j of st.jobs) if (!st.roles.has(j)) j.failed(verr);
    return verr;
  }

  /**
   * Fetches an imported result (once per vertex output) and records it in the local store under
   * the vertex's key, so the next build finds it locally (BuildKit's combined cache manager saves
   * a result loaded from an import to the main one). Undefined when it cannot be loaded (a blob
   * missing from the cache, a corrupt layer): the reason goes to the vertex's log and the op runs
   * instead, as a cache source that does not work only costs the build its cache.
   */
  #fetchImported(st: VertexState, index: number, key: CacheKey, hit: ImportedMatch, job: Job): Promise<WorkerRef | undefined> {
    let p = st.imported.get(index);
    if (p === undefined) {
      const load = job.loadImported;
      p = (async () => {
        try {
          if (load === undefined) throw new SolverError('SOLVER_CACHE_IMPORT', 'no loader for imported cache results');
          const ref = await load(hit.imported, this.#ctx(st));
          const created = hit.imported.createdAt > 0 ? { created: hit.imported.createdAt } : {};
          const rec = this.#cache.save(key, { snapshot: ref.snapshot, size: ref.size, description: st.vertex.name, ...created });
          this.#keyResults.set(key, { kind: 'snapshot', snapshot: rec.snapshot, created: rec.created });
          for (const j of st.jobs) j.leases.push(this.#cache.store.lease(ref.snapshot));
          return ref;
        } catch (err) {
          throwIfCancelled(st.controller.signal);
          const why = err instanceof Error ? err.message : String(err);
          this.#ctx(st).log(2, new TextEncoder().encode(`cannot load the result from cache ${hit.imported.source.name}: ${why}; running the step\n`));
          this.#keyResults.delete(key);
          return undefined;
        }
      })();
      p.catch(noop);
      this.#track?.(p);
      st.imported.set(index, p);
    }
    return p;
  }

  async #exec(st: VertexState, job: Job, opts: BuildOptions): Promise<readonly WorkerRef[]> {
    const v = st.vertex;
    const op = this.#op(st, job);
    let unprepare: (() => void) | undefined;
    try {
      // Announced before the inputs are awaited: in a chain of RUNs the next container's runtime
      // starts while the current one runs. A failure here is this vertex's, like the run's.
      unprepare = op.prepare?.();
      // For a build still in this vertex: the one that started it may have left since.
      const j = this.#live(st, job);
      const inputStates = this.#inputs(st, j, opts);
      const inputs = await Promise.all(v.inputs.map(async (e, i) => (await this.#result(inputStates[i] ?? this.#state(e.vertex, j, opts), e.index, j, opts)).ref));
      const release = await this.#sems[op.resourceClass ?? 'cpu'].acquire(st.controller.signal);
      let refs: readonly WorkerRef[];
      try {
        throwIfCancelled(st.controller.signal);
        st.announced = false;
        this.#emit(st, { kind: 'vertex.started', vertex: v.digest, name: v.name, inputs: v.inputs.map((e) => e.vertex.digest), time: this.#now() });
        refs = await op.exec(this.#ctx(st), inputs);
      } finally {
        release();
      }
      // Uncacheable results (a local source) are recorded too, under their never-matching
      // random key, so `du` lists them and `prune` can release their snapshots.
      for (const [i, ref] of refs.entries()) {
        const { key } = await this.#edgeKey(st, i, job, opts);
        const rec = this.#cache.save(key, { snapshot: ref.snapshot, size: ref.size, description: v.name, ...(op.recordKind === undefined ? {} : { kind: op.recordKind }) });
        this.#keyResults.set(key, { kind: 'snapshot', snapshot: rec.snapshot, created: rec.created });
        // Recorded, so prunable: leased for the builds waiting on it from this moment, so that a
        // prune beside them (a library calling Solver.prune) cannot remove it before the next
        // step mounts it. Builds that join later lease it where they take it (#result).
        for (const j of st.jobs) j.leases.push(this.#cache.store.lease(ref.snapshot));
      }
      this.#emit(st, { kind: 'vertex.done', vertex: v.digest, time: this.#now() });
      return refs;
    } catch (err) {
      throw this.#fail(st, err);
    } finally {
      st.execSettled = true;
      this.#inflight.delete(st);
      unprepare?.();
    }
  }

  /**
   * Turns an op's failure into the error the build reports (once per vertex): a VertexError
   * with location, command, exit code and output tail, or SOLVER_CANCELLED. Errors of inputs
   * pass through unchanged (they reported themselves).
   */
  #fail(st: VertexState, err: unknown): unknown {
    st.failed = true;
    if (err instanceof VertexError || (err instanceof SolverError && err.code === 'SOLVER_CANCELLED' && st.error === undefined && !st.controller.signal.aborted)) {
      return err;
    }
    if (st.error !== undefined) return st.error;
    const v = st.vertex;
    const cancelled = st.controller.signal.aborted || (err instanceof SolverError && err.code === 'SOLVER_CANCELLED');
    const details = execDetails(err);
    const verr = cancelled
      ? new SolverError('SOLVER_CANCELLED', `${v.name}: cancelled`, { cause: err })
      : new VertexError(
          {
            vertex: v.digest,
            name: v.name,
            op: opKindOf(v),
            locations: v.options.locations ?? [],
            command: details.command,
            exitCode: details.exitCode,
            logTail: st.tail?.lines() ?? [],
          },
          err,
        );
    st.error = verr;
    if (verr instanceof VertexError) {
      for (const j of st.jobs) {
        if (st.roles.has(j)) continue;
        st.failedOwned = true;
        break;
      }
    }
    // A run left only to builds that followed it is abandoned for them, not failed: they run the
    // step themselves (#follow), so it ends as cancelled in their progress.
    const error = cancelled || !st.failedOwned ? 'cancelled' : verr.message;
    // A vertex that failed before it ran (computing what a COPY selects) is shown by its name too.
    if (error !== 'cancelled' && !st.history.some((e) => e.kind === 'vertex.started')) {
      this.#emit(st, { kind: 'vertex.started', vertex: v.digest, name: v.name, inputs: v.inputs.map((e) => e.vertex.digest), time: this.#now() });
    }
    // As BuildKit's exec op on an error: each clipped stream's last 256 KiB after its clip line.
    // (Not for a cancelled run, nor one abandoned to its followers, which run it again.)
    if (error !== 'cancelled') for (const { stream, data } of st.logLimit?.flush() ?? []) this.#emit(st, { kind: 'log', vertex: v.digest, stream, data, time: this.#now() });
    this.#emit(st, { kind: 'vertex.error', vertex: v.digest, error, time: this.#now() });
    // Builds that follow this run report the failure with their own vertex (#mirror).
    if (verr instanceof VertexError) for (const j of st.jobs) if (!st.roles.has(j)) j.failed(verr);
    return verr;
  }
}

function noop(): void {
  // intentionally empty
}

function opKindOf(v: SolverVertex): string | undefined {
  const op = v.op;
  if (typeof op === 'object' && op !== null && 'kind' in op && typeof op.kind === 'string') return op.kind;
  return undefined;
}
