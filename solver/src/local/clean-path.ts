/**
 * Go's path.Clean for slash-separated paths (what filepath.Clean does on Linux): collapses
 * repeated slashes, removes `.` elements and `..` with the element before it, drops a trailing
 * slash; the empty result is `.`. Patterns and paths are cleaned this way before matching.
 */
export function cleanPath(p: string): string {
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

/** Go's path.Dir: everything but the last element, cleaned (`.` for a bare name). */
export function dirPath(p: string): string {
  const i = p.lastIndexOf('/');
  return cleanPath(i < 0 ? '' : p.slice(0, i + 1));
}

/** Go's path.Base: the last element (`/` for the root, `.` for empty). */
export function basePath(p: string): string {
  if (p === '') return '.';
  let s = p;
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  if (s === '/') return '/';
  const i = s.lastIndexOf('/');
  return i >= 0 ? s.slice(i + 1) : s;
}
