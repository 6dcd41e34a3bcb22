import { FileOpError } from './errors.js';
import { cleanInRoot } from './resolve.js';
import { goMatch, goPatternSource } from './match.js';

/** One compiled pattern of a {@link PatternMatcher}. */
interface CompiledPattern {
  readonly text: string;
  readonly exclusion: boolean;
  readonly dirs: number;
  readonly re: RegExp;
}

/** Cleans a pattern like Go's `filepath.Clean` on a relative path (`./a//b/` → `a/b`). */
function cleanPattern(p: string): string {
  const abs = p.startsWith('/');
  const c = cleanInRoot(p);
  return abs ? c : c.slice(1) || '.';
}

/** Compiles a moby pattern (Go filepath.Match syntax plus `**`) to an anchored RegExp. */
function compileDockerPattern(pattern: string): RegExp {
  let re = '^';
  const chars = [...pattern];
  let i = 0;
  let literal = '';
  const flush = (): void => {
    if (literal !== '') re += goPatternSource(literal);
    literal = '';
  };
  while (i < chars.length) {
    if (chars[i] === '*' && chars[i + 1] === '*') {
      flush();
      i += 2;
      if (chars[i] === '/') i++;
      // `**` at the end matches everything; elsewhere any number of components (even none).
      re += i >= chars.length ? '.*' : '(?:.*/)?';
      continue;
    }
    if (chars[i] === '\\' && i + 1 < chars.length) {
      literal += (chars[i] as string) + (chars[i + 1] as string);
      i += 2;
      continue;
    }
    literal += chars[i] as string;
    i++;
  }
  flush();
  return new RegExp(re + '$', 'u');
}

/**
 * Docker/moby `patternmatcher` semantics for `.dockerignore`-style patterns: Go `filepath.Match`
 * per pattern plus `**` (any number of directories), `!` re-includes, the last matching pattern
 * wins, and a pattern matching a parent directory matches everything below it.
 */
export class PatternMatcher {
  readonly patterns: ReadonlyArray<CompiledPattern>;
  readonly hasExclusions: boolean;

  constructor(patterns: ReadonlyArray<string>) {
    const out: CompiledPattern[] = [];
    let exclusions = false;
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = cleanPattern(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new FileOpError('FILEOP_INVALID_PATTERN', raw, 'illegal exclusion pattern: "!"');
        exclusion = true;
        exclusions = true;
        p = p.slice(1);
      }
      // moby strips a leading slash after cleaning: patterns are relative to the context root.
      if (p.startsWith('/')) p = cleanPattern(p.slice(1));
      goMatch(p.replace(/\*\*/g, '*'), '.'); // syntax check, throws FILEOP_INVALID_PATTERN
      out.push({ text: p, exclusion, dirs: p.split('/').length, re: compileDockerPattern(p) });
    }
    this.patterns = out;
    this.hasExclusions = exclusions;
  }

  /** Whether `file` (a relative, `/`-separated path) is matched. */
  matches(file: string): boolean {
    let matched = false;
    const parentDirs = file.split('/').slice(0, -1);
    for (const pat of this.patterns) {
      if (pat.exclusion !== matched) continue;
      let m = pat.re.test(file);
      if (!m && parentDirs.length > 0 && pat.dirs <= parentDirs.length) {
        m = pat.re.test(parentDirs.slice(0, pat.dirs).join('/'));
      }
      if (m) matched = !pat.exclusion;
    }
    return matched;
  }
}

/** Result of {@link IncludeMatcher.match}. */
export interface IncludeMatch {
  /** The path itself matches a pattern (everything below it is included). */
  readonly full: boolean;
  /** The path is a directory that may hold matches further down. */
  readonly partial: boolean;
}

/**
 * fsutil's include-pattern matching for FileActionCopy.includePatterns: a path is included when
 * it (or a parent) matches a pattern; a directory is entered when it could lead to a match.
 */
export class IncludeMatcher {
  private readonly full: PatternMatcher;
  private readonly split: ReadonlyArray<ReadonlyArray<string>>;

  constructor(patterns: ReadonlyArray<string>) {
    this.full = new PatternMatcher(patterns.filter((p) => !p.trim().startsWith('!')));
    this.split = this.full.patterns.map((p) => p.text.split('/'));
  }

  match(rel: string, isDir: boolean): IncludeMatch {
    if (this.full.matches(rel)) return { full: true, partial: false };
    if (!isDir) return { full: false, partial: false };
    const comps = rel.split('/');
    for (const pat of this.split) {
      if (prefixMatches(pat, comps)) return { full: false, partial: true };
    }
    return { full: false, partial: false };
  }
}

/** Whether the components `comps` can be the leading directories of a match of `pat`. */
function prefixMatches(pat: ReadonlyArray<string>, comps: ReadonlyArray<string>): boolean {
  for (let i = 0; i < comps.length; i++) {
    const pc = pat[i];
    if (pc === undefined) return false;
    if (pc.includes('**')) return true;
    if (!goMatch(pc, comps[i] as string)) return false;
  }
  return pat.length > comps.length;
}
