/**
 * The patterns of a source policy, as BuildKit evaluates them in Go: `WILDCARD` selectors are
 * its util/wildcard (`*` is `(.*)`, anchored, `**` refused), `REGEX` selectors Go regexps
 * (unanchored `MatchString`), and `${1}` in an update's identifier is Go's `Regexp.Expand`.
 */

/** Go's `regexp.QuoteMeta` set. */
const GO_META = /[\\.+*?()|[\]{}^$]/g;

/** Thrown for a pattern JavaScript cannot run as Go would; the caller adds the JSON path. */
export class PatternError extends Error {
  override readonly name = 'PatternError';
}

/** A wildcard selector as a regular expression (BuildKit's `wildcard.Wildcard2Regexp`). */
export function compileWildcard(wildcard: string): RegExp {
  const quoted = wildcard.replace(GO_META, (c) => `\\${c}`);
  if (quoted.includes('\\*\\*')) throw new PatternError('invalid wildcard: "**"');
  return new RegExp(`^${quoted.replaceAll('\\*', '(.*)')}$`);
}

/** Go's ASCII classes (`[[:alpha:]]`) as code point ranges (regexp/syntax perl_groups.go). */
const POSIX_CLASSES: Readonly<Record<string, readonly (readonly [number, number])[]>> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

const hex4 = (c: number): string => `\\u${c.toString(16).padStart(4, '0')}`;

/** `[:name:]` or `[:^name:]` (inside a class) as JavaScript class ranges; a negation is taken within the BMP. */
function posixClass(name: string, negated: boolean): string {
  const ranges = POSIX_CLASSES[name];
  if (ranges === undefined) throw new PatternError(`invalid character class [:${negated ? '^' : ''}${name}:]`);
  let out: (readonly [number, number])[] = [...ranges];
  if (negated) {
    const inverse: [number, number][] = [];
    let next = 0;
    for (const [lo, hi] of ranges) {
      if (lo > next) inverse.push([next, lo - 1]);
      next = hi + 1;
    }
    if (next <= 0xffff) inverse.push([next, 0xffff]);
    out = inverse;
  }
  return out.map(([lo, hi]) => (lo === hi ? hex4(lo) : `${hex4(lo)}-${hex4(hi)}`)).join('');
}

/**
 * A Go (RE2) regular expression as a JavaScript one with the same matches for the syntax both
 * share: `(?P<name>…)` becomes `(?<name>…)`, leading `(?i)`, `(?s)` and `(?m)` become flags,
 * `\A` and `\z` the input's start and end, `[[:alpha:]]` and the other ASCII classes their
 * ranges, `\x{41}` a `\u` escape. Constructs JavaScript would read differently (`\Q…\E`, `(?U)`,
 * flags in the middle, Unicode classes `\pL` `\p{Greek}`, which JavaScript without the `u` flag
 * reads as the letter p) are refused rather than matched wrongly.
 */
