import type { Definition, DiffOp, ExecOp, FileOp, MergeOp, PbPlatform, SourceOp } from '@kiln/llb-core';
import type { ExecPreparation } from '@kiln/runtime';
import type { ChecksumOptions } from '../contenthash/tree.js';
import type { OpContext, WorkerRef } from '../scheduler/types.js';

/** Where an op runs: the op's platform (or the worker's default). */
export interface WorkerOpContext extends OpContext {
  readonly platform: PbPlatform | undefined;
  /** The exec's announcement ({@link Worker.prepareExec}), which its run uses up. */
  readonly prepared?: ExecPreparation;
}

/**
 * What the solver needs from a worker (BuildKit's worker.Worker, cut to the op kinds): one
 * method per op kind, plus the pinning of sources and content checksums for cache keys.
 * Results are committed snapshots; the solver's cache store owns those it saves.
 */
export interface Worker {
  /**
   * The pinned identity of a source, as BuildKit's Source.CacheKey: an image's chain id (or
   * manifest digest), a git commit, an http checksum. A key starting with `session:` marks a
   * source that is never cached (a local directory); it is re-read every build.
   */
  sourceCacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string>;
  source(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef>;
  /** Runs an exec; returns one ref per mount with an output index, in output order. */
  exec(op: ExecOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]>;
  /** Applies file actions; returns one ref per action output, in output order. */
  file(op: FileOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]>;
  merge(op: MergeOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef>;
  diff(op: DiffOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef>;
  /** BuildKit contenthash.Checksum of `path` inside a result. */
  checksum(ref: WorkerRef, path: string, opts: ChecksumOptions, signal: AbortSignal): Promise<string>;
  /**
   * Throws when an exec needs an entitlement this build was not granted (e.g. security.insecure).
   * Called before the exec's cache key is looked up, so a cached step is refused too. Optional.
   */
  validateExec?(op: ExecOp): void;
  /**
   * Announces an exec that will run once its inputs are ready, so the worker can start what does
   * not depend on them (the executor's {@link Executor.prepare}). Optional.
   */
  prepareExec?(): ExecPreparation | undefined;
  /**
   * Empties the cache mounts with these ids (BuildKit's Worker.PruneCacheMounts): the solver calls
   * it before a build for the cache mounts of every exec that ignores the cache. Optional.
   */
  pruneCacheMounts?(ids: readonly string[]): Promise<void>;
  /** Runs a nested definition (BuildOp); optional. */
  build?(def: Definition, ctx: WorkerOpContext): Promise<WorkerRef>;
}

/**
 * An exec that ended with a non-zero status. The scheduler turns it into a VertexError with
 * BuildKit's message `process "<args>" did not complete successfully: exit code: N`.
 */
export class ExecFailedError extends Error {
  override readonly name = 'ExecFailedError';
  readonly exitCode: number;
  readonly command: string;
  constructor(command: string, exitCode: number) {
    super(`process ${JSON.stringify(command)} did not complete successfully: exit code: ${exitCode}`);
    this.exitCode = exitCode;
    this.command = command;
  }
}
