/**
 * The lexer edge of the parser: chevrotain splits the text into physical lines with 1-based
 * positions. Everything after this works on {@link PhysicalLine}s, so positions are converted once.
 */
import { Lexer, createToken } from './chevrotain.js';

const Newline = createToken({ name: 'Newline', pattern: /\n/, line_breaks: true });
const LineText = createToken({ name: 'LineText', pattern: /[^\n]+/ });

const lineLexer = new Lexer([Newline, LineText], { positionTracking: 'onlyStart' });

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
  let pending: { text: string; line: number } | undefined;
  for (const t of tokens) {
    if (t.tokenType === Newline) {
      out.push({ raw: (pending?.text ?? '') + '\n', line: pending?.line ?? t.startLine ?? out.length + 1 });
      pending = undefined;
    } else {
      pending = { text: t.image, line: t.startLine ?? out.length + 1 };
    }
  }
  if (pending !== undefined) out.push({ raw: pending.text, line: pending.line });
  return out;
}
