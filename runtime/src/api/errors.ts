/** Stable codes for failures of the snapshotter, layer code and executor. */
export type WorkerErrorCode =
  | 'LAYER_INVALID'
  | 'LAYER_UNSUPPORTED'
  /** A layer could not be written from a snapshot (e.g. its extended attributes could not be read). */
  | 'LAYER_EXPORT_FAILED'
  | 'PATH_ESCAPE'
  | 'SNAPSHOT_NOT_FOUND'
  | 'SNAPSHOT_EXISTS'
  | 'SNAPSHOT_STATE'
  | 'MOUNT_FAILED'
  | 'USER_NOT_FOUND'
  | 'EXEC_FAILED'
  | 'CANCELLED'
  /** A start in a container whose init process has exited, or that was released. */
  | 'CONTAINER_EXITED'
  /** A request the executor cannot serve (an unknown signal name). */
  | 'UNSUPPORTED'
  | 'PREREQUISITE_MISSING';

/** Options for {@link WorkerError}. */
export interface WorkerErrorOptions {
  readonly hint?: string;
  readonly cause?: unknown;
}

/**
 * An error raised by the worker side of the runtime (snapshots, layers, runc executor): a stable
 * `code`, a one-line message and an optional hint. Messages never contain secret values.
 */
export class WorkerError extends Error {
  readonly code: WorkerErrorCode;
  readonly hint: string | undefined;

  constructor(code: WorkerErrorCode, message: string, opts: WorkerErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WorkerError';
    this.code = code;
    this.hint = opts.hint;
  }
}

/** Throws a `CANCELLED` {@link WorkerError} when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new WorkerError('CANCELLED', 'operation cancelled', { cause: signal.reason });
}
