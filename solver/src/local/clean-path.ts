import { cleanPath } from '@kiln/llb-core';

/** Go's path.Clean for slash-separated paths (llb-core's; patterns and paths are cleaned this way before matching). */
export { cleanPath };

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

/** fsutil's / BuildKit's containsWildcards (Unix: `\` escapes the next character). */
export function containsWildcards(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}
