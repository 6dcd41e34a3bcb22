import { createHash, randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { MAX_NESTING } from './parser.js';
import type { Pos, Value } from './ast.js';
import { equal, evalError, limitError, MAX_LIST, setKey, sizeAtMost, toBool, toNum, toStr, typeName, type HclFunction } from './eval.js';

const isList = (v: Value): v is readonly Value[] => Array.isArray(v);
const isObject = (v: Value): v is { readonly [key: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);

type Impl = (args: readonly Value[], pos: Pos, name: string) => Value;

/** Checks the argument count of a fixed-arity function. */
function fixed(n: number, f: Impl): Impl {
  return (args, pos, name) => {
    if (args.length !== n) throw evalError(`${name}() takes ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`, pos);
    return f(args, pos, name);
  };
}

const arg = (args: readonly Value[], i: number): Value => args[i] ?? null;
const str = (args: readonly Value[], i: number, pos: Pos, name: string): string => toStr(arg(args, i), pos, `argument ${i + 1} of ${name}()`);
const num = (args: readonly Value[], i: number, pos: Pos, name: string): number => toNum(arg(args, i), pos, `argument ${i + 1} of ${name}()`);
const list = (v: Value, pos: Pos, what: string): readonly Value[] => {
  if (isList(v)) return v;
  throw evalError(`${what} must be a list, got ${typeName(v)}`, pos);
};
const obj = (v: Value, pos: Pos, what: string): { readonly [key: string]: Value } => {
  if (isObject(v)) return v;
  throw evalError(`${what} must be a map or object, got ${typeName(v)}`, pos);
};

/** Go's fmt verbs as cty's format() takes them: %s %d %f %.Nf %t %v %q %#v %%. */
function format(spec: string, values: readonly Value[], pos: Pos): string {
  let n = 0;
  return spec.replace(/%([-+# 0]*)(\d+)?(?:\.(\d+))?([sdftvqxXobe%])/g, (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (n >= values.length) throw evalError(`format(): not enough arguments for "${spec}"`, pos);
    const v = values[n++] ?? null;
    let out: string;
    switch (verb) {
      case 's':
        out = toStr(v, pos, 'a %s value');
        break;
      case 'd':
        out = Math.trunc(toNum(v, pos, 'a %d value')).toFixed(0);
        break;
      case 'f':
      case 'e':
        out = verb === 'f' ? toNum(v, pos, 'a %f value').toFixed(prec === undefined ? 6 : Number(prec)) : toNum(v, pos).toExponential(prec === undefined ? 6 : Number(prec));
        break;
      case 't':
        out = String(toBool(v, pos, 'a %t value'));
        break;
      case 'q':
        out = JSON.stringify(toStr(v, pos, 'a %q value'));
        break;
      case 'x':
      case 'X':
        out = typeof v === 'string' ? Buffer.from(v).toString('hex') : Math.trunc(toNum(v, pos)).toString(16);
        if (verb === 'X') out = out.toUpperCase();
        break;
      case 'o':
        out = Math.trunc(toNum(v, pos)).toString(8);
        break;
      case 'b':
        out = Math.trunc(toNum(v, pos)).toString(2);
        break;
      default:
        out = flags.includes('#') || isList(v) || isObject(v) || v === null ? JSON.stringify(v) : toStr(v, pos);
    }
    const w = width === undefined ? 0 : Number(width);
    return flags.includes('-') ? out.padEnd(w) : out.padStart(w, flags.includes('0') && verb !== 's' ? '0' : ' ');
  });
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** cty's formatdate(spec, RFC3339 timestamp), in UTC offsets as written. */
function formatdate(spec: string, ts: string, pos: Pos): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (m === null) throw evalError(`formatdate(): "${ts}" is not an RFC 3339 timestamp`, pos, 'e.g. 2024-01-02T15:04:05Z, as timestamp() returns');
  const [, Y, Mo, D, h, mi, s, , zone] = m;
  const date = new Date(Date.UTC(Number(Y), Number(Mo) - 1, Number(D)));
  const pad = (x: number): string => String(x).padStart(2, '0');
  const h24 = Number(h);
  const tokens: Record<string, string> = {
    YYYY: Y ?? '',
    YY: (Y ?? '').slice(2),
    MMMM: MONTHS[Number(Mo) - 1] ?? '',
    MMM: (MONTHS[Number(Mo) - 1] ?? '').slice(0, 3),
    MM: Mo ?? '',
    M: String(Number(Mo)),
    DD: D ?? '',
    D: String(Number(D)),
    EEEE: DAYS[date.getUTCDay()] ?? '',
    EEE: (DAYS[date.getUTCDay()] ?? '').slice(0, 3),
    hh: h ?? '',
    h: String(h24),
    HH: pad(h24 % 12 === 0 ? 12 : h24 % 12),
    H: String(h24 % 12 === 0 ? 12 : h24 % 12),
    AA: h24 < 12 ? 'AM' : 'PM',
    aa: h24 < 12 ? 'am' : 'pm',
    mm: mi ?? '',
    m: String(Number(mi)),
    ss: s ?? '',
    s: String(Number(s)),
    ZZZZZ: zone === 'Z' ? '+00:00' : (zone ?? ''),
    ZZZZ: zone === 'Z' ? '+0000' : (zone ?? '').replace(':', ''),
    ZZZ: zone === 'Z' ? 'UTC' : (zone ?? ''),
    Z: zone ?? '',
  };
  let out = '';
  const re = /'([^']*)'|YYYY|YY|MMMM|MMM|MM|M|DD|D|EEEE|EEE|hh|h|HH|H|AA|aa|mm|m|ss|s|ZZZZZ|ZZZZ|ZZZ|Z|[A-Za-z]+|[^A-Za-z']+/g;
  for (let t = re.exec(spec); t !== null; t = re.exec(spec)) {
    const tok = t[0];
    if (t[1] !== undefined) out += t[1] === '' ? "'" : t[1];
    else if (tokens[tok] !== undefined) out += tokens[tok];
    else if (/^[A-Za-z]/.test(tok)) throw evalError(`formatdate(): unsupported sequence "${tok}" in "${spec}"`, pos, "quote literal letters: 'T'");
    else out += tok;
  }
  return out;
}

