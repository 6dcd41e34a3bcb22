import { CodedError } from '../coded-error.js';

/** Stable codes of `kiln history` errors (the KLN093x range). */
export type HistoryErrorCode =
  | 'KLN0930' // no build record matches a REF (unknown id, ambiguous prefix, ^N past the oldest, empty history)
  | 'KLN0931' // a malformed argument: --filter, --format, --progress, ^N, rm without REF or --all
  | 'KLN0932' // the build is still running: its record cannot be removed, its log is not stored yet
  | 'KLN0933'; // the record has no readable log (an interrupted build, a removed or damaged file)

/** A `kiln history` error the user can act on: code, one-line message, optional hint. */
export class HistoryError extends CodedError<HistoryErrorCode> {
  override readonly name = 'HistoryError';
}
