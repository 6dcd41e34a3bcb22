/**
 * The Dockerfile parser: text to a list of instruction {@link Node}s, equal to BuildKit's
 * `frontend/dockerfile/parser.Parse` (same arguments, same errors), with positions on every node.
 */
import { KilnError } from '../errors.js';
import type { Position } from '../errors.js';
import { ShellLex, isGoSpace } from '../shell/lex.js';
import type { Heredoc, Node, ParseWarning, Range, Word } from './ast.js';
import { DirectiveParser, discardBOM } from './directives.js';
import type { Directive } from './directives.js';
import { parseJsonArray } from './json.js';
import { splitLines } from './lexer.js';

/** Options of {@link parse}. */
export interface ParseOptions {
  /** File name used in error locations (default `Dockerfile`). */
  file?: string;
}

/** Result of {@link parse}. */
export interface ParseResult {
  /** Top-level instructions in file order. */
  readonly children: readonly Node[];
  /** Parser directives found at the top. */
  readonly directives: readonly Directive[];
  /** The escape token in effect (`\` or `` ` ``). */
  readonly escapeToken: string;
  /** Non-fatal findings (empty continuation lines). */
  readonly warnings: readonly ParseWarning[];
}

const WS_RE = /[\t\v\f\r ]+/;

/** Instructions whose lines may carry heredocs. */
const HEREDOC_INSTRUCTIONS = new Set(['add', 'copy', 'run']);

/** Maps offsets of a logical (continuation-joined) line back to physical positions. */
class LineMap {
  text = '';
  private readonly segs: { off: number; line: number; column: number }[] = [];

  add(piece: string, line: number, column: number): void {
    this.segs.push({ off: this.text.length, line, column });
    this.text += piece;
  }

  at(off: number): Position {
    // last segment starting at or before `off` (binary search: long continued RUN lines)
    let lo = 0;
    let hi = this.segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segs[mid]?.off ?? 0) <= off) lo = mid;
      else hi = mid - 1;
    }
    const seg = this.segs[lo] ?? { off: 0, line: 1, column: 1 };
    return { line: seg.line, column: seg.column + (off - seg.off) };
  }
}

class Directives {
  escapeToken = '\\';
  readonly parser = new DirectiveParser();

  /** Returns true when the line was a directive. */
  possible(line: string, lineNo: number): boolean {
    let d: Directive | undefined;
    try {
      d = this.parser.parseLine(line);
    } catch (e) {
      if (e instanceof KilnError) e.withLocation({ file: '', line: lineNo, column: 1 }, line);
      throw e;
    }
    if (d?.name === 'escape') {
      if (d.value !== '`' && d.value !== '\\') {
        throw new KilnError('KLN0102', `invalid escape token '${d.value}' does not match \` or \\`, {
          location: { file: '', line: lineNo, column: 1 },
          source: line,
          hint: 'use # escape=\\ or # escape=`',
        });
      }
      this.escapeToken = d.value;
    }
    return d !== undefined;
  }
}

function trimNewline(s: string): string {
  let end = s.length;
  while (end > 0 && (s[end - 1] === '\n' || s[end - 1] === '\r')) end--;
  return s.slice(0, end);
}

function trimLeadingWhitespace(s: string): string {
  let i = 0;
  while (i < s.length && isGoSpace(s[i] ?? '')) i++;
  return s.slice(i);
}

function goTrimSpace(s: string): { text: string; start: number } {
  let a = 0;
  let b = s.length;
  while (a < b && isGoSpace(s[a] ?? '')) a++;
  while (b > a && isGoSpace(s[b - 1] ?? '')) b--;
  return { text: s.slice(a, b), start: a };
}

function isComment(raw: string): boolean {
  return trimLeadingWhitespace(trimNewline(raw)).startsWith('#');
}

/**
 * Returns [line without the continuation escape, isEndOfLine]. BuildKit's rule: the escape token
 * is the last non-blank character and is either alone on the line or preceded by a character
 * other than the escape token (`foo\\\\` is not a continuation, `foo\\` and `\\` are).
 */
function trimContinuation(line: string, escape: string): [string, boolean] {
  let end = line.length;
  while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
  if (end === 0 || line[end - 1] !== escape) return [line, true];
  if (end === 1 || line[end - 2] !== escape) return [line.slice(0, end - 1), false];
  return [line, true];
}

