/** Syntax tree types of the Dockerfile parser. All positions are 1-based; `end` is inclusive. */
import type { Position } from '../errors.js';

export type { Position } from '../errors.js';

/** A span in the Dockerfile. */
export interface Range {
  readonly start: Position;
  readonly end: Position;
}

/** A word of an instruction (argument or flag) with the position of its first character. */
export interface Word {
  readonly value: string;
  readonly position: Position;
}

/** A heredoc attached to RUN/COPY/ADD (BuildKit's parser.Heredoc). */
export interface Heredoc {
  /** The delimiter word with quotes removed (`EOF` for `<<"EOF"`). */
  readonly name: string;
  /** The file descriptor before `<<` (`3<<EOF`), 0 when absent. */
  readonly fileDescriptor: number;
  /** False when any part of the delimiter was quoted: the content must not be expanded. */
  readonly expand: boolean;
  /** `<<-`: leading tabs are stripped from content lines (see {@link chompHeredocContent}). */
  readonly chomp: boolean;
  /** The body as written, every line with its newline, without the terminator line. */
  readonly content: string;
  /** Lines of the body and terminator. */
  readonly location: Range;
}

/**
 * One instruction (BuildKit's parser.Node, with the argument chain flattened into `args`).
 *
 * `args` follow BuildKit's per-instruction rules (see the conformance README): ENV/LABEL give
 * triples key, value, separator; HEALTHCHECK gives the type word then the command.
 */
export interface Node {
  /** The instruction keyword, lower case (`run`, `from`, … or an unknown word). */
  readonly value: string;
  /** The keyword as written. */
  readonly keyword: string;
  /** The logical line: continuations joined, comments inside it dropped, leading space trimmed. */
  readonly original: string;
  /** `--flag[=value]` words before the arguments, as written. A bare `--` is dropped. */
  readonly flags: readonly Word[];
  /** The arguments (see above). */
  readonly args: readonly Word[];
  /** True for the JSON (exec) form. */
  readonly json: boolean;
  /** Heredocs in order of their `<<` words. */
  readonly heredocs: readonly Heredoc[];
  /** ONBUILD: the nested instruction. */
  readonly next?: Node;
  /** Comment lines directly above the instruction (text after `#`, trimmed). */
  readonly prevComment: readonly string[];
  /** From the keyword to the last character of the instruction (heredoc bodies included). */
  readonly location: Range;
}

/** A non-fatal parser finding (BuildKit's parser.Warning). */
export interface ParseWarning {
  readonly short: string;
  readonly detail: string;
  readonly location: Range;
}