function flatten(v: readonly Value[]): Value[] {
  return v.flatMap((x) => (isList(x) ? flatten(x) : [x]));
}

function jsonToValue(v: unknown): Value {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(jsonToValue);
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonToValue(x)]));
  return null;
}

/** A value that jsonencode() or flatten() would walk: refused past {@link MAX_LIST} values in all (shared parts count each time). */
function walkable(v: Value, pos: Pos, name: string): Value {
  if (!sizeAtMost(v, MAX_LIST)) throw limitError(`${name}(): the value is too large (more than ${MAX_LIST} values in all)`, pos, 'a function makes it grow without bound');
  return v;
}

/** Whether `v` nests at most `max` levels of lists and objects (iterative). */
function depthAtMost(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop() ?? [null, 0];
    if (typeof x !== 'object' || x === null) continue;
    if (d >= max) return false;
    for (const y of Object.values(x)) stack.push([y, d + 1]);
  }
  return true;
}

/** RE2's ASCII classes (`[[:digit:]]`), which JavaScript has not: each as the ranges it stands for. */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/**
 * The RE2 syntax JavaScript reads otherwise, rewritten: `[[:digit:]]` (JavaScript took it as the
 * class `[[:digt]` and a `]`), `\A` and `\z` (the start and end of the text; JavaScript took them
 * as the letters), and a `]` first in a class, which RE2 takes literally (JavaScript's `[]` is an
 * empty class). Without this, can(regex("^[[:alnum:]]+$", NAME)) was false for every value.
 */
function re2Syntax(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const e = pattern[i + 1] ?? '';
      out += !inClass && e === 'A' ? '(?<![\\s\\S])' : !inClass && e === 'z' ? '(?![\\s\\S])' : `\\${e}`;
      i++;
    } else if (!inClass && c === '[') {
      inClass = true;
      out += c;
      if (pattern[i + 1] === '^') out += pattern[++i] as string;
      if (pattern[i + 1] === ']') {
        out += '\\]';
        i++;
      }
    } else if (inClass && c === '[' && pattern[i + 1] === ':' && pattern.indexOf(':]', i + 2) >= 0) {
      // as Go's parseNamedClass: a name it does not know is an error, not a literal
      const end = pattern.indexOf(':]', i + 2);
      const name = pattern.slice(i + 2, end);
      const ranges = Object.hasOwn(POSIX_CLASSES, name) ? POSIX_CLASSES[name] : undefined;
      if (ranges === undefined) throw new Error(`invalid character class range: [:${name}:]${name.startsWith('^') ? ' (kiln has no negated ASCII classes: write [^…] with the ranges)' : ''}`);
      out += ranges;
      i = end + 1;
    } else {
      if (inClass && c === ']') inClass = false;
      out += c;
    }
  }
  return out;
}

