/**
 * Dockerfile word expansion, a port of BuildKit's `frontend/dockerfile/shell` Lex.
 *
 * Not a shell: no command substitution, globbing, arithmetic or tilde expansion. It expands
 * `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `${VAR?msg}`,
 * `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}`, `${VAR//pat/repl}`,
 * removes quotes and processes escapes (with the Dockerfile's escape token).
 */
import { KilnError } from '../errors.js';

/** Anything that can look a variable up; a `Map<string, string>` is one. Undefined means unset. */
export interface EnvGetter {
  get(name: string): string | undefined;
}

/** Lexer modes, as BuildKit's `Lex` fields. All default to false. */
export interface LexOptions {
  /** Keep quote characters in the output (quotes still group words). */
  rawQuotes?: boolean;
  /** Keep escape tokens in the output. */
  rawEscapes?: boolean;
  /** Leave unset variables as written (`$X`, `${X:-y}`) instead of expanding them. */
  skipUnsetEnv?: boolean;
  /** Treat quotes as ordinary characters (BuildKit's SkipProcessQuotes, used for heredoc bodies). */
  skipProcessQuotes?: boolean;
}

/** Result of {@link ShellLex.processWordWithMatches}, like BuildKit's ProcessWordResult. */
export interface ProcessWordResult {
  /** The expanded single word. */
  result: string;
  /** The expansion split into words (as {@link ShellLex.processWords} would). */
  words: string[];
  /** Names that were looked up and found (set, possibly empty). */
  matched: Set<string>;
  /** Names that were looked up and not set. */
  unmatched: Set<string>;
}

const EOF = '';

const SPACE_RE = /^[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]$/;
const LETTER_RE = /^\p{L}$/u;
const DIGIT_RE = /^\p{Nd}$/u;

/** Go's unicode.IsSpace. */
export function isGoSpace(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return ch !== '' && SPACE_RE.test(ch);
}

/** Go's unicode.IsDigit for one character. */
function isDigitChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return c >= 0x30 && c <= 0x39;
  return DIGIT_RE.test(ch);
}

/** A character that may continue a variable name: Go's unicode.IsLetter, IsDigit, or `_`. */
function isNameChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 0x80) return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
  return LETTER_RE.test(ch) || DIGIT_RE.test(ch);
}

/** Splits on Go whitespace, dropping empty fields (what the lexer does with a word free of `$`, quotes and escapes). */
function goFields(s: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const space = c < 0x80 ? c === 0x20 || (c >= 0x09 && c <= 0x0d) : SPACE_RE.test(s[i] ?? '');
    if (space) {
      if (start >= 0) out.push(s.slice(start, i));
      start = -1;
    } else if (start < 0) start = i;
  }
  if (start >= 0) out.push(s.slice(start));
  return out;
}

/** True when `s` has no character the lexer treats specially (so the word expands to itself). */
function isPlainWord(s: string, escapeToken: string, quotes: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x24 /* $ */ || (quotes && (c === 0x22 || c === 0x27)) || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return !s.includes(escapeToken);
}

function shellError(message: string): KilnError {
  return new KilnError('KLN0201', message);
}

/**
 * BuildKit's shell lexer. Create one per escape token (`\` or `` ` ``) and mode set; instances are
 * stateless between calls.
 */
export class ShellLex {
  /** `\\` or `` ` ``. */
  readonly escapeToken: string;
  /** The lexer modes. */
  readonly options: Readonly<LexOptions>;

  /** A lexer for one escape token and mode set. */
  constructor(escapeToken = '\\', options: LexOptions = {}) {
    this.escapeToken = escapeToken;
    this.options = options;
  }

