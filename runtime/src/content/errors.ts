/** Stable error codes raised by the content store, image handling, registry client and exporters. */
export type RuntimeErrorCode =
  | 'DIGEST_INVALID'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'BLOB_NOT_FOUND'
  | 'IMAGE_NOT_FOUND'
  | 'PLATFORM_NOT_FOUND'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'LAYOUT_INVALID'
  | 'REFERENCE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'REGISTRY_ERROR'
  | 'REGISTRY_UNREACHABLE'
  | 'OUTPUT_SPEC_INVALID'
  | 'EXPORT_FAILED'
  | 'PREREQUISITE_MISSING';

/** Options for {@link ImageStoreError}. */
export interface ImageStoreErrorOptions {
  readonly hint?: string | undefined;
  readonly cause?: unknown;
  /** HTTP status, for registry errors. */
  readonly status?: number | undefined;
}

/**
 * An error a user can act on: a stable `code`, a one-line message and an optional hint.
 * Messages never contain credentials.
 */
export class ImageStoreError extends Error {
  readonly code: RuntimeErrorCode;
  readonly hint: string | undefined;
  readonly status: number | undefined;

  constructor(code: RuntimeErrorCode, message: string, opts: ImageStoreErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ImageStoreError';
    this.code = code;
    this.hint = opts.hint;
    this.status = opts.status;
  }
}
