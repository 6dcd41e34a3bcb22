/** Stable codes of {@link FileOpError}. */
export type FileOpErrorCode =
  | 'FILEOP_NOT_FOUND'
  | 'FILEOP_WILDCARD_NO_MATCH'
  | 'FILEOP_NOT_A_DIRECTORY'
  | 'FILEOP_CANNOT_REPLACE'
  | 'FILEOP_EXISTS'
  | 'FILEOP_INVALID_PATH'
  | 'FILEOP_INVALID_PATTERN'
  | 'FILEOP_INVALID_MODE'
  | 'FILEOP_USER_NOT_FOUND'
  | 'FILEOP_GROUP_NOT_FOUND'
  | 'FILEOP_SYMLINK_LOOP'
  | 'FILEOP_UNSUPPORTED'
  | 'FILEOP_ARCHIVE_INVALID'
  | 'FILEOP_CANCELLED'
  | 'FILEOP_IO';

/** Options for {@link FileOpError}. */
export interface FileOpErrorOptions {
  readonly hint?: string;
  readonly cause?: unknown;
}

/**
 * A failed file action: a stable `code`, a one-line message, and `path`, the path as the LLB
 * action named it (inside its root, never the host path of the snapshot directory).
 */
export class FileOpError extends Error {
  readonly code: FileOpErrorCode;
  readonly path: string;
  readonly hint: string | undefined;

  constructor(code: FileOpErrorCode, path: string, message: string, opts: FileOpErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FileOpError';
    this.code = code;
    this.path = path;
    this.hint = opts.hint;
  }
}

/** The errno code of a Node.js system error, if `err` is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

/** Throws `FILEOP_CANCELLED` when `signal` is aborted. */
export function checkAborted(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted === true) {
    throw new FileOpError('FILEOP_CANCELLED', path, 'file operation cancelled', { cause: signal.reason });
  }
}

/**
 * Maps an OS error raised while working on `path` (an in-root path) to a {@link FileOpError},
 * without leaking the host path of the root directory into the message.
 */
export function wrapOsError(err: unknown, path: string, what: string): FileOpError {
  if (err instanceof FileOpError) return err;
  const code = errnoCode(err);
  switch (code) {
    case 'ENOENT':
      return new FileOpError('FILEOP_NOT_FOUND', path, `${what} "${path}": no such file or directory`, { cause: err });
    case 'ENOTDIR':
      return new FileOpError('FILEOP_NOT_A_DIRECTORY', path, `${what} "${path}": a path component is not a directory`, {
        cause: err,
      });
    case 'EEXIST':
      return new FileOpError('FILEOP_EXISTS', path, `${what} "${path}": file exists`, { cause: err });
    case 'ELOOP':
      return new FileOpError('FILEOP_SYMLINK_LOOP', path, `${what} "${path}": too many levels of symbolic links`, {
        cause: err,
      });
    default:
      return new FileOpError('FILEOP_IO', path, `${what} "${path}": ${code ?? 'I/O error'}`, { cause: err });
  }
}
