/**
 * Errors raised by the Dockerfile frontend (parser, shell lexer, instruction layer).
 *
 * Every error has a stable `code` (table below), a one-line message, and, when it can be tied to the
 * Dockerfile, a 1-based {@link SourceLocation} plus the instruction as written.
 *
 * | code    | meaning |
 * | ------- | ------- |
 * | KLN0101 | file with no instructions |
 * | KLN0102 | invalid or duplicate parser directive (`# escape=x`, two `# syntax=`) |
 * | KLN0103 | JSON array holds something other than strings |
 * | KLN0104 | ENV/LABEL without a value, or a word without `=` |
 * | KLN0105 | unterminated heredoc |
 * | KLN0106 | malformed instruction flags or heredoc word |
 * | KLN0201 | shell word expansion failed (unterminated quote, bad substitution, `${VAR:?}` …) |
 * | KLN0401 | unknown instruction |
 * | KLN0402 | unknown flag |
 * | KLN0403 | bad flag value (wrong type, missing value, duplicate) |
 * | KLN0404 | wrong number of arguments |
 * | KLN0405 | invalid argument value (port, duration, signal, platform, chmod …) |
 * | KLN0406 | instruction not allowed here (before FROM, ONBUILD of FROM …) |
 * | KLN0407 | invalid stage name |
 * | KLN0408 | duplicate stage name |
 * | KLN0411 | malformed `--mount` spec |
 * | KLN0412 | unknown mount type |
 * | KLN0413 | unknown mount option |
 * | KLN0414 | mount target missing or not absolute |
 * | KLN0415 | invalid mount option value |
 * | KLN0421 | invalid `--network` / `--security` value |
 * | KLN0501 | build stage or target not found (`--target`, `COPY --from=<index>`) |
 * | KLN0502 | circular dependency between stages (`COPY --from`, `RUN --mount=from=`) |
 * | KLN0503 | base image could not be resolved |
 * | KLN0504 | invalid or blank image reference |
 * | KLN0505 | invalid platform |
 * | KLN0506 | source not allowed here (URL or git for COPY, `--checksum` misuse) |
 * | KLN0507 | invalid COPY/ADD option value (`--chmod`, `--checksum`) |
 * | KLN0508 | empty Dockerfile or no stages |
 * | KLN0509 | build checks failed with `# check=error=true` (or `BUILDKIT_DOCKERFILE_CHECK`) |
 * | KLN0510 | malformed `.dockerignore` pattern (read for the CopyIgnoredFile check) |
 * | KLN0511 | SBOM attestation: invalid `attest:sbom` option, or the generator image cannot be resolved or has no command |
 */
export type DockerfileErrorCode =
  | 'KLN0101'
  | 'KLN0102'
  | 'KLN0103'
  | 'KLN0104'
  | 'KLN0105'
  | 'KLN0106'
  | 'KLN0201'
  | 'KLN0401'
  | 'KLN0402'
  | 'KLN0403'
  | 'KLN0404'
  | 'KLN0405'
  | 'KLN0406'
  | 'KLN0407'
  | 'KLN0408'
  | 'KLN0411'
  | 'KLN0412'
  | 'KLN0413'
  | 'KLN0414'
  | 'KLN0415'
  | 'KLN0421'
  | 'KLN0501'
  | 'KLN0502'
  | 'KLN0503'
  | 'KLN0504'
  | 'KLN0505'
  | 'KLN0506'
  | 'KLN0507'
  | 'KLN0508'
  | 'KLN0509'
  | 'KLN0510'
  | 'KLN0511';

/** A point in a Dockerfile: 1-based line and column (columns count UTF-16 code units). */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** Where an error happened. `file` is the Dockerfile name as the user knows it (may be empty). */
export interface SourceLocation extends Position {
  readonly file: string;
}

/** Options accepted by {@link KilnError}. */
export interface KilnErrorOptions {
  location?: SourceLocation | undefined;
  /** The instruction as written (continuations joined), shown above the message. */
  source?: string | undefined;
  hint?: string | undefined;
  cause?: unknown;
}

/**
 * The error every Dockerfile frontend API throws. `code` is stable and meant for programs;
 * `message` is one line for people; `hint` says what to do.
 */
export class KilnError extends Error {
  override readonly name = 'KilnError';
  /** Stable error code (see the table at the top of this module). */
  readonly code: DockerfileErrorCode;
  /** Location in the Dockerfile, when known. */
  location: SourceLocation | undefined;
  /** The instruction text as written, when known. */
  source: string | undefined;
  /** What the user can do about it. */
  readonly hint: string | undefined;

  /** Create an error; see {@link KilnErrorOptions}. */
  constructor(code: DockerfileErrorCode, message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.location = options.location;
    this.source = options.source;
    this.hint = options.hint;
  }

  /**
   * Attach a location and source text unless already set (wrap, don't replace: the innermost
   * layer that knows a precise position wins). Returns `this`.
   */
  withLocation(location: SourceLocation, source?: string): this {
    if (this.location === undefined) this.location = location;
    else if (this.location.file === '' && location.file !== '') this.location = { ...this.location, file: location.file };
    if (this.source === undefined && source !== undefined) this.source = source;
    return this;
  }
}

/** Options of {@link formatError}. */
export interface FormatErrorOptions {
  /** Name used when the error has no file name (default `Dockerfile`). */
  file?: string;
  /** The Dockerfile text: when given, the offending physical line is shown with a caret. */
  text?: string;
}

/**
 * Format an error for people, as the CLI prints it. The first line is always
 * `FILE:LINE:COL: message [CODE]`; then the offending line (the physical line with a caret when
 * `text` is given, else the instruction as written), then the hint:
 *
 * ```
 * Dockerfile:7:5: unknown mount type "cach" (did you mean "cache"?) [KLN0412]
 *   7 | RUN --mount=type=cach,target=/root/.cache pip install .
 *     |     ^
 * hint: use one of bind, cache, tmpfs, secret, ssh
 * ```
 *
 * Errors that are not KilnErrors give their message only (never a stack).
 */
export function formatError(err: unknown, options: FormatErrorOptions = {}): string {
  if (!(err instanceof KilnError)) return err instanceof Error ? err.message : String(err);
  const lines: string[] = [];
  const loc = err.location;
  const where = loc === undefined ? '' : `${loc.file === '' ? (options.file ?? 'Dockerfile') : loc.file}:${loc.line}:${loc.column}: `;
  lines.push(`${where}${err.message} [${err.code}]`);
  // The text is the main Dockerfile's: an error in another file (a Dockerfile a buildpacks
  // extension generated, compiled through the gateway) is quoted from its own source only.
  const ownText = loc !== undefined && (loc.file === '' || loc.file === (options.file ?? 'Dockerfile'));
  const physical = loc !== undefined && ownText && options.text !== undefined ? options.text.split('\n')[loc.line - 1] : undefined;
  if (loc !== undefined && physical !== undefined) {
    const gutter = String(loc.line);
    lines.push(`  ${gutter} | ${physical.replace(/\r$/, '')}`);
    lines.push(`  ${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, loc.column - 1))}^`);
  } else if (err.source !== undefined && err.source.trim() !== '') {
    const gutter = loc === undefined ? '' : String(loc.line);
    lines.push(`  ${gutter} | ${firstLine(err.source)}`);
  }
  if (err.hint !== undefined) lines.push(`hint: ${err.hint}`);
  return lines.join('\n');
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return (i < 0 ? s : s.slice(0, i)).trim();
}

/** "Did you mean" lookups: llb-core's, shared by every frontend and the gateway. */
export { suggest } from '@kiln/llb-core';
