/** Stable error codes raised by @kiln/llb-core. */
export type LlbErrorCode =
  | 'LLB_DECODE' // bytes are not a valid protobuf message of the expected type
  | 'LLB_TRUNCATED' // input ended in the middle of a field
  | 'LLB_INT_RANGE' // an int64 index does not fit a JS number
  | 'LLB_DIGEST' // a string is not a valid sha256 digest
  | 'LLB_EMPTY' // a definition has no ops
  | 'LLB_MISSING_INPUT' // an op refers to a digest that is not in the definition
  | 'LLB_CYCLE' // the op graph has a cycle
  | 'LLB_DUPLICATE_OP' // the same op bytes appear twice in def
  | 'LLB_BAD_INPUT_INDEX' // an op refers to an input index it does not have
  | 'LLB_INVALID_STATE' // a State graph cannot be marshaled (held error)
  | 'LLB_PLATFORM' // a platform string cannot be parsed
  | 'LLB_BAD_PATTERN'; // a .dockerignore / include / exclude pattern is malformed

/**
 * Error thrown by every llb-core API. `code` is stable and meant for programs;
 * `message` is one line for people; `hint` optionally says what to do.
 */
export class LlbError extends Error {
  override readonly name = 'LlbError';
  /** Stable machine-readable error code. */
  readonly code: LlbErrorCode;
  /** What the user can do about it, if known. */
  readonly hint: string | undefined;

  constructor(code: LlbErrorCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options?.hint;
  }
}
