/** Stable codes of {@link GatewayError}. */
export type GatewayErrorCode =
  | 'KLN0601' // unknown frontend
  | 'KLN0602' // entry file missing from the dockerfile input
  | 'KLN0603' // frontend returned no result
  | 'KLN0604'; // syntax forwarding loop

/** An error the gateway raises: a stable `code`, a one-line message and a hint. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: GatewayErrorCode;
  readonly hint: string | undefined;

  constructor(code: GatewayErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }
}
