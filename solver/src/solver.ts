import type { Definition, Op as LlbOp } from '@kiln/llb-core';
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
 * The LLB solver: loads Definitions into vertices and builds them on a worker with the
 * persistent cache (one instance per process, shared by concurrent solves, so identical vertices
 * of concurrent builds run once).
 */
export class Solver {
  readonly store: CacheStore;
  readonly #scheduler: Scheduler;

  constructor(opts: SolverOptions) {
    this.store = opts.store;
    this.#scheduler = new Scheduler({
      resolveOp: resolveLlbOp(opts.worker),
      sessionBound: isLocalSource,
      cache: new CacheManager(opts.store),
      ...(opts.parallelism === undefined ? {} : { parallelism: opts.parallelism }),
      ...(opts.execParallelism === undefined ? {} : { execParallelism: opts.execParallelism }),
    });
  }

  /** Solves `def`; resolves with the result of its root (undefined for an empty definition). */
  async solve(def: Definition, opts: SolveOptions = {}): Promise<BuildResult | undefined> {
    const { root } = loadGraph(def);
    if (root === undefined) return undefined;
    return this.build(root, opts);
  }

  /** Builds an already loaded edge (e.g. one output of a frontend's graph). */
  build(edge: SolverEdge, opts: SolveOptions = {}): Promise<BuildResult> {
    const { worker, ...rest } = opts;
    return this.#scheduler.build(edge, worker === undefined ? rest : { ...rest, resolveOp: resolveLlbOp(worker) });
  }

  du(): DiskUsageRecord[] {
    return this.store.du();
  }

  prune(opts: PruneOptions = {}): Promise<DiskUsageRecord[]> {
    return this.store.prune(opts);
  }
}

