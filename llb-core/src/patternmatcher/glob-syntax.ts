/**
 * Syntax check of a Go `filepath.Match` pattern (Unix rules, `\` escapes), the check
 * moby/patternmatcher runs on every pattern: `[` classes need a closing `]`, at least one
 * range, no bare `-` or `]` as a range end, and `\` must escape something.
 * Returns false for a malformed pattern (Go's ErrBadPattern).
 */
export function isValidGlob(pattern: string): boolean {
  const cps = Array.from(pattern);
  let i = 0;
  const esc = (): boolean => {
    // getEsc: a range endpoint; must not be empty, '-' or ']', and must not end the chunk
    const c = cps[i];
    if (c === undefined || c === '-' || c === ']') return false;
    if (c === '\\') {
      i++;
      if (cps[i] === undefined) return false;
    }
    i++;
    return cps[i] !== undefined;
  };
  while (i < cps.length) {
    const c = cps[i];
    if (c === '*' || c === '?') {
      i++;
    } else if (c === '\\') {
      i++;
      if (cps[i] === undefined) return false;
      i++;
    } else if (c === '[') {
      i++;
      if (cps[i] === '^') i++;
      let n = 0;
      for (;;) {
        if (cps[i] === ']' && n > 0) {
          i++;
          break;
        }
        if (!esc()) return false;
        if (cps[i] === '-') {
          i++;
          if (!esc()) return false;
        }
        n++;
      }
    } else {
      i++;
    }
  }
  return true;
}