/**
 * Parse a Dockerfile. Throws {@link KilnError} (with the line) on the errors BuildKit's parser
 * reports: no instructions, bad directive, non-string JSON array, ENV/LABEL without value,
 * unterminated heredoc.
 */
export function parse(text: string, options: ParseOptions = {}): ParseResult {
  const file = options.file ?? 'Dockerfile';
  const d = new Directives();
  const lines = splitLines(text);
  const children: Node[] = [];
  const warnings: ParseWarning[] = [];
  let comments: string[] = [];
  let i = 0;
  let currentLine = 0;
  const fail = (e: unknown, line: number, column: number, source?: string): never => {
    if (e instanceof KilnError) {
      e.withLocation({ file, line, column }, source);
      if (e.location !== undefined && e.location.file === '') e.location = { ...e.location, file };
    }
    throw e;
  };

  while (i < lines.length) {
    const phys = lines[i++];
    if (phys === undefined) break;
    let raw = phys.raw;
    // the BOM is dropped before columns are counted: editors don't show it as a column
    if (currentLine === 0) raw = discardBOM(raw);
    if (isComment(raw)) {
      const c = goTrimSpace(raw.slice(1)).text;
      comments = c === '' ? [] : [...comments, c];
    }
    const trimmed = trimNewline(raw);
    const stripped = trimLeadingWhitespace(trimmed);
    try {
      if (d.possible(stripped, phys.line)) comments = comments.slice(0, -1);
    } catch (e) {
      fail(e, phys.line, 1);
    }
    const token = isComment(raw) ? '' : stripped;
    currentLine = phys.line;
    const startLine = phys.line;
    const lm = new LineMap();
    const [first, firstEnd] = trimContinuation(token, d.escapeToken);
    let isEnd = firstEnd;
    if (isEnd && first === '') continue;
    lm.add(first, phys.line, trimmed.length - stripped.length + 1);
    let lastLine = phys;
    let hasEmptyContinuation = false;
    while (!isEnd && i < lines.length) {
      const cl = lines[i++];
      if (cl === undefined) break;
      const ct = trimNewline(cl.raw);
      try {
        d.possible(ct, cl.line);
      } catch (e) {
        fail(e, cl.line, 1);
      }
      currentLine = cl.line;
      lastLine = cl;
      if (isComment(cl.raw)) continue;
      if (trimLeadingWhitespace(ct).length === 0) {
        hasEmptyContinuation = true;
        continue;
      }
      const [piece, end] = trimContinuation(ct, d.escapeToken);
      isEnd = end;
      lm.add(piece, cl.line, 1);
    }
    const line = lm.text;
    if (hasEmptyContinuation) {
      warnings.push({
        short: `Empty continuation line found in: ${line}`,
        detail: 'Empty continuation lines will become errors in a future release',
        location: { start: { line: startLine, column: 1 }, end: { line: currentLine, column: 1 } },
      });
    }
    const startPos = lm.at(goTrimSpace(line).start);
    let node: MutableNode;
    try {
      node = newNodeFromLine(line, 0, lm, d, comments);
    } catch (e) {
      return fail(e, startPos.line, startPos.column, line);
    }
    if (canContainHeredoc(node) && line.includes('<<')) {
      let docs: PendingHeredoc[];
      try {
        docs = heredocsFromLine(line);
      } catch (e) {
        return fail(e, startPos.line, startPos.column, line);
      }
      const heredocs: Heredoc[] = [];
      for (const doc of docs) {
        let terminated = false;
        let content = '';
        const bodyStart = currentLine + 1;
        while (i < lines.length) {
          const hl = lines[i++];
          if (hl === undefined) break;
          currentLine = hl.line;
          lastLine = hl;
          let possible = trimNewline(hl.raw);
          if (doc.chomp) possible = possible.replace(/^\t+/, '');
          if (possible === doc.name) {
            terminated = true;
            break;
          }
          content += hl.raw;
        }
        if (!terminated) {
          fail(
            new KilnError('KLN0105', `unterminated heredoc ${doc.name}`, {
              hint: `end the heredoc with a line that holds only "${doc.name}"`,
            }),
            startPos.line,
            startPos.column,
            line,
          );
        }
        heredocs.push({
          ...doc,
          content,
          location: {
            start: { line: Math.min(bodyStart, currentLine), column: 1 },
            end: { line: currentLine, column: Math.max(1, trimNewline(lastLine.raw).length) },
          },
        });
      }
      node.heredocs = heredocs;
    }
    node.location = {
      start: startPos,
      end: { line: lastLine.line, column: Math.max(1, trimNewline(lastLine.raw).length) },
    };
    children.push(node);
    comments = [];
  }
  if (children.length === 0) {
    throw new KilnError('KLN0101', 'file with no instructions', {
      location: { file, line: Math.max(1, currentLine), column: 1 },
      hint: 'a Dockerfile needs at least a FROM instruction',
    });
  }
  return { children, directives: d.parser.parsed, escapeToken: d.escapeToken, warnings };
}

