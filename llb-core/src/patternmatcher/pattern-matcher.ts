import { LlbError } from '../errors.js';
import { cleanPath } from '../state/paths.js';
import { isValidGlob } from './glob-syntax.js';

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

/** Characters that are regexp syntax but plain in a glob (patternmatcher's escapeBytes). */
const REGEXP_ONLY = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

/** One cleaned pattern of a {@link PatternMatcher}; compiled lazily like Go's. */
export class Pattern {
  readonly cleaned: string;
  readonly exclusion: boolean;
  readonly dirs: readonly string[];
  #type: MatchType | undefined;
  #regexp: RegExp | undefined;
  #bad = false;

  constructor(cleaned: string, exclusion: boolean) {
    this.cleaned = cleaned;
    this.exclusion = exclusion;
    this.dirs = cleaned.split('/');
  }

  toString(): string {
    return this.cleaned;
  }

  #compile(): void {
    let re = '^';
    let type: MatchType = 'exact';
    const cps = Array.from(this.cleaned);
    for (let i = 0, k = 0; k < cps.length; i++) {
      const ch = cps[k++] ?? '';
      if (ch === '*') {
        if (cps[k] === '*') {
          k++;
          if (cps[k] === '/') k++;
          if (k >= cps.length) {
            // "**" at the end: accept everything below, like .gitignore
            if (type === 'exact') type = 'prefix';
            else {
              re += '.*';
              type = 'regexp';
            }
          } else {
            re += '(.*/)?';
            type = 'regexp';
          }
          if (i === 0) type = 'suffix';
        } else {
          re += '[^/]*';
          type = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        type = 'regexp';
      } else if (REGEXP_ONLY.has(ch)) {
        re += `\\${ch}`;
      } else if (ch === '\\') {
        if (k < cps.length) {
          re += `\\${cps[k++] ?? ''}`;
          type = 'regexp';
        } else {
          re += '\\\\';
        }
      } else if (ch === '[' || ch === ']') {
        re += ch;
        type = 'regexp';
      } else {
        re += ch;
      }
    }
    if (type === 'regexp') {
      try {
        this.#regexp = new RegExp(`${re}$`);
      } catch {
        this.#bad = true;
      }
    }
    this.#type = type;
  }

  /** Matches a cleaned slash path; throws LLB_BAD_PATTERN for a pattern Go rejects at match time. */
  match(path: string): boolean {
    if (this.#type === undefined) this.#compile();
    if (this.#bad) throw new LlbError('LLB_BAD_PATTERN', `syntax error in pattern ${JSON.stringify(this.cleaned)}`);
    switch (this.#type) {
      case 'exact':
        return path === this.cleaned;
      case 'prefix':
        return path.startsWith(this.cleaned.slice(0, -2));
      case 'suffix': {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      case 'regexp':
        return this.#regexp?.test(path) ?? false;
      default:
        return false;
    }
  }
}

/** Per-pattern parent results carried down a directory walk (patternmatcher.MatchInfo). */
export interface MatchInfo {
  readonly parentMatched: readonly boolean[];
}

/** The empty {@link MatchInfo}: no knowledge about parents. */
export const NO_MATCH_INFO: MatchInfo = { parentMatched: [] };

/**
 * A port of moby/patternmatcher: Docker's `.dockerignore` and BuildKit's include/exclude
 * matching. Patterns are trimmed and cleaned; `!` marks an exception; later patterns win;
 * `**` spans directories; a pattern matching a parent directory matches everything below it.
 */
export class PatternMatcher {
  readonly patterns: readonly Pattern[];
  /** True if any pattern is a `!` exception. */
  readonly exclusions: boolean;

  /** Throws LLB_BAD_PATTERN for `!` alone or a malformed glob. */
  constructor(patterns: readonly string[]) {
    const out: Pattern[] = [];
    let exclusions = false;
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new LlbError('LLB_BAD_PATTERN', 'illegal exclusion pattern: "!"');
        exclusion = true;
        exclusions = true;
        p = p.slice(1);
      }
      if (!isValidGlob(p)) throw new LlbError('LLB_BAD_PATTERN', `syntax error in pattern ${JSON.stringify(p)}`);
      out.push(new Pattern(p, exclusion));
    }
    this.patterns = out;
    this.exclusions = exclusions;
  }

  /** True if `file` matches exactly (no parent-directory matching). */
  matchesExact(file: string): boolean {
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      if (p.match(file)) matched = !p.exclusion;
    }
    return matched;
  }

  /** True if `file` or one of its parent directories matches (and no later exception undoes it). */
  matchesOrParentMatches(file: string): boolean {
    let matched = false;
    const parent = parentOf(file);
    const parentDirs = parent === '.' ? [] : parent.split('/');
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.match(file);
      for (let i = 0; !m && i < parentDirs.length; i++) m = p.match(parentDirs.slice(0, i + 1).join('/'));
      if (m) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * The deprecated `Matches`: like {@link matchesOrParentMatches} but checks only the parent
   * prefix with as many elements as the pattern has. Kept because Docker's `Matches` tests use it.
   */
  matchesLegacy(file: string): boolean {
    let matched = false;
    const parent = parentOf(file);
    const parentDirs = parent.split('/');
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.match(file);
      if (!m && parent !== '.' && p.dirs.length <= parentDirs.length) {
        try {
          m = p.match(parentDirs.slice(0, p.dirs.length).join('/'));
        } catch {
          m = false;
        }
      }
      if (m) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * Matching during a walk: the caller passes the parent directory's {@link MatchInfo} and gets
   * this path's, so each pattern is evaluated once per path (patternmatcher.MatchesUsingParentResults).
   */
  matchesUsingParentResults(file: string, parent: MatchInfo): { matched: boolean; info: MatchInfo } {
    const pm = parent.parentMatched;
    if (pm.length !== 0 && pm.length !== this.patterns.length) {
      throw new LlbError('LLB_BAD_PATTERN', 'wrong number of values in parentMatched');
    }
    let matched = false;
    const info: boolean[] = new Array<boolean>(this.patterns.length).fill(false);
    this.patterns.forEach((p, i) => {
      let m = pm.length !== 0 ? (pm[i] ?? false) : false;
      if (!m) {
        if (p.exclusion !== matched) return;
        m = p.match(file);
        if (!m && pm.length === 0) {
          const parentPath = parentOf(file);
          if (parentPath !== '.') {
            const dirs = parentPath.split('/');
            for (let j = 0; !m && j < dirs.length; j++) m = p.match(dirs.slice(0, j + 1).join('/'));
          }
        }
      }
      info[i] = m;
      if (m) matched = !p.exclusion;
    });
    return { matched, info: { parentMatched: info } };
  }
}

function parentOf(file: string): string {
  const i = file.lastIndexOf('/');
  if (i < 0) return '.';
  return cleanPath(file.slice(0, i)) || '.';
}

/** patternmatcher.Matches: the deprecated one-shot helper (`.` never matches). */
export function matches(file: string, patterns: readonly string[]): boolean {
  const pm = new PatternMatcher(patterns);
  const f = cleanPath(file);
  if (f === '.') return false;
  return pm.matchesLegacy(f);
}

/** patternmatcher.MatchesOrParentMatches as a one-shot helper (`.` never matches). */
export function matchesOrParentMatches(file: string, patterns: readonly string[]): boolean {
  const pm = new PatternMatcher(patterns);
  const f = cleanPath(file);
  if (f === '.') return false;
  return pm.matchesOrParentMatches(f);
}
