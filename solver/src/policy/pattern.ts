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

/**
 * A Go (RE2) regular expression as a JavaScript one with the same matches for the syntax both
 * share: `(?P<name>…)` becomes `(?<name>…)`, leading `(?i)`, `(?s)` and `(?m)` become flags,
 * `\A` and `\z` the input's start and end. Constructs JavaScript would read differently (`\Q…\E`,
 * `(?U)`, flags in the middle) are refused rather than matched wrongly.
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
      if (!inClass && n === 'A') out += '^';
      else if (!inClass && n === 'z') out += '$';
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
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
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch (e) {
    throw new PatternError(e instanceof Error ? e.message.replace(/^Invalid regular expression: /, '') : String(e));
  }
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