interface MutableNode extends Node {
  heredocs: Heredoc[];
  location: Range;
  next?: Node;
}

interface OffWord {
  value: string;
  off: number;
}

interface ArgsResult {
  args: OffWord[];
  json: boolean;
  next?: MutableNode;
}

function newNodeFromLine(line: string, base: number, lm: LineMap, d: Directives, comments: readonly string[]): MutableNode {
  const { text: trimmed, start } = goTrimSpace(line);
  const off0 = base + start;
  const m = WS_RE.exec(trimmed);
  const cmd = m === null ? trimmed : trimmed.slice(0, m.index);
  let flags: readonly OffWord[] = [];
  let flagsOff = 0;
  let rest = '';
  let restOff = off0 + trimmed.length;
  if (m !== null) {
    const after = m.index + m[0].length;
    const [remaining, remainingOff, fl] = extractBuilderFlags(trimmed.slice(after));
    flags = fl;
    flagsOff = off0 + after;
    const t = goTrimSpace(remaining);
    rest = t.text;
    restOff = off0 + after + remainingOff + t.start;
  }
  const value = cmd.toLowerCase();
  const r = dispatch(value, rest, restOff, lm, d);
  const node: MutableNode = {
    value,
    keyword: cmd,
    original: line,
    flags: positioned(flags, flagsOff, lm),
    args: positioned(r.args, 0, lm),
    json: r.json,
    heredocs: [],
    prevComment: comments,
    location: { start: lm.at(off0), end: lm.at(Math.max(off0, base + line.length - 1)) },
  };
  if (r.next !== undefined) node.next = r.next;
  return node;
}

/** The words with their positions (offsets relative to `base`); a loop, not two maps and a closure per node. */
function positioned(words: readonly OffWord[], base: number, lm: LineMap): Word[] {
  const out: Word[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as OffWord;
    out.push({ value: w.value, position: lm.at(base + w.off) });
  }
  return out;
}

function dispatch(cmd: string, rest: string, off: number, lm: LineMap, d: Directives): ArgsResult {
  switch (cmd) {
    case 'add':
    case 'copy':
    case 'volume':
      return parseMaybeJSONToList(rest, off, lm);
    case 'arg':
      return { args: parseWords(rest, off, d.escapeToken), json: false };
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell':
      return parseMaybeJSON(rest, off, lm);
    case 'env':
      return parseNameVal(rest, off, 'ENV', d.escapeToken);
    case 'label':
      return parseNameVal(rest, off, 'LABEL', d.escapeToken);
    case 'expose':
    case 'from':
      return { args: splitWhitespace(rest, off), json: false };
    case 'healthcheck':
      return parseHealthConfig(rest, off, lm);
    case 'maintainer':
    case 'stopsignal':
    case 'user':
    case 'workdir':
      return { args: rest === '' ? [] : [{ value: rest, off }], json: false };
    case 'onbuild':
      if (rest === '') return { args: [], json: false };
      return { args: [], json: false, next: newNodeFromLine(rest, off, lm, d, []) };
    default:
      return { args: [], json: false };
  }
}

/** Neither a space nor a quote nor the backslash: a flag word's character taken as is. */
function isPlainFlagChar(ch: string): boolean {
  return ch !== "'" && ch !== '"' && ch !== '\\' && !isGoSpace(ch);
}

