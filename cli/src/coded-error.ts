/**
 * The shape of the CLI's user-facing errors: a stable code from the command's closed set, a
 * one-line message, an optional hint and the cause. Each command's error class names itself and
 * its codes (`class EngineError extends CodedError<EngineErrorCode>`).
 */
export class CodedError<C extends string> extends Error {
  readonly code: C;
  readonly hint: string | undefined;

  constructor(code: C, message: string, opts: { hint?: string | undefined; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
  }
}
