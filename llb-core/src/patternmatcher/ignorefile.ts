/**
 * `.dockerignore` files (moby/patternmatcher ignorefile.ReadAll): one pattern per line, `#`
 * comments, `!` exceptions; patterns are cleaned and made relative to the context root. The
 * Dockerfile frontend puts the result into the build context source as `local.excludepatterns`,
 * and the solver reads the same files when it syncs a local context.
 */
import { cleanPath } from '../state/paths.js';

/**
 * Go's strings.TrimSpace (unicode.IsSpace: Latin-1 spaces with U+0085 and U+00A0, and the
 * White_Space property above). JavaScript's trim() differs: it strips U+FEFF and keeps U+0085.
 */
const GO_SPACE = '\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000';
const GO_TRIM = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

function goTrimSpace(s: string): string {
  return s.replace(GO_TRIM, '');
}

/** Parse `.dockerignore` text into exclude patterns, in order. */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('#')) continue;
    let pattern = goTrimSpace(line);
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = goTrimSpace(pattern.slice(1));
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}
