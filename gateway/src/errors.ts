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
  | 'KLN0607' // gateway.v0 source missing, unsupported or not resolvable
  | 'KLN0620' // a refused container request: no `/` mount, a relative or repeated destination, a mount missing what its type needs, a process without args, a secret/agent/entitlement the build lacks
  | 'KLN0621' // a container mount's ref is not a ref of this build
  | 'KLN0623'; // a start in a container that was released (or whose build ended)

/** Where in a build file an error points: 1-based line and column. */
export interface GatewayErrorLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** Options of {@link GatewayError}. */
export interface GatewayErrorOptions {
  hint?: string;
  cause?: unknown;
  /** The build file position the error is about (a frontend's error, KLN0610). */
  location?: GatewayErrorLocation;
  /** The source line at `location`, as written. */
  source?: string;
  /** The stable code the frontend gave its error (KLN0610 from a kiln frontend), e.g. `KLN0401`. */
  frontendCode?: string;
}

/**
 * An error the gateway raises: a stable `code`, a one-line message and a hint. An external
 * frontend's error (KLN0610) also carries the `location`, `source` line and `frontendCode` it
 * sent, the fields kiln's in-process frontend errors have.
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: GatewayErrorCode;
  readonly hint: string | undefined;
  readonly location: GatewayErrorLocation | undefined;
  readonly source: string | undefined;
  readonly frontendCode: string | undefined;

  constructor(code: GatewayErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.location = options.location;
    this.source = options.source;
    this.frontendCode = options.frontendCode;
  }
}
