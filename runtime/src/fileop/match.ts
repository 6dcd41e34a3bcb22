import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileOpError } from './errors.js';

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/-]/;

function escapeRegexChar(ch: string): string {
  return REGEX_SPECIAL.test(ch) ? `\\${ch}` : ch;
}

function badPattern(pattern: string): FileOpError {
  return new FileOpError('FILEOP_INVALID_PATTERN', pattern, `invalid pattern "${pattern}": syntax error in pattern`);
}

/** Reads one (possibly escaped) character of a class, as Go's `getEsc`. */
function classChar(pattern: string, chars: string[], i: number): [string, number] {
  const ch = chars[i];
  if (ch === undefined || ch === '-' || ch === ']') throw badPattern(pattern);
  if (ch === '\\') {
    const next = chars[i + 1];
    if (next === undefined) throw badPattern(pattern);
    return [next, i + 2];
  }
  return [ch, i + 1];
}

/**
 * Compiles a Go `filepath.Match` pattern (`*`, `?`, `[^a-z]`, `\` escapes; `*` and `?` never match
 * `/`) to an anchored RegExp. Malformed patterns throw `FILEOP_INVALID_PATTERN`, as Go returns
 * `ErrBadPattern`.
 */
export function compileGoPattern(pattern: string): RegExp {
  return new RegExp(`^${goPatternSource(pattern)}$`, 'u');
}

/** The RegExp source (unanchored) of a Go `filepath.Match` pattern. */
export function goPatternSource(pattern: string): string {
  const chars = [...pattern];
  let re = '';
  let i = 0;
  while (i < chars.length) {
    const ch = chars[i] as string;
    if (ch === '*') {
      re += '[^/]*';
      i++;
    } else if (ch === '?') {
      re += '[^/]';
      i++;
    } else if (ch === '\\') {
      const next = chars[i + 1];
      if (next === undefined) throw badPattern(pattern);
      re += escapeRegexChar(next);
      i += 2;
    } else if (ch === '[') {
      i++;
      let cls = '[';
      if (chars[i] === '^') {
        cls += '^';
        i++;
      }
      let nrange = 0;
      for (;;) {
        if (chars[i] === ']' && nrange > 0) {
          i++;
          break;
        }
        let lo: string;
        [lo, i] = classChar(pattern, chars, i);
        cls += escapeRegexChar(lo);
        if (chars[i] === '-') {
          let hi: string;
          [hi, i] = classChar(pattern, chars, i + 1);
          if ((hi.codePointAt(0) ?? 0) < (lo.codePointAt(0) ?? 0)) throw badPattern(pattern);
          cls += '-' + escapeRegexChar(hi);
        }
        nrange++;
        if (i >= chars.length) throw badPattern(pattern);
      }
      re += cls + ']';
    } else {
      re += escapeRegexChar(ch);
      i++;
    }
  }
  return re;
}

/** Go's `filepath.Match(pattern, name)`. */
export function goMatch(pattern: string, name: string): boolean {
  return compileGoPattern(pattern).test(name);
}

/** Whether a path component holds an unescaped `*`, `?` or `[` (fsutil's containsWildcards). */
export function containsWildcards(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/**
 * Splits a path at its first component holding a wildcard (fsutil's splitWildcards):
 * `/a/b?/c` → [`/a`, `b?/c`]. The second part is `''` when there is no wildcard.
 */
export function splitWildcards(p: string): [string, string] {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  const abs = p.startsWith('/');
  const idx = parts.findIndex(containsWildcards);
  if (idx === -1) return [(abs ? '/' : '') + parts.join('/') || (abs ? '/' : '.'), ''];
  const head = parts.slice(0, idx).join('/');
  return [(abs ? '/' : '') + head || (abs ? '/' : '.'), parts.slice(idx).join('/')];
}

/**
 * Walks `base` (a host directory, not followed below) in lexical order and returns the relative
 * paths matching the multi-component Go pattern `comp`; a matching directory is not descended
 * (fsutil's resolveWildcards over filepath.Walk).
 */
export async function matchUnder(base: string, comp: string): Promise<string[]> {
  const re = compileGoPattern(comp);
  const depth = comp.split('/').filter((c) => c !== '').length;
  const out: string[] = [];
  const st = await lstat(base);
  if (!st.isDirectory()) return out;
  const walk = async (rel: string, level: number): Promise<void> => {
    const names = (await readdir(rel === '' ? base : join(base, rel))).sort();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (re.test(r)) {
        out.push(r);
        continue;
      }
      if (level + 1 < depth && (await lstat(join(base, r))).isDirectory()) await walk(r, level + 1);
    }
  };
  await walk('', 0);
  return out;
}
