/**
 * The lexer edge of the parser: chevrotain splits the text into physical lines with 1-based
 * positions. Everything after this works on {@link PhysicalLine}s, so positions are converted once.
 */
import { Lexer, createToken } from './chevrotain.js';

/**
 * One token per physical line, its newline included, matched by a custom pattern (a search for
 * the next newline) rather than by regular expressions: chevrotain analyses a regex token's
 * pattern when the lexer is built, and ran each of them at every line, which cost about 25 ms of a
 * `kiln llb` for splitting a 2,000-line file where `indexOf` needs half a millisecond.
 */
const Line = createToken({
  name: 'Line',
  line_breaks: true,
  pattern: {
    exec: (text: string, offset: number): [string] | null => {
      if (offset >= text.length) return null;
      const nl = text.indexOf('\n', offset);
      return [text.slice(offset, nl < 0 ? text.length : nl + 1)];
    },
  },
});

// The one token type cannot be written wrongly in the ways chevrotain's validations look for, and
// with nothing to choose between there is no first-character table worth building (safeMode).
const lineLexer = new Lexer([Line], { positionTracking: 'onlyOffset', skipValidations: true, safeMode: true });

/** One physical line of the Dockerfile. */
export interface PhysicalLine {
  /** The line including its trailing `\n` when present (heredoc bodies keep it). */
  readonly raw: string;
  /** 1-based line number. */
  readonly line: number;
}

/** Split `text` into physical lines (Go's bufio scanner with newlines kept, as BuildKit's `scanLines`). */
export function splitLines(text: string): PhysicalLine[] {
  const { tokens, errors } = lineLexer.tokenize(text);
  if (errors.length > 0) throw new Error(`internal: line lexer failed: ${errors[0]?.message ?? ''}`);
  const out: PhysicalLine[] = [];
  for (const t of tokens) out.push({ raw: t.image, line: out.length + 1 });
  return out;
}
