/**
 * Errors of the TypeScript DSL frontend, shaped like the other frontends' KilnError: a stable
 * `code`, a one-line message, the location in the build file, and a hint.
 */

/** Stable error codes of the `kiln/ts` frontend. */
export type TsDslErrorCode =
  /** The build file or one of its imports does not compile (esbuild). */
  | 'KLN0801'
  /** An import the DSL forbids (a Node built-in) or cannot find. */
  | 'KLN0802'
  /** The build code threw, or returned something that is not a build result. */
  | 'KLN0803'
  /** The evaluator process failed (crashed, broke the protocol). */
  | 'KLN0804'
  /** Invalid use of the DSL API (bad option, unresolvable image, …). */
  | 'KLN0805'
  /** `--target` names no target of the build file's `targets` export (or none was named and there is no default export). */
  | 'KLN0806';

/** A position in a build file (1-based line and column). */
export interface TsDslLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** An error a user of the `kiln/ts` frontend sees. */
export class TsDslError extends Error {
  override readonly name = 'TsDslError';
  readonly code: TsDslErrorCode;
  readonly location: TsDslLocation | undefined;
  readonly hint: string | undefined;

  constructor(code: TsDslErrorCode, message: string, extra: { location?: TsDslLocation; hint?: string; cause?: unknown } = {}) {
    const where = extra.location === undefined ? '' : `${extra.location.file}:${extra.location.line}:${extra.location.column}: `;
    super(`${where}${message}`, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.location = extra.location;
    this.hint = extra.hint;
  }
}
