/**
 * `.dockerignore` files (moby/patternmatcher ignorefile.ReadAll): one pattern per line, `#`
 * comments, `!` exceptions; patterns are cleaned and made relative to the context root. The
 * Dockerfile frontend puts the result into the build context source as `local.excludepatterns`,
 * and the solver reads the same files when it syncs a local context.
 */
import { cleanPath } from '../state/paths.js';

/** Parse `.dockerignore` text into exclude patterns, in order. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}
