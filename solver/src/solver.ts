import { MountType, type Definition, type Op as LlbOp } from '@kiln/llb-core';
import { CacheManager } from './cache/cache-manager.js';
import type { CacheStore, DiskUsageRecord, PruneOptions } from './cache/store.js';
import { SolverError } from './errors.js';
import { loadGraph } from './llb/load.js';
import { resolveLlbOp } from './llb/ops.js';
import type { Worker } from './llb/worker.js';
import { Scheduler } from './scheduler/scheduler.js';
import type { BuildOptions, BuildResult, SolverEdge, SolverVertex } from './scheduler/types.js';

/** Options of a {@link Solver}. */
export interface SolverOptions {
  /** The default worker; a solve may bring its own (see {@link SolveOptions.worker}). */
  readonly worker: Worker;
  readonly store: CacheStore;
  /**
   * Ops of kiln's own CPU-heavy work (file ops, sources, merges) running at once across all
   * solves. Default: the number of CPUs.
   */
  readonly parallelism?: number;
  /**
   * Exec ops (containers) running at once across all solves, bounded separately. Default:
   * `max(8, 4 × CPUs)` ({@link defaultParallelism}): containers mostly wait or use their own CPU.
   */
  readonly execParallelism?: number;
  /** Given each op run as it starts: ops of a cancelled build end after it (the Scheduler's `track`). */
  readonly track?: (run: Promise<unknown>) => void;
}

/** Options of one {@link Solver.solve}. */
export interface SolveOptions extends BuildOptions {
  /**
   * The worker for this build (e.g. bound to its local directories and secrets). One Solver per
   * process with a worker per build lets identical vertices of concurrent builds run once;
   * vertices depending on local sources are shared only between builds with the same `session`.
   */
  readonly worker?: Worker;
}

/** Local sources read the build's own directories: session-bound. */
function isLocalSource(v: SolverVertex): boolean {
  const op = v.op as LlbOp;
  return op.kind === 'source' && (op.source.identifier ?? '').startsWith('local://');
}

/**
 * The ids of the cache mounts of every exec under `edge` that ignores the cache (its `ignore_cache`
 * metadata, `noCache`, or `noCacheFilter`), in graph order; an id defaults to the mount target.
 */
function ignoredCacheMountIds(edge: SolverEdge, opts: SolveOptions): string[] {
  const ids = new Set<string>();
  const seen = new Set<SolverVertex>();
  const visit = (v: SolverVertex): void => {
    if (seen.has(v)) return;
    seen.add(v);
    for (const e of v.inputs) visit(e.vertex);
    const op = v.op as LlbOp;
    if (op.kind !== 'exec') return;
    if (v.options.ignoreCache !== true && opts.noCache !== true && opts.noCacheFilter?.(v) !== true) return;
    for (const m of op.exec.mounts ?? []) {
      if (m.mountType !== MountType.CACHE || m.cacheOpt === undefined) continue;
      const id = m.cacheOpt.id ?? '';
      ids.add(id === '' ? (m.dest ?? '') : id);
    }
  };
  visit(edge.vertex);
  return [...ids];
}

/**
 * The LLB solver: loads Definitions into vertices and builds them on a worker with the
 * persistent cache (one instance per process, shared by concurrent solves, so identical vertices
 * of concurrent builds run once).
 */
export class Solver {
  readonly store: CacheStore;
  readonly #scheduler: Scheduler;
  readonly #worker: Worker;

  constructor(opts: SolverOptions) {
    this.store = opts.store;
    this.#worker = opts.worker;
    this.#scheduler = new Scheduler({
      resolveOp: resolveLlbOp(opts.worker),
      sessionBound: isLocalSource,
      cache: new CacheManager(opts.store),
      ...(opts.parallelism === undefined ? {} : { parallelism: opts.parallelism }),
      ...(opts.execParallelism === undefined ? {} : { execParallelism: opts.execParallelism }),
      ...(opts.track === undefined ? {} : { track: opts.track }),
    });
  }

  /** Solves `def`; resolves with the result of its root (undefined for an empty definition). */
  async solve(def: Definition, opts: SolveOptions = {}): Promise<BuildResult | undefined> {
    const { root } = loadGraph(def);
    if (root === undefined) return undefined;
    return this.build(root, opts);
  }

  /** Builds an already loaded edge (e.g. one output of a frontend's graph). */
  async build(edge: SolverEdge, opts: SolveOptions = {}): Promise<BuildResult> {
    const { worker, ...rest } = opts;
    // BuildKit (llbsolver detectPrunedCacheID): the cache mounts of execs that ignore the cache
    // are emptied before the build, so `--no-cache` does not reuse what a cache mount kept.
    const ids = ignoredCacheMountIds(edge, opts);
    const w = worker ?? this.#worker;
    if (ids.length > 0 && w.pruneCacheMounts !== undefined) await w.pruneCacheMounts(ids);
    const attachables = rest.attachables ?? w.attachables;
    const withSession = attachables === undefined ? rest : { ...rest, attachables };
    return this.#scheduler.build(edge, worker === undefined ? withSession : { ...withSession, resolveOp: resolveLlbOp(worker) });
  }

  du(): DiskUsageRecord[] {
    return this.store.du();
  }

  prune(opts: PruneOptions = {}): Promise<DiskUsageRecord[]> {
    return this.store.prune(opts);
  }
}

