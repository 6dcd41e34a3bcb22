import { untilAborted as raceAbort } from '@kiln/runtime';

/** Stable error codes raised by @kiln/solver. */
export type SolverErrorCode =
  | 'SOLVER_EXEC_FAILED' // a vertex's op failed (see `vertex`, `exitCode`, `logTail`)
  | 'SOLVER_CANCELLED' // the solve was aborted through its AbortSignal
  | 'SOLVER_BAD_PATTERN' // a .dockerignore / include / exclude pattern is malformed
  | 'SOLVER_NOT_FOUND' // a path selected for a content checksum does not exist
  | 'SOLVER_CACHE_STORE' // the persistent cache store cannot be opened or is corrupt
  | 'SOLVER_INVALID_DEFINITION' // a Definition cannot be turned into vertices
  | 'SOLVER_UNSUPPORTED' // an op kind or option the worker cannot run
  | 'SOLVER_TOO_MANY_LINKS' // symlink resolution exceeded the limit
  | 'SOLVER_GIT_FAILED' // a git source cannot be resolved, fetched or checked out
  | 'SOLVER_BUSY' // a resource is in use and was left alone (a cache mount a running build holds)
  | 'SOLVER_CACHE_IMPORT' // a --cache-from source is missing or not a BuildKit cache
  | 'SOLVER_CACHE_EXPORT'; // a --cache-to export failed

/** A 1-based position in a source file (a Dockerfile line), from the Definition's source map. */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The source text of the located instruction, as written. */
  readonly source?: string;
}

/** Options for {@link SolverError}. */
export interface SolverErrorOptions {
  readonly hint?: string;
  readonly cause?: unknown;
  readonly location?: SourceLocation;
}

/**
 * Error thrown by every @kiln/solver API: a stable `code`, a one-line `message`, optional
 * `location` (1-based) and `hint`. Messages never contain secret values.
 */
export class SolverError extends Error {
  override readonly name: string = 'SolverError';
  readonly code: SolverErrorCode;
  readonly hint: string | undefined;
  readonly location: SourceLocation | undefined;

  constructor(code: SolverErrorCode, message: string, opts: SolverErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
    this.location = opts.location;
  }
}

/** Throws a `SOLVER_CANCELLED` {@link SolverError} when `signal` is aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new SolverError('SOLVER_CANCELLED', 'build cancelled', { cause: signal.reason });
  }
}

/**
 * `p`, or a `SOLVER_CANCELLED` {@link SolverError} as soon as `signal` aborts (thrown at once when
 * it already has). `p` goes on for whoever else waits on it.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return raceAbort(p, signal, () => new SolverError('SOLVER_CANCELLED', 'build cancelled', { cause: signal?.reason }));
}
