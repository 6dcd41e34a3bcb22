import type { SourceLocation } from '../errors.js';

/**
 * Codes of {@link SourcePolicyError}:
 *
 * | code    | meaning |
 * |---------|---------|
 * | KLN0950 | the policy file cannot be read |
 * | KLN0951 | the policy file is not a valid policy (JSON syntax, a field, a pattern) |
 * | KLN0952 | a source of the build is denied by the policy |
 * | KLN0953 | CONVERT rules keep rewriting one source (more than 20 conversions) |
 * | KLN0954 | a CONVERT rule produced something that is not a source identifier |
 */
export type SourcePolicyErrorCode = 'KLN0950' | 'KLN0951' | 'KLN0952' | 'KLN0953' | 'KLN0954';

/** Options of {@link SourcePolicyError}. */
export interface SourcePolicyErrorOptions {
  readonly hint?: string;
  readonly cause?: unknown;
  /** Where the source was written (the Dockerfile's FROM or ADD), from the Definition's source map. */
  readonly location?: SourceLocation;
  /** The source identifier the policy judged (after any conversion). */
  readonly identifier?: string;
  /** The 0-based index of the rule that decided (`rules[N]` of its file). */
  readonly ruleIndex?: number;
}

/**
 * A source policy error (BuildKit's `ErrSourceDenied`, `ErrTooManyOps` and a policy file that
 * does not parse): a stable KLN code, a one-line message naming the file and JSON field or the
 * source and rule, and a hint.
 */
export class SourcePolicyError extends Error {
  override readonly name = 'SourcePolicyError';
  readonly code: SourcePolicyErrorCode;
  readonly hint: string | undefined;
  /** Set once known: the loader adds the source map's location of the denied op. */
  location: SourceLocation | undefined;
  readonly identifier: string | undefined;
  readonly ruleIndex: number | undefined;

  constructor(code: SourcePolicyErrorCode, message: string, opts: SourcePolicyErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
    this.location = opts.location;
    this.identifier = opts.identifier;
    this.ruleIndex = opts.ruleIndex;
  }
}
