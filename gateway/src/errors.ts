/** Stable codes of {@link GatewayError}. */
export type GatewayErrorCode =
  | 'KLN0601' // unknown frontend
  | 'KLN0602' // entry file missing from the dockerfile input
  | 'KLN0603' // frontend returned no result
  | 'KLN0604' // syntax forwarding loop
  | 'KLN0610' // an external frontend returned an error (LLBBridge Return)
  | 'KLN0611' // an external frontend exited without returning a result
  | 'KLN0612' // an LLBBridge call failed (gRPC status from the other side)
  | 'KLN0613' // an LLBBridge message larger than the 16 MiB limit
  | 'KLN0614' // malformed LLBBridge traffic (framing, protobuf, unknown ref id)
  | 'KLN0615' // the other side of LLBBridge lacks a capability
  | 'KLN0605' // external frontend container failed: non-zero exit after Return, did not exit, could not run
  | 'KLN0606' // frontend image lacks a capability the request needs (label moby.buildkit.frontend.caps)
  | 'KLN0607'; // gateway.v0 source missing, unsupported or not resolvable

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
