import { CodedError } from '../coded-error.js';

/** Stable codes of errors raised while wiring a build (the CLI's engine). */
export type EngineErrorCode =
  | 'KLN0701' // a path asked of a solved result does not exist or is not the right kind
  | 'KLN0702' // bad --secret / --ssh / --build-context / --build-arg / --allow value
  | 'KLN0703' // a prerequisite (runc, overlay, busybox) is missing
  | 'KLN0704' // the build produced nothing to export
  | 'KLN0705' // the build was interrupted (Ctrl-C)
  | 'KLN0706' // the LLB input of `kiln solve` is unreadable
  | 'KLN0707' // a size or option value is malformed
  | 'KLN0708' // prune refused: builds are running in the kiln root
  | 'KLN0709' // kiln daemon: the socket is taken, or the daemon went away mid-command
  | 'KLN0710' // a --cache-to value is malformed or names an unsupported cache type
  | 'KLN0711' // a --cache-to export failed
  | 'KLN0712' // --invoke: no command, nothing to run it in (--call=check|targets), or a Dockerfile/context on stdin (stdin is the command's)
  | 'KLN0713'; // kiln binfmt: not root, binfmt_misc not mountable, or no QEMU emulator for an architecture

/** An error the user can act on: stable code, one-line message, optional hint. */
export class EngineError extends CodedError<EngineErrorCode> {
  override readonly name = 'EngineError';
}
