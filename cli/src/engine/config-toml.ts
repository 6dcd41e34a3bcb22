import { CodedError } from '../coded-error.js';

/** Codes of the config file's errors. */
export type ConfigErrorCode =
  | 'KLN0940' // the config file is missing (when named), unreadable or not TOML
  | 'KLN0941' // a key kiln uses has a value of the wrong type or form
  | 'KLN0942'; // a file a key names (ca, keypair, tlsconfigdir) cannot be read or is not PEM

/** An error in the kiln config file: `FILE:LINE:COL: KEY: problem`, and what to write instead. */
export class ConfigError extends CodedError<ConfigErrorCode> {
  override readonly name = 'ConfigError';
}

/** A key's place: segments (strings; numbers index arrays of tables), as the TOML document nests them. */
export type KeyPath = readonly (string | number)[];

/** Where each key of a TOML document is written (1-based line and column). */
export type KeyLocations = ReadonlyMap<string, { readonly line: number; readonly col: number }>;

const id = (p: KeyPath): string => JSON.stringify(p);

/**
 * Finds where the keys of `text` are written, for error messages: table headers (`[a."b"]`,
 * `[[a.b]]`, counted per array) and `key = value` lines (dotted and quoted keys included). A
 * key inside an inline table or a multi-line value is not listed; {@link locate} then falls back to
 * its nearest listed parent. The document itself is parsed by smol-toml; this only points.
 */
export function locateKeys(text: string): KeyLocations {
  const out = new Map<string, { line: number; col: number }>();
  const arrays = new Map<string, number>();
  let table: (string | number)[] = [];
  let depth = 0; // open brackets of a multi-line array value
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const body = stripComment(raw);
    const trimmed = body.trim();
    const col = raw.length - raw.trimStart().length + 1;
    if (depth > 0) {
      depth = Math.max(0, depth + bracketDelta(body));
      return;
    }
    if (trimmed.startsWith('[')) {
      const many = trimmed.startsWith('[[');
      const inner = many ? trimmed.slice(2, trimmed.lastIndexOf(']]')) : trimmed.slice(1, trimmed.lastIndexOf(']'));
      const keys = splitKey(inner);
      if (keys === undefined) return;
      if (many) {
        const n = arrays.get(id(keys)) ?? 0;
        arrays.set(id(keys), n + 1);
        table = [...resolveArrays(keys.slice(0, -1), arrays), keys[keys.length - 1] as string, n];
      } else {
        table = resolveArrays(keys, arrays);
      }
      out.set(id(table), { line, col });
      return;
    }
    const eq = keyEnd(body);
    if (eq < 0) return;
    const keys = splitKey(body.slice(0, eq));
    if (keys === undefined) return;
    out.set(id([...table, ...keys]), { line, col });
    depth = Math.max(0, bracketDelta(body.slice(eq + 1)));
  });
  return out;
}

/** A table header under an array of tables (`[a.b]` after `[[a]]`) belongs to that array's last entry. */
function resolveArrays(keys: readonly string[], arrays: ReadonlyMap<string, number>): (string | number)[] {
  const out: (string | number)[] = [];
  for (let i = 0; i < keys.length; i++) {
    out.push(keys[i] as string);
    const n = arrays.get(id(keys.slice(0, i + 1)));
    if (n !== undefined) out.push(n - 1);
  }
  return out;
}

/** The place of `path`, or of its nearest parent that has one. */
export function locate(locations: KeyLocations, path: KeyPath): { line: number; col: number } | undefined {
  for (let n = path.length; n > 0; n--) {
    const at = locations.get(id(path.slice(0, n)));
    if (at !== undefined) return at;
  }
  return undefined;
}

/** `registry."docker.io".mirrors`: a key path as TOML writes it (array indices left out: the line says which). */
export function keyName(path: KeyPath): string {
  return path
    .filter((p): p is string => typeof p === 'string')
    .map((k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k)))
    .join('.');
}

/** Splits a dotted key (`a."b.c".d`, `'lit'`) into its parts; undefined if it is not one. */
function splitKey(s: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  const skip = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  for (;;) {
    skip();
    const q = s[i];
    if (q === '"' || q === "'") {
      let j = i + 1;
      let v = '';
      while (j < s.length && s[j] !== q) {
        if (q === '"' && s[j] === '\\' && j + 1 < s.length) {
          v += s[j + 1];
          j += 2;
        } else v += s[j++];
      }
      if (j >= s.length) return undefined;
      out.push(v);
      i = j + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (m === null) return undefined;
      out.push(m[0]);
      i += m[0].length;
    }
    skip();
    if (i >= s.length) return out;
    if (s[i] !== '.') return undefined;
    i++;
  }
}

/**
 * Calls `visit` with each character of `s` outside a TOML string ('…' or "…" with escapes) and
 * its index, until it returns true: that index, or -1.
 */
function scanUnquoted(s: string, visit: (c: string, i: number) => boolean | void): number {
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (q !== undefined) {
      if (c === '\\' && q === '"') i++;
      else if (c === q) q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (visit(c, i) === true) return i;
  }
  return -1;
}

/** The index of the `=` after a key at the start of `s`, or -1. */
function keyEnd(s: string): number {
  return scanUnquoted(s, (c) => c === '=');
}

/** Drops a `#` comment that is not inside a string. */
function stripComment(s: string): string {
  const i = scanUnquoted(s, (c) => c === '#');
  return i < 0 ? s : s.slice(0, i);
}

/** Opened minus closed brackets outside strings. */
function bracketDelta(s: string): number {
  let n = 0;
  scanUnquoted(s, (c) => {
    if (c === '[' || c === '{') n++;
    else if (c === ']' || c === '}') n--;
  });
  return n;
}
