import type { Definition, ResolveImageConfigOptions, ResolvedImageConfig } from '@kiln/llb-core';
import type { BackendSolveOptions, SolveBackend } from '@kiln/gateway';
import type { ProgressSink, Solver, SolverVertex } from '@kiln/solver';
import type { KilnEngine } from './engine.js';
import { SnapshotRef } from './snapshot-ref.js';

/** Build-wide options every solve of one build shares. */
export interface BackendOptions {
  readonly progress?: ProgressSink;
  readonly signal?: AbortSignal;
  /** `--no-cache`. */
  readonly noCache?: boolean;
  /** `--no-cache-filter`: vertices that ignore the cache. */
  readonly noCacheFilter?: (vertex: SolverVertex) => boolean;
}

/**
 * The gateway's {@link SolveBackend} over the solver: every Definition a frontend solves becomes a
 * {@link SnapshotRef} (its result snapshot, readable in place). Results stay leased until
 * {@link SolverBackend.release}, so nothing a build still reads is pruned under it.
 */
export class SolverBackend implements SolveBackend {
  readonly #engine: KilnEngine;
  readonly #solver: Solver;
  readonly #opts: BackendOptions;
  readonly #refs: SnapshotRef[] = [];

  constructor(engine: KilnEngine, solver: Solver, opts: BackendOptions = {}) {
    this.#engine = engine;
    this.#solver = solver;
    this.#opts = opts;
  }

  async solve(definition: Definition, options: BackendSolveOptions = {}): Promise<SnapshotRef> {
    const signal = options.signal ?? this.#opts.signal;
    const result = await this.#solver.solve(definition, {
      ...(signal === undefined ? {} : { signal }),
      ...(this.#opts.progress === undefined ? {} : { progress: this.#opts.progress }),
      ...(this.#opts.noCache === undefined ? {} : { noCache: this.#opts.noCache }),
      ...(this.#opts.noCacheFilter === undefined ? {} : { noCacheFilter: this.#opts.noCacheFilter }),
    });
    const ref =
      result === undefined
        ? new SnapshotRef(this.#engine.snapshotter, await emptySnapshot(this.#engine), () => undefined)
        : new SnapshotRef(this.#engine.snapshotter, result.ref.snapshot, () => result.release());
    this.#refs.push(ref);
    return ref;
  }

  resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    return this.#engine.meta.resolveImageConfig(ref, options);
  }

  /** Unmounts every result and ends the build's leases. */
  async release(): Promise<void> {
    const refs = this.#refs.splice(0);
    await Promise.all(refs.map((r) => r.release()));
  }
}

/** The shared empty committed snapshot (an empty Definition's result: scratch). */
export async function emptySnapshot(engine: KilnEngine): Promise<string> {
  const id = 'scratch-empty';
  const s = engine.snapshotter;
  if (await s.stat(id).then(() => true, () => false)) return id;
  const tmp = `${id}.tmp-${process.pid}-${Date.now()}`;
  await s.prepare(tmp);
  try {
    await s.commit(id, tmp);
  } catch (err) {
    await s.remove(tmp).catch(() => undefined);
    if (!(await s.stat(id).then(() => true, () => false))) throw err;
  }
  return id;
}