  /** Expand `word` as one word (quotes removed, never split). Throws KilnError KLN0201 on bad syntax. */
  processWord(word: string, env: EnvGetter): string {
    // most words have nothing to expand: no lexer, no word split, no match sets
    if (this.#plain(word)) return word;
    return this.run(word, env, true).result;
  }

  /** Expand `word` and split it into words on unquoted whitespace (BuildKit's ProcessWords). */
  processWords(word: string, env: EnvGetter): string[] {
    if (this.#plain(word)) return goFields(word);
    return this.run(word, env, false).words;
  }

  /** Like {@link processWord}, also reporting which variables were found or missing (for ARG tracking). */
  processWordWithMatches(word: string, env: EnvGetter): ProcessWordResult {
    return this.run(word, env, true);
  }

  /** True when `word` has no character the lexer treats specially (it expands to itself). */
  #plain(word: string): boolean {
    return isPlainWord(word, this.escapeToken, this.options.skipProcessQuotes !== true);
  }

  private run(word: string, env: EnvGetter, capture: boolean): ProcessWordResult {
    if (this.#plain(word)) {
      // Nothing to expand, unquote or unescape: the word is its own result.
      return { result: word, words: goFields(word), matched: new Set(), unmatched: new Set() };
    }
    const sw = new ShellWord(word, env, this.escapeToken, this.options, capture);
    try {
      const [result, words] = sw.processStopOn(EOF, this.options.rawEscapes === true);
      return { result, words, matched: sw.matches ?? new Set(), unmatched: sw.nonmatches ?? new Set() };
    } catch (e) {
      if (e instanceof KilnError) throw new KilnError(e.code, `failed to process ${goQuote(word)}: ${e.message}`, { cause: e });
      throw e;
    }
  }
}

class Words {
  word = '';
  words: string[] = [];
  inWord = false;