let linearFallback = false;

/**
 * A Go RE2 pattern as a global JavaScript RegExp. RE2 has no backreferences or lookarounds
 * (refused, as Go refuses them) and runs in linear time: V8 is told to switch a regexp that
 * backtracks excessively to its linear engine, which runs every pattern RE2 accepts, so a pattern
 * such as `(a+)+$` cannot hang kiln. (A process-wide V8 flag, set once; it only changes what
 * happens to a regexp that backtracks that much.) Leading RE2 flags `(?ims)` become RegExp flags.
 */
function re2(pattern: string, pos: Pos, fn = 'regex_replace'): RegExp {
  if (/\\[1-9]|\\k<|\(\?<?[=!]/.test(pattern)) throw evalError(`${fn}(): "${pattern}" is not RE2 syntax (no backreferences or lookarounds)`, pos, 'Go\'s regexp package (RE2) has neither');
  const m = /^\(\?([ims]+)\)/.exec(pattern);
  if (!linearFallback) {
    setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
    linearFallback = true;
  }
  try {
    return new RegExp(re2Syntax(m === null ? pattern : pattern.slice(m[0].length)), `g${[...new Set(m?.[1] ?? '')].join('')}`);
  } catch (e) {
    throw evalError(`${fn}(): invalid pattern: ${e instanceof Error ? e.message : String(e)}`, pos);
  }
}

/**
 * One match as cty's regex returns it: the whole match when the pattern has no capture groups,
 * a list of the groups, or an object of the named ones (RE2's `(?P<name>…)` is JavaScript's
 * `(?<name>…)`); an unmatched group is "" as Go leaves it.
 */
function matchValue(m: RegExpMatchArray): Value {
  if (m.length === 1) return m[0];
  if (m.groups !== undefined) return Object.fromEntries(Object.entries(m.groups).map(([k, v]) => [k, v ?? '']));
  return m.slice(1).map((g) => g ?? '');
}

/** RE2's `(?P<name>…)` named groups, which JavaScript writes `(?<name>…)`. */
const jsPattern = (pattern: string): string => pattern.replace(/\(\?P</g, '(?<');

const hash = (alg: string): Impl => fixed(1, (a, p, n) => createHash(alg).update(str(a, 0, p, n)).digest('hex'));
const cmp = (f: (a: number, b: number) => boolean): Impl => fixed(2, (a, p, n) => f(num(a, 0, p, n), num(a, 1, p, n)));

/** The functions of buildx's stdlib that kiln implements, by name. */
const STDLIB: Readonly<Record<string, Impl>> = {
  // strings
  upper: fixed(1, (a, p, n) => str(a, 0, p, n).toUpperCase()),
  lower: fixed(1, (a, p, n) => str(a, 0, p, n).toLowerCase()),
  title: fixed(1, (a, p, n) => str(a, 0, p, n).replace(/\b\w/g, (c) => c.toUpperCase())),
  trimspace: fixed(1, (a, p, n) => str(a, 0, p, n).trim()),
  chomp: fixed(1, (a, p, n) => str(a, 0, p, n).replace(/(\r?\n)+$/, '')),
  trimprefix: fixed(2, (a, p, n) => {
    const s = str(a, 0, p, n);
    const x = str(a, 1, p, n);
    return x !== '' && s.startsWith(x) ? s.slice(x.length) : s;
  }),
  trimsuffix: fixed(2, (a, p, n) => {
    const s = str(a, 0, p, n);
    const x = str(a, 1, p, n);
    return x !== '' && s.endsWith(x) ? s.slice(0, -x.length) : s;
  }),
  trim: fixed(2, (a, p, n) => {
    const set = new Set(str(a, 1, p, n));
    const chars = [...str(a, 0, p, n)];
    let i = 0;
    let j = chars.length;
    while (i < j && set.has(chars[i] ?? '')) i++;
    while (j > i && set.has(chars[j - 1] ?? '')) j--;
    return chars.slice(i, j).join('');
  }),
  replace: fixed(3, (a, p, n) => str(a, 0, p, n).split(str(a, 1, p, n)).join(str(a, 2, p, n))),
  // cty's regex and regexall (buildx's stdlib; validation blocks use can(regex(…)))
  regex: fixed(2, (a, p, n) => {
    const re = re2(jsPattern(str(a, 0, p, n)), p, 'regex');
    const m = re.exec(str(a, 1, p, n));
    if (m === null) throw evalError('regex(): pattern did not match any part of the given string', p, 'can(regex(…)) tests for a match; regexall(…) gives a list of all of them');
    return matchValue(m);
  }),
  regexall: fixed(2, (a, p, n) => {
    const re = re2(jsPattern(str(a, 0, p, n)), p, 'regexall');
    return [...str(a, 1, p, n).matchAll(re)].map((m) => matchValue(m));
  }),
  regex_replace: fixed(3, (a, p, n) => str(a, 0, p, n).replace(re2(jsPattern(str(a, 1, p, n)), p), str(a, 2, p, n).replace(/\$\{?(\d+)\}?/g, '$$$1'))),
  substr: fixed(3, (a, p, n) => {
    const chars = [...str(a, 0, p, n)];
    let off = num(a, 1, p, n);
    if (off < 0) off += chars.length;
    const len = num(a, 2, p, n);
    return chars.slice(off, len < 0 ? undefined : off + len).join('');
  }),
  strlen: fixed(1, (a, p, n) => [...str(a, 0, p, n)].length),
  split: fixed(2, (a, p, n) => str(a, 1, p, n).split(str(a, 0, p, n))),
  join: (a, p, n) => {
    if (a.length < 2) throw evalError('join() takes a separator and at least one list', p);
    const sep = str(a, 0, p, n);
    return a
      .slice(1)
      .flatMap((l, i) => list(l, p, `argument ${i + 2} of join()`))
      .map((x) => toStr(x, p, 'an element of join()'))
      .join(sep);
  },
  format: (a, p, n) => {
    if (a.length < 1) throw evalError('format() takes a format string', p);
    return format(str(a, 0, p, n), a.slice(1), p);
  },
  formatlist: (a, p, n) => {
    const spec = str(a, 0, p, n);
    const rest = a.slice(1);
    const len = Math.max(0, ...rest.filter(isList).map((l) => l.length));
    return Array.from({ length: len }, (_, i) => format(spec, rest.map((r) => (isList(r) ? (r[i] ?? null) : r)), p));
  },
  sanitize: fixed(1, (a, p, n) => str(a, 0, p, n).replace(/[^a-zA-Z0-9]/g, '_')),
  indent: fixed(2, (a, p, n) => str(a, 1, p, n).replace(/\n/g, `\n${' '.repeat(num(a, 0, p, n))}`)),
  // collections
  length: fixed(1, (a, p) => {
    const v = arg(a, 0);
    if (typeof v === 'string') return [...v].length;
    if (isList(v)) return v.length;
    if (isObject(v)) return Object.keys(v).length;
    throw evalError(`length() needs a string, list or map, got ${typeName(v)}`, p);
  }),
  concat: (a, p) => a.flatMap((l, i) => list(l, p, `argument ${i + 1} of concat()`)),
  contains: fixed(2, (a, p) => list(arg(a, 0), p, 'argument 1 of contains()').some((x) => equal(x, arg(a, 1)))),
  distinct: fixed(1, (a, p) => list(arg(a, 0), p, 'argument 1 of distinct()').filter((x, i, all) => all.findIndex((y) => equal(x, y)) === i)),
  element: fixed(2, (a, p, n) => {
    const l = list(arg(a, 0), p, 'argument 1 of element()');
    if (l.length === 0) throw evalError('element() of an empty list', p);
    const i = num(a, 1, p, n);
    return l[((i % l.length) + l.length) % l.length] ?? null;
  }),
  index: fixed(2, (a, p) => {
    const i = list(arg(a, 0), p, 'argument 1 of index()').findIndex((x) => equal(x, arg(a, 1)));
    if (i < 0) throw evalError('index(): the value is not in the list', p);
    return i;
  }),
  flatten: fixed(1, (a, p, n) => flatten(list(walkable(arg(a, 0), p, n), p, 'argument 1 of flatten()'))),
  keys: fixed(1, (a, p) => Object.keys(obj(arg(a, 0), p, 'argument 1 of keys()')).sort()),
  values: fixed(1, (a, p) => {
    const o = obj(arg(a, 0), p, 'argument 1 of values()');
    return Object.keys(o).sort().map((k) => o[k] ?? null);
  }),
  lookup: (a, p, n) => {
    if (a.length !== 2 && a.length !== 3) throw evalError('lookup() takes a map, a key and an optional default', p);
    const o = obj(arg(a, 0), p, 'argument 1 of lookup()');
    const k = str(a, 1, p, n);
    if (Object.hasOwn(o, k)) return o[k] ?? null;
    if (a.length === 3) return arg(a, 2);
    throw evalError(`lookup(): no key "${k}" and no default`, p, 'pass a default as the third argument');
  },
  merge: (a, p) => {
    const out: Record<string, Value> = {};
    a.forEach((x, i) => {
      if (x !== null) for (const [k, v] of Object.entries(obj(x, p, `argument ${i + 1} of merge()`))) setKey(out, k, v);
    });
    return out;
  },
  reverse: fixed(1, (a, p) => [...list(arg(a, 0), p, 'argument 1 of reverse()')].reverse()),
  slice: fixed(3, (a, p, n) => list(arg(a, 0), p, 'argument 1 of slice()').slice(num(a, 1, p, n), num(a, 2, p, n))),
  sort: fixed(1, (a, p) => list(arg(a, 0), p, 'argument 1 of sort()').map((x) => toStr(x, p, 'an element of sort()')).sort()),
  range: (a, p, n) => {
    if (a.length < 1 || a.length > 3) throw evalError('range() takes 1 to 3 numbers', p);
    const [start, end, step] = a.length === 1 ? [0, num(a, 0, p, n), 1] : [num(a, 0, p, n), num(a, 1, p, n), a.length === 3 ? num(a, 2, p, n) : 1];
    if (step === 0) throw evalError('range(): the step cannot be 0', p);
    const out: number[] = [];
    for (let i = start; step > 0 ? i < end : i > end; i += step) {
      out.push(i);
      if (out.length > 1024) throw evalError('range(): more than 1024 elements', p);
    }
    return out;
  },
  compact: fixed(1, (a, p) => list(arg(a, 0), p, 'argument 1 of compact()').filter((x) => x !== null && x !== '')),
  coalesce: (a, p) => {
    for (const x of a) if (x !== null && x !== '') return x;
    throw evalError('coalesce(): all arguments are null or empty', p);
  },
  coalescelist: (a, p) => {
    for (const x of a) if (isList(x) && x.length > 0) return x;
    throw evalError('coalescelist(): all lists are empty', p);
  },
  zipmap: fixed(2, (a, p) => {
    const ks = list(arg(a, 0), p, 'argument 1 of zipmap()');
    const vs = list(arg(a, 1), p, 'argument 2 of zipmap()');
    return Object.fromEntries(ks.map((k, i) => [toStr(k, p), vs[i] ?? null]));
  }),
  // numbers
  abs: fixed(1, (a, p, n) => Math.abs(num(a, 0, p, n))),
  ceil: fixed(1, (a, p, n) => Math.ceil(num(a, 0, p, n))),
  floor: fixed(1, (a, p, n) => Math.floor(num(a, 0, p, n))),
  max: (a, p, n) => Math.max(...a.map((_, i) => num(a, i, p, n))),
  min: (a, p, n) => Math.min(...a.map((_, i) => num(a, i, p, n))),
  pow: fixed(2, (a, p, n) => num(a, 0, p, n) ** num(a, 1, p, n)),
  signum: fixed(1, (a, p, n) => Math.sign(num(a, 0, p, n))),
  int: fixed(1, (a, p, n) => Math.trunc(num(a, 0, p, n))),
  parseint: fixed(2, (a, p, n) => {
    const v = parseInt(str(a, 0, p, n), num(a, 1, p, n));
    if (Number.isNaN(v)) throw evalError(`parseint(): "${str(a, 0, p, n)}" is not a number in base ${num(a, 1, p, n)}`, p);
    return v;
  }),
  add: fixed(2, (a, p, n) => num(a, 0, p, n) + num(a, 1, p, n)),
  subtract: fixed(2, (a, p, n) => num(a, 0, p, n) - num(a, 1, p, n)),
  multiply: fixed(2, (a, p, n) => num(a, 0, p, n) * num(a, 1, p, n)),
  divide: fixed(2, (a, p, n) => {
    const d = num(a, 1, p, n);
    if (d === 0) throw evalError('divide(): division by zero', p);
    return num(a, 0, p, n) / d;
  }),
  modulo: fixed(2, (a, p, n) => num(a, 0, p, n) % num(a, 1, p, n)),
  negate: fixed(1, (a, p, n) => -num(a, 0, p, n)),
  greaterthan: cmp((x, y) => x > y),
  greaterthanorequalto: cmp((x, y) => x >= y),
  lessthan: cmp((x, y) => x < y),
  lessthanorequalto: cmp((x, y) => x <= y),
  // logic
  equal: fixed(2, (a) => equal(arg(a, 0), arg(a, 1))),
  notequal: fixed(2, (a) => !equal(arg(a, 0), arg(a, 1))),
  and: fixed(2, (a, p) => toBool(arg(a, 0), p, 'argument 1 of and()') && toBool(arg(a, 1), p, 'argument 2 of and()')),
  or: fixed(2, (a, p) => toBool(arg(a, 0), p, 'argument 1 of or()') || toBool(arg(a, 1), p, 'argument 2 of or()')),
  not: fixed(1, (a, p) => !toBool(arg(a, 0), p, 'argument 1 of not()')),
  // types
  tostring: fixed(1, (a, p, n) => str(a, 0, p, n)),
  tonumber: fixed(1, (a, p, n) => num(a, 0, p, n)),
  tobool: fixed(1, (a, p) => toBool(arg(a, 0), p, 'argument 1 of tobool()')),
  tolist: fixed(1, (a, p) => [...list(arg(a, 0), p, 'argument 1 of tolist()')]),
  toset: fixed(1, (a, p) => list(arg(a, 0), p, 'argument 1 of toset()').filter((x, i, all) => all.findIndex((y) => equal(x, y)) === i)),
  tomap: fixed(1, (a, p) => ({ ...obj(arg(a, 0), p, 'argument 1 of tomap()') })),
  // encoding
  jsonencode: fixed(1, (a, p, n) => JSON.stringify(walkable(arg(a, 0), p, n))),
  jsondecode: fixed(1, (a, p, n) => {
    let v: unknown;
    try {
      v = JSON.parse(str(a, 0, p, n));
    } catch (e) {
      throw evalError(`jsondecode(): ${e instanceof Error ? e.message : String(e)}`, p);
    }
    // Values are walked recursively (==, flatten, jsonencode): as deep as a bake file may nest.
    if (!depthAtMost(v, MAX_NESTING)) throw limitError(`jsondecode(): the value is nested too deeply (more than ${MAX_NESTING} levels)`, p, 'a bake value nests a few levels');
    return jsonToValue(v);
  }),
  base64encode: fixed(1, (a, p, n) => Buffer.from(str(a, 0, p, n)).toString('base64')),
  base64decode: fixed(1, (a, p, n) => Buffer.from(str(a, 0, p, n), 'base64').toString('utf8')),
  urlencode: fixed(1, (a, p, n) => encodeURIComponent(str(a, 0, p, n))),
  md5: hash('md5'),
  sha1: hash('sha1'),
  sha256: hash('sha256'),
  sha512: hash('sha512'),
  uuidv4: fixed(0, () => randomUUID()),
  // time
  timestamp: fixed(0, () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')),
  formatdate: fixed(2, (a, p, n) => formatdate(str(a, 0, p, n), str(a, 1, p, n), p)),
};

/** buildx's stdlib function `name` (kiln's subset), or undefined. */
export function stdlib(name: string): HclFunction | undefined {
  const impl = Object.hasOwn(STDLIB, name) ? STDLIB[name] : undefined;
  return impl === undefined ? undefined : (args, pos) => impl(args, pos, name);
}

/** The names of the stdlib functions (for docs and hints). */
export const STDLIB_NAMES: readonly string[] = Object.keys(STDLIB).sort();
