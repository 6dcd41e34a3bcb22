import { CodedError } from '../coded-error.js';

/** Stable codes of `kiln bake` errors (the KLN085x range). */
export type BakeErrorCode =
  | 'KLN0850' // no bake file found, or a bake file cannot be read
  | 'KLN0851' // HCL syntax error
  | 'KLN0852' // HCL evaluation error: unknown variable or function, wrong type, failed function call
  | 'KLN0853' // invalid bake definition: unknown key, wrong value type, unknown target, inherits cycle
  | 'KLN0854' // malformed or unknown --set override; a malformed --var, --list or --execution value
  | 'KLN0855' // a bake option kiln does not support (--load, a context of another scheme than git/http(s), a call other than build/check/targets, --set secret.ID)
  | 'KLN0856' // a target's target:NAME context made no image (one that failed: the target does not start)
  | 'KLN0857' // targets failed (the closing error naming them and what became of the others)
  | 'KLN0858'; // the targets ask for entitlements or paths --allow does not grant

/** Where in a bake file something is (1-based line and column). */
export interface BakeLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** A bake error a user can act on: code, one-line message, optional place and hint. */
export class BakeError extends CodedError<BakeErrorCode> {
  override readonly name = 'BakeError';
  readonly location: BakeLocation | undefined;

  constructor(code: BakeErrorCode, message: string, opts: { location?: BakeLocation | undefined; hint?: string; cause?: unknown } = {}) {
    super(code, opts.location === undefined ? message : `${opts.location.file}:${opts.location.line}:${opts.location.column}: ${message}`, opts);
    this.location = opts.location;
  }
}