  addChar(ch: string): void {
    if (isGoSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const space = c < 0x80 ? c === 0x20 || (c >= 0x09 && c <= 0x0d) : SPACE_RE.test(s[i] ?? '');
      if (!space) continue;
      if (i > start) this.addRawString(s.slice(start, i));
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
      start = i + 1;
    }
    if (start < s.length) this.addRawString(start === 0 ? s : s.slice(start));
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class ShellWord {
  /** The word's characters (code points); the string itself when it has no surrogate pairs. */
  private readonly chars: string | string[];
  private pos = 0;
  /** Variables looked up and found / not set (when capturing); made on the first one. */
  matches: Set<string> | undefined;
  nonmatches: Set<string> | undefined;

  constructor(
    word: string,
    private readonly env: EnvGetter,
    private readonly escapeToken: string,
    private readonly opts: LexOptions,
    private readonly capture: boolean,
  ) {
    this.chars = /[\ud800-\udfff]/.test(word) ? Array.from(word) : word;
  }

  private peek(): string {
    return this.chars[this.pos] ?? EOF;
  }
  private next(): string {
    const ch = this.chars[this.pos] ?? EOF;
    if (ch !== EOF) this.pos++;
    return ch;
  }

  processStopOn(stopChar: string, rawEscapes: boolean): [string, string[]] {
    let result = '';
    const words = new Words();
    while (this.peek() !== EOF) {
      let ch = this.peek();
      if (stopChar !== EOF && ch === stopChar) {
        this.next();
        return [result, words.getWords()];
      }
      if (ch === '$' || ((ch === "'" || ch === '"') && this.opts.skipProcessQuotes !== true)) {
        const tmp = ch === "'" ? this.processSingleQuote() : ch === '"' ? this.processDoubleQuote() : this.processDollar();
        result += tmp;
        if (ch === '$') words.addString(tmp);
        else words.addRawString(tmp);
        continue;
      }
      if (ch !== this.escapeToken) {
        // a run of ordinary characters, taken at once
        let end = this.pos + 1;
        const quotes = this.opts.skipProcessQuotes !== true;
        for (; end < this.chars.length; end++) {
          const c = this.chars[end] as string;
          if (c === stopChar || c === '$' || c === this.escapeToken || (quotes && (c === "'" || c === '"'))) break;
        }
        const run = typeof this.chars === 'string' ? this.chars.slice(this.pos, end) : this.chars.slice(this.pos, end).join('');
        this.pos = end;
        words.addString(run);
        result += run;
        continue;
      }
      ch = this.next();
      if (ch === this.escapeToken) {
        if (rawEscapes) {
          words.addRawChar(ch);
          result += ch;
        }
        ch = this.next();
        if (ch === EOF) break;
        words.addRawChar(ch);
      } else {
        words.addChar(ch);
      }
      result += ch;
    }
    if (stopChar !== EOF) throw shellError(`unexpected end of statement while looking for matching ${stopChar}`);
    return [result, words.getWords()];
  }

  private processSingleQuote(): string {
    let result = '';
    let ch = this.next();
    if (this.opts.rawQuotes === true) result += ch;
    for (;;) {
      ch = this.next();
      if (ch === EOF) throw shellError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.opts.rawQuotes === true) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    let result = '';
    const open = this.next();
    if (this.opts.rawQuotes === true) result += open;
    for (;;) {
      const p = this.peek();
      if (p === EOF) throw shellError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        const ch = this.next();
        if (this.opts.rawQuotes === true) result += ch;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next();
      if (ch === this.escapeToken) {
        if (this.opts.rawEscapes === true) result += ch;
        const n = this.peek();
        if (n === EOF) continue;
        if (n === '"' || n === '$' || n === this.escapeToken) ch = this.next();
      }
      result += ch;
    }
  }

  private processDollar(): string {
    this.next();
    const skipUnset = this.opts.skipUnsetEnv === true;
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const value = this.getEnv(name);
      if (value === undefined && skipUnset) return '$' + name;
      return value ?? '';
    }
    this.next();
    const p = this.peek();
    if (p === EOF) throw shellError("syntax error: missing '}'");
    if (p === '{' || p === '}' || p === ':') throw shellError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    let chs = ch;
    let nullIsUnset = false;
    switch (ch) {
      case '}': {
        const value = this.getEnv(name);
        if (value === undefined && skipUnset) return '${' + name + '}';
        return value ?? '';
      }
      case ':':
      case '+':
      case '-':
      case '?':
      case '#':
      case '%': {
        if (ch === ':') {
          nullIsUnset = true;
          ch = this.next();
          chs += ch;
        }
        const rawEscapes = ch === '#' || ch === '%';
        if (nullIsUnset && rawEscapes) throw shellError(`unsupported modifier (${chs}) in substitution`);
        let word: string;
        try {
          [word] = this.processStopOn('}', rawEscapes);
        } catch (e) {
          if (this.peek() === EOF) throw shellError("syntax error: missing '}'");
          throw e;
        }
        const value = this.getEnv(name);
        if (skipUnset && value === undefined) return '${' + name + chs + word + '}';
        const set = value !== undefined;
        const v = value ?? '';
        switch (ch) {
          case '-':
            return !set || (nullIsUnset && v === '') ? word : v;
          case '+':
            return !set || (nullIsUnset && v === '') ? '' : word;
          case '?':
            if (!set) throw shellError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
            if (nullIsUnset && v === '') throw shellError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
            return v;
          case '%':
          case '#': {
            let greedy = false;
            if (word.length > 0 && word[0] === ch) {
              greedy = true;
              word = word.slice(1);
            }
            return ch === '%' ? trimSuffix(word, v, greedy) : trimPrefix(word, v, greedy);
          }
          default:
            throw shellError(`unsupported modifier (${chs}) in substitution`);
        }
      }
      case '/': {
        const replaceAll = this.peek() === '/';
        if (replaceAll) this.next();
        let pattern: string;
        try {
          [pattern] = this.processStopOn('/', true);
        } catch (e) {
          if (this.peek() === EOF) throw shellError("syntax error: missing '/' in ${}");
          throw e;
        }
        let replacement: string;
        try {
          [replacement] = this.processStopOn('}', true);
        } catch (e) {
          if (this.peek() === EOF) throw shellError("syntax error: missing '}'");
          throw e;
        }
        const value = this.getEnv(name);
        if (skipUnset && value === undefined) return '${' + name + '/' + pattern + '/' + replacement + '}';
        const re = patternRegex(pattern, true, false, replaceAll);
        const v = value ?? '';
        if (replaceAll) return v.replace(re, () => goExpandNoGroups(replacement));
        const m = re.exec(v);
        if (m === null) return v;
        return v.slice(0, m.index) + replacement + v.slice(m.index + m[0].length);
      }
      default:
        throw shellError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private processName(): string {
    let name = '';
    while (this.peek() !== EOF) {
      let ch = this.peek();
      if (name.length === 0 && isDigitChar(ch)) {
        while (this.peek() !== EOF && isDigitChar(this.peek())) name += this.next();
        return name;
      }
      if (name.length === 0 && '@*#?-$!0'.includes(ch)) return this.next();
      if (!isNameChar(ch)) break;
      ch = this.next();
      name += ch;
    }
    return name;
  }

  private getEnv(name: string): string | undefined {
    const v = this.env.get(name);
    if (this.capture) {
      if (v !== undefined) (this.matches ??= new Set()).add(name);
      else (this.nonmatches ??= new Set()).add(name);
    }
    return v;
  }
}

/** Go regexp.Regexp.ReplaceAllString expands `$name`/`${name}`; we have no groups so they are empty. */
function goExpandNoGroups(template: string): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    const rest = template.slice(i + 1);
    if (rest.startsWith('$')) {
      out += '$';
      i++;
      continue;
    }
    const braced = /^\{([\p{L}\p{Nd}_]+)\}/u.exec(rest);
    if (braced !== null) {
      i += braced[0].length;
      continue;
    }
    const bare = /^[\p{L}\p{Nd}_]+/u.exec(rest);
    if (bare !== null) {
      i += bare[0].length;
      continue;
    }
    out += '$';
  }
  return out;
}

function patternRegex(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  const star = greedy ? '[^\\n]*' : '[^\\n]*?';
  for (let i = 0; i < chars.length; i++) {
    let tok = chars[i] ?? '';
    switch (tok) {
      case '*':
        out += star;
        continue;
      case '?':
        out += '[^\\n]';
        continue;
      case '\\':
        if (chars[i + 1] === '}') continue;
        out += '\\';
        i++;
        tok = chars[i] ?? '';
        if (tok !== '*' && tok !== '?' && tok !== '\\') {
          throw shellError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${tok}'`);
        }
        break;
      case '.':
      case '+':
      case '(':
      case ')':
      case '|':
      case '[':
      case ']':
      case '{':
      case '}':
      case '^':
      case '$':
        out += '\\';
        break;
      case '/':
      case '-':
        break;
      default:
        break;
    }
    out += tok;
  }
  return new RegExp(out, global ? 'gu' : 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = patternRegex(pattern, greedy, true).exec(value);
  return m === null ? value : value.slice(m.index + m[0].length);
}

function reversePattern(pattern: string): string {
  const p = Array.from(pattern);
  const out: string[] = new Array<string>(p.length);
  const last = p.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = p[i] ?? '';
    const o = last - i;
    if (tok === '\\' && i !== last) {
      out[o - 1] = tok;
      out[o] = p[i + 1] ?? '';
      i += 2;
    } else {
      out[o] = tok;
      i++;
    }
  }
  return out.join('');
}

function reverseString(s: string): string {
  return Array.from(s).reverse().join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

/** Go's strconv.Quote: a double-quoted string with Go escapes (used in messages and AST dumps). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp < 0x7f) out += ch;
    else if (/^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch) || ch === ' ') out += ch;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
    else if (cp > 0xffff) out += '\\U' + cp.toString(16).padStart(8, '0');
    else out += '\\u' + cp.toString(16).padStart(4, '0');
  }
  return out + '"';
}