export function compileGoRegexp(source: string): RegExp {
  let flags = '';
  let body = source;
  const lead = /^\(\?([imsU]+)\)/.exec(body);
  if (lead !== undefined && lead !== null) {
    const f = lead[1] ?? '';
    if (f.includes('U')) throw new PatternError('the ungreedy flag (?U) is not supported');
    flags = [...new Set(f)].join('');
    body = body.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c === '\\') {
      const n = body[i + 1] ?? '';
      if (n === 'Q' || n === 'E') throw new PatternError('\\Q…\\E quoting is not supported: escape each character instead');
      if (n === 'p' || n === 'P') throw new PatternError(`Unicode classes (\\${n}…) are not supported: write the characters or ranges`);
      if (n === 'x' && body[i + 2] === '{') {
        const close = body.indexOf('}', i + 3);
        const code = close < 0 ? NaN : Number.parseInt(body.slice(i + 3, close), 16);
        if (!/^[0-9a-fA-F]{1,4}$/.test(close < 0 ? '' : body.slice(i + 3, close)) || !(code <= 0xffff)) throw new PatternError('\\x{…} is supported for code points up to FFFF only');
        out += hex4(code);
        i = close;
        continue;
      }
      if (/[0-9A-Za-z]/.test(n) && !goEscape(n, body[i + 2] ?? '', inClass)) {
        throw new PatternError(`\\${n} is not an escape of Go's regular expressions${/[1-9]/.test(n) ? ' (back-references are not supported)' : ''}`);
      }
      // Whatever the flags (a JavaScript `^` or `$` under (?m) would also match at line ends).
      if (!inClass && n === 'A') out += '(?<![\\s\\S])';
      else if (!inClass && n === 'z') out += '(?![\\s\\S])';
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      const posix = c === '[' && body[i + 1] === ':' ? /^\[:(\^?)([a-z]*):\]/.exec(body.slice(i)) : null;
      if (posix !== null) {
        out += posixClass(posix[2] ?? '', posix[1] === '^');
        i += posix[0].length - 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A `]` right after `[` or `[^` is a literal in both syntaxes.
      if (body[i + 1] === '^') out += body[++i] ?? '';
      if (body[i + 1] === ']') out += `\\${body[++i] ?? ''}`;
      continue;
    }
    if (c === '(' && body.startsWith('(?P<', i)) {
      out += '(?<';
      i += 3;
      continue;
    }
    if (c === '(' && /^\(\?[imsU-]+[:)]/.test(body.slice(i))) throw new PatternError('inline flags are only supported at the start of the pattern');
    if (c === '(' && /^\(\?<?[=!]/.test(body.slice(i))) throw new PatternError('look-ahead and look-behind are not supported by Go\'s regular expressions');
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch (e) {
    throw new PatternError(e instanceof Error ? e.message.replace(/^Invalid regular expression: /, '') : String(e));
  }
}

/**
 * Whether `\\n` (a letter or digit; `next` the character after it) is an escape Go accepts, in a
 * class or not: an octal code (`\\0`, or `\\1`–`\\7` followed by an octal digit, where one digit
 * alone would be a back-reference), a control character, a Perl class, and outside a class the
 * assertions. JavaScript reads the others as the letter itself, a back-reference or `\\u`, `\\c`.
 */
function goEscape(n: string, next: string, inClass: boolean): boolean {
  if (n === '0') return true;
  if (n >= '1' && n <= '7') return next >= '0' && next <= '7';
  if ('afnrtvdDsSwW'.includes(n)) return true;
  return !inClass && 'bBAz'.includes(n);
}

const NAME_CHAR = /[\p{L}\p{Nd}_]/u;

/**
 * Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}` are the match's groups (empty when out
 * of range, unmatched or unknown), `$$` is `$`, and a `$` that starts no name stays as written.
 * As in Go, the longest name is taken: `$1x` is the group named `1x`, so write `${1}x`.
 */
export function expandTemplate(template: string, m: RegExpExecArray): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const j = template.indexOf('$', i);
    if (j < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, j);
    if (template[j + 1] === '$') {
      out += '$';
      i = j + 2;
      continue;
    }
    const braced = template[j + 1] === '{';
    let k = braced ? j + 2 : j + 1;
    while (k < template.length && NAME_CHAR.test(template[k] as string)) k++;
    const name = template.slice(braced ? j + 2 : j + 1, k);
    if (name === '' || (braced && template[k] !== '}')) {
      out += '$';
      i = j + 1;
      continue;
    }
    out += groupValue(m, name);
    i = braced ? k + 1 : k;
  }
  return out;
}

/** The group names (`1`, `tag`) a {@link expandTemplate} template refers to, as it reads them. */
export function templateRefs(template: string): string[] {
  const refs: string[] = [];
  for (let i = template.indexOf('$'); i >= 0; i = template.indexOf('$', i + 1)) {
    if (template[i + 1] === '$') {
      i++;
      continue;
    }
    const braced = template[i + 1] === '{';
    let k = braced ? i + 2 : i + 1;
    while (k < template.length && NAME_CHAR.test(template[k] as string)) k++;
    const name = template.slice(braced ? i + 2 : i + 1, k);
    if (name !== '' && (!braced || template[k] === '}')) refs.push(name);
  }
  return refs;
}

/** The numbered and named capture groups of `re`. */
export function groupsOf(re: RegExp): { readonly count: number; readonly names: readonly string[] } {
  const m = new RegExp(`${re.source}|`, re.flags.replace('g', '')).exec('') as RegExpExecArray;
  return { count: m.length - 1, names: Object.keys(m.groups ?? {}) };
}

function groupValue(m: RegExpExecArray, name: string): string {
  if (/^[0-9]+$/.test(name) && name.length < 9) return m[Number(name)] ?? '';
  return m.groups?.[name] ?? '';
}

/**
 * Go's `Regexp.ReplaceAllString(src, template)`: every match replaced by the expanded template,
 * an empty match right after a previous match skipped (JavaScript's `replace` would replace it).
 */
export function goReplaceAll(src: string, re: RegExp, template: string): string {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
  let out = '';
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length) {
    g.lastIndex = searchPos;
    const m = g.exec(src);
    if (m === null) break;
    const start = m.index;
    const end = start + m[0].length;
    out += src.slice(lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0) out += expandTemplate(template, m);
    lastMatchEnd = end;
    const width = (src.codePointAt(searchPos) ?? 0) > 0xffff ? 2 : 1;
    searchPos = searchPos + width > end ? searchPos + width : end;
  }
  return out + src.slice(lastMatchEnd);
}