/** BuildKit's extractBuilderFlags: leading `--x` words. Returns [rest, restOffset, flags]. */
function extractBuilderFlags(line: string): [string, number, OffWord[]] {
  const words: OffWord[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let wordOff = 0;
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    const ch = pos < line.length ? (line[pos] ?? '') : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isGoSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-') return [line.slice(pos), pos, words];
      phase = 'word';
      wordOff = pos;
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) words.push({ value: word, off: wordOff });
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return [line.slice(pos), pos, words];
        if (blankOK || word.length > 0) words.push({ value: word, off: wordOff });
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        pos++;
        word += line[pos] ?? '';
        continue;
      }
      // a run of plain characters joins the word as one slice, not one string per character
      let end = pos + 1;
      while (end < line.length && isPlainFlagChar(line[end] as string)) end++;
      word += line.slice(pos, end);
      pos = end - 1;
      continue;
    }
    // in quote
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    let c = ch;
    if (c === '\\') {
      if (pos + 1 === line.length) {
        phase = 'word';
        continue;
      }
      pos++;
      c = line[pos] ?? '';
    }
    word += c;
  }
  return ['', line.length, words];
}

function splitWhitespace(rest: string, off: number): OffWord[] {
  if (rest === '') return [];
  const out: OffWord[] = [];
  const re = /[\t\v\f\r ]+/g;
  let last = 0;
  for (let m = re.exec(rest); m !== null; m = re.exec(rest)) {
    out.push({ value: rest.slice(last, m.index), off: off + last });
    last = m.index + m[0].length;
  }
  out.push({ value: rest.slice(last), off: off + last });
  return out;
}

class NotStringArray extends Error {
  constructor(readonly off: number) {
    super('not a string array');
  }
}

function parseJSON(rest: string, off: number): OffWord[] | undefined {
  const t = trimLeadingWhitespace(rest);
  if (!t.startsWith('[')) return undefined;
  const arr = parseJsonArray(t);
  if (arr === undefined) return undefined;
  const start = off + (rest.length - t.length);
  if (arr.nonString !== undefined) throw new NotStringArray(start + arr.nonString);
  return arr.elements.map((e) => ({ value: e.value, off: start + e.offset }));
}

function notStringArray(e: NotStringArray, lm: LineMap): KilnError {
  return new KilnError('KLN0103', 'when using JSON array syntax, arrays must be comprised of strings only', {
    location: { file: '', ...lm.at(e.off) },
    hint: 'quote every element, e.g. ["echo", "hello"]',
  });
}

function parseMaybeJSON(rest: string, off: number, lm: LineMap): ArgsResult {
  if (rest === '') return { args: [], json: false };
  let j: OffWord[] | undefined;
  try {
    j = parseJSON(rest, off);
  } catch (e) {
    if (e instanceof NotStringArray) throw notStringArray(e, lm);
    throw e;
  }
  if (j !== undefined) return { args: j, json: true };
  return { args: [{ value: rest, off }], json: false };
}

function parseMaybeJSONToList(rest: string, off: number, lm: LineMap): ArgsResult {
  let j: OffWord[] | undefined;
  try {
    j = parseJSON(rest, off);
  } catch (e) {
    if (e instanceof NotStringArray) throw notStringArray(e, lm);
    throw e;
  }
  if (j !== undefined) return { args: j, json: true };
  return { args: splitWhitespace(rest, off), json: false };
}

