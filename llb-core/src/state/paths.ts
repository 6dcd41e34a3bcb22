/** Go's `path` package semantics (slash paths), needed to match client/llb's path handling. */

/** True when `p` is already what Go's `path.Clean` returns (no empty, `.` or `..` elements, no trailing `/`). */
function isCleanPath(p: string): boolean {
  const n = p.length;
  if (n === 0) return false;
  if (p === '/') return true;
  if (p.charCodeAt(n - 1) === 0x2f) return false;
  let start = p.charCodeAt(0) === 0x2f ? 1 : 0;
  for (let i = start; i <= n; i++) {
    if (i < n && p.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len === 0) return false;
    if (p.charCodeAt(start) === 0x2e && (len === 1 || (len === 2 && p.charCodeAt(start + 1) === 0x2e))) return false;
    start = i + 1;
  }
  return true;
}

/** Go `path.Clean`. */
export function cleanPath(p: string): string {
  if (isCleanPath(p)) return p;
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** Go `path.Join`: joins non-empty elements and cleans; empty when all are empty. */
export function joinPath(...parts: string[]): string {
  const nonEmpty = parts.filter((p) => p !== '');
  if (nonEmpty.length === 0) return '';
  return cleanPath(nonEmpty.join('/'));
}

/** Go `path.IsAbs`. */
export function isAbsPath(p: string): boolean {
  return p.startsWith('/');
}

/**
 * client/llb `normalizePath`: cleans `p` and resolves it against `parent` when relative;
 * with `keepSlash`, a trailing `/` or `/.` of the original is preserved (copy dest).
 */
export function normalizePath(parent: string, p: string, keepSlash: boolean): string {
  const orig = p;
  let out = cleanPath(p);
  if (!isAbsPath(out)) out = joinPath('/', parent, out);
  if (keepSlash) {
    if (orig.endsWith('/') && !out.endsWith('/')) out += '/';
    else if (orig.endsWith('/.')) {
      if (out !== '/') out += '/';
      out += '.';
    }
  }
  return out;
}
