/** Stable codes of {@link S3Error}. */
export type S3ErrorCode =
  | 'S3_ERROR' // the service answered with an error (its Code in `s3Code`)
  | 'S3_NOT_FOUND' // no such object or bucket
  | 'S3_DENIED' // 403: signature, key or permissions
  | 'S3_UNREACHABLE' // no answer (connection refused, DNS, TLS)
  | 'S3_CREDENTIALS'; // no credentials to sign with

/**
 * An error of an S3 request: a stable `code`, the service's own error code (`SignatureDoesNotMatch`,
 * `NoSuchBucket`…) and a message naming the object as `s3://bucket/key`. Never holds a secret.
 */
export class S3Error extends Error {
  override readonly name = 'S3Error';
  readonly code: S3ErrorCode;
  readonly s3Code: string | undefined;
  readonly status: number | undefined;
  readonly hint: string | undefined;

  constructor(code: S3ErrorCode, message: string, opts: { s3Code?: string; status?: number; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.s3Code = opts.s3Code;
    this.status = opts.status;
    this.hint = opts.hint;
  }
}