/** BuildKit's parseWords: split on whitespace, keep quotes and escapes as written. */
function parseWords(rest: string, off: number, escape: string): OffWord[] {
  const words: OffWord[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let wordOff = 0;
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= rest.length; pos++) {
    let ch = pos < rest.length ? (rest[pos] ?? '') : '';
    if (phase === 'spaces') {
      if (pos === rest.length) break;
      if (isGoSpace(ch)) continue;
      phase = 'word';
      wordOff = pos;
    }
    if (pos === rest.length) {
      if (blankOK || word.length > 0) words.push({ value: word, off: off + wordOff });
      break;
    }
    if (phase === 'word') {
      if (isGoSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push({ value: word, off: off + wordOff });
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (pos + 1 === rest.length) continue;
        word += ch;
        pos++;
        ch = rest[pos] ?? '';
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (pos + 1 === rest.length) {
        phase = 'word';
        continue;
      }
      pos++;
      word += ch;
      ch = rest[pos] ?? '';
    }
    word += ch;
  }
  return words;
}

function parseNameVal(rest: string, off: number, key: 'ENV' | 'LABEL', escape: string): ArgsResult {
  const words = parseWords(rest, off, escape);
  const first = words[0];
  if (first === undefined) return { args: [], json: false };
  if (!first.value.includes('=')) {
    const m = WS_RE.exec(rest);
    if (m === null) {
      throw new KilnError('KLN0104', `${key} must have two arguments`, { hint: `write ${key} name=value` });
    }
    const vOff = off + m.index + m[0].length;
    return {
      args: [
        { value: rest.slice(0, m.index), off },
        { value: rest.slice(m.index + m[0].length), off: vOff },
        { value: '', off: vOff },
      ],
      json: false,
    };
  }
  const args: OffWord[] = [];
  for (const w of words) {
    const eq = w.value.indexOf('=');
    if (eq < 0) {
      throw new KilnError('KLN0104', `Syntax error - can't find = in ${JSON.stringify(w.value)}. Must be of the form: name=value`, {
        hint: 'quote values that contain spaces: name="a b"',
      });
    }
    args.push({ value: w.value.slice(0, eq), off: w.off });
    args.push({ value: w.value.slice(eq + 1), off: w.off + eq + 1 });
    args.push({ value: '=', off: w.off + eq });
  }
  return { args, json: false };
}

function parseHealthConfig(rest: string, off: number, lm: LineMap): ArgsResult {
  let sep = 0;
  while (sep < rest.length && !isGoSpace(rest[sep] ?? '')) sep++;
  let next = sep;
  while (next < rest.length && isGoSpace(rest[next] ?? '')) next++;
  if (sep === 0) return { args: [], json: false };
  const cmd = parseMaybeJSON(rest.slice(next), off + next, lm);
  return { args: [{ value: rest.slice(0, sep), off }, ...cmd.args], json: cmd.json };
}

function canContainHeredoc(node: Node): boolean {
  let n: Node = node;
  if (n.value === 'onbuild' && n.next !== undefined) n = n.next;
  return HEREDOC_INSTRUCTIONS.has(n.value) && !n.json;
}

type PendingHeredoc = Omit<Heredoc, 'content' | 'location'>;

const HEREDOC_RE = /^(\d*)<<(-?)([^<]*)$/;
const rawLex = new ShellLex('\\', { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });

function heredocsFromLine(line: string): PendingHeredoc[] {
  let words: string[];
  try {
    words = rawLex.processWords(line, new Map());
  } catch {
    words = [];
  }
  const docs: PendingHeredoc[] = [];
  for (const w of words) {
    const h = parseHeredoc(w);
    if (h !== undefined) docs.push(h);
  }
  return docs;
}

const EMPTY_ENV = new Map<string, string>();
const heredocLex = new ShellLex('\\', { skipUnsetEnv: true });
const heredocLexRaw = new ShellLex('\\', { skipUnsetEnv: true, rawQuotes: true });

function countQuotes(s: string): number {
  let n = 0;
  for (const c of s) if (c === "'" || c === '"') n++;
  return n;
}

/**
 * Parse one word as a heredoc opener (`<<EOF`, `<<-"EOF"`, `3<<EOF`), as BuildKit's ParseHeredoc.
 * Returns undefined when the word is not one.
 */
export function parseHeredoc(word: string): PendingHeredoc | undefined {
  const m = HEREDOC_RE.exec(word);
  if (m === null) return undefined;
  const rest = m[3] ?? '';
  if (rest === '') return undefined;
  let words: string[];
  let wordsRaw: string[];
  try {
    words = heredocLex.processWords(rest, EMPTY_ENV);
    if (words.length !== 1) return undefined;
    wordsRaw = heredocLexRaw.processWords(rest, EMPTY_ENV);
  } catch (e) {
    if (e instanceof KilnError) throw new KilnError('KLN0106', e.message, { cause: e });
    throw e;
  }
  if (wordsRaw.length !== words.length) {
    throw new KilnError('KLN0106', `internal lexing of heredoc produced inconsistent results: ${rest}`);
  }
  const name = words[0] ?? '';
  return {
    name,
    fileDescriptor: Number.parseInt(m[1] === '' || m[1] === undefined ? '0' : m[1], 10),
    expand: countQuotes(name) === countQuotes(wordsRaw[0] ?? ''),
    chomp: m[2] === '-',
  };
}

/** Strip leading tabs from every line (for `<<-` heredocs), as BuildKit's ChompHeredocContent. */
export function chompHeredocContent(src: string): string {
  return src.replace(/^\t+/gm, '');
}
