import { availableParallelism } from 'node:os';
import type { Definition } from '@kiln/llb-core';
import { CacheManager } from './cache/cache-manager.js';
import type { CacheStore, DiskUsageRecord, PruneOptions } from './cache/store.js';
import { SolverError } from './errors.js';
import { loadGraph } from './llb/load.js';
import { resolveLlbOp } from './llb/ops.js';
import type { Worker } from './llb/worker.js';
import { Scheduler } from './scheduler/scheduler.js';
import type { BuildOptions, BuildResult, SolverEdge } from './scheduler/types.js';

/** Options of a {@link Solver}. */
export interface SolverOptions {
  readonly worker: Worker;
  readonly store: CacheStore;
  /** Ops running at once across all solves. Default: number of CPUs. */
  readonly parallelism?: number;
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
      cache: new CacheManager(opts.store),
      parallelism: opts.parallelism ?? availableParallelism(),
    });
  }

  /** Solves `def`; resolves with the result of its root (undefined for an empty definition). */
  async solve(def: Definition, opts: BuildOptions = {}): Promise<BuildResult | undefined> {
    const { root } = loadGraph(def);
    if (root === undefined) return undefined;
    return this.#scheduler.build(root, opts);
  }

  /** Builds an already loaded edge (e.g. one output of a frontend's graph). */
  build(edge: SolverEdge, opts: BuildOptions = {}): Promise<BuildResult> {
    return this.#scheduler.build(edge, opts);
  }

  du(): DiskUsageRecord[] {
    return this.store.du();
  }

  prune(opts: PruneOptions = {}): Promise<DiskUsageRecord[]> {
    return this.store.prune(opts);
  }
}

