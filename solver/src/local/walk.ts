import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { SolverError } from '../errors.js';
import { cleanPath, containsWildcards } from './clean-path.js';
import { goPathMatch } from '../contenthash/go-path-match.js';
import { NO_MATCH_INFO, PatternMatcher, type MatchInfo, type Pattern } from '@kiln/llb-core';

/** The stat fields the solver keeps for a file of a local source (from an `lstat`). */
export interface LocalStat {
  /** Unix st_mode (type and permission bits). */
  readonly mode: number;
  readonly size: number;
  /** Modification time in ms since the epoch, with the sub-ms part (~0.2 µs resolution). */
  readonly mtimeMs: number;
  readonly ino: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  /** Symlink target for symlinks, else ''. */
  readonly linkname: string;
}

/** One path produced by {@link walkLocal}: `path` is relative to the root, slash-separated. */
export interface LocalEntry {
  readonly path: string;
  readonly stat: LocalStat;
}

/** Filters of an LLB local source (`local.includepattern`, `local.excludepatterns`, `local.followpaths`). */
export interface LocalFilter {
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
  readonly followPaths?: readonly string[];
}

/**
 * Directory listings remembered between walks (see {@link walkLocal}). `get` answers only while
 * the directory's inode and ctime are the ones recorded with the names: adding, removing or
 * renaming an entry always sets the directory's ctime, and a program cannot set it back.
 */
export interface DirListingCache {
  get(rel: string, ino: number, ctimeMs: number): readonly string[] | undefined;
  set(rel: string, ino: number, ctimeMs: number, names: readonly string[]): void;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export function toLocalStat(st: Stats, abs: string): LocalStat {
  const mode = st.mode;
  return {
    mode,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ino: st.ino,
    uid: st.uid,
    gid: st.gid,
    rdev: st.rdev,
    linkname: (mode & S_IFMT) === S_IFLNK ? readlinkSync(abs) : '',
  };
}

const PATTERN_CHARS = /[*[\]?^\\]/;

function withoutTrailingGlob(p: Pattern): string {
  let s = p.cleaned;
  if (s.endsWith('/**')) s = s.slice(0, -3);
  if (s.endsWith('/*')) s = s.slice(0, -2);
  return s;
}

interface VisitedDir {
  readonly entry: LocalEntry;
  readonly pathWithSep: string;
  includeInfo: MatchInfo;
  excludeInfo: MatchInfo;
  emitted: boolean;
}

/**
 * Walks `root` in lexical order like tonistiigi/fsutil's Walk: include patterns keep only
 * matching paths (plus the directories leading to them), exclude patterns drop paths (`!`
 * exceptions re-include), follow paths are added to the includes together with the targets of
 * the symlinks on them. Directories that no pattern can reach are not descended into.
 * The root itself is not returned.
 */
export function walkLocal(root: string, filter: LocalFilter = {}, listings?: DirListingCache): LocalEntry[] {
  let includePatterns = filter.includePatterns === undefined ? undefined : [...filter.includePatterns];
  if (filter.followPaths !== undefined && filter.followPaths.length > 0) {
    includePatterns = dedupePaths([...(includePatterns ?? []), ...followLinks(root, filter.followPaths)]);
  }
  const include = includePatterns !== undefined && includePatterns.length > 0 ? new PatternMatcher(includePatterns) : undefined;
  const exclude = filter.excludePatterns !== undefined && filter.excludePatterns.length > 0 ? new PatternMatcher(filter.excludePatterns) : undefined;
  const onlyPrefixIncludes = include === undefined || include.patterns.every((p) => p.exclusion || !PATTERN_CHARS.test(withoutTrailingGlob(p)));
  const onlyPrefixExcludeExceptions = exclude === undefined || exclude.patterns.every((p) => !p.exclusion || !PATTERN_CHARS.test(withoutTrailingGlob(p)));

  const out: LocalEntry[] = [];
  const parents: VisitedDir[] = [];
  const filtered = include !== undefined || exclude !== undefined;

  // With a listing cache, an unchanged directory is not read again (its names come from the cache).
  const names = (abs: string, rel: string, st: Stats | undefined): readonly string[] => {
    if (listings === undefined || st === undefined) return readNames(abs);
    const have = listings.get(rel, st.ino, st.ctimeMs);
    if (have !== undefined) return have;
    const t0 = Date.now();
    const read = readNames(abs);
    // Racy listings (an entry added in the same clock tick as the ctime we saw) are not kept.
    if (st.ctimeMs < t0 - RACY_MS) listings.set(rel, st.ino, st.ctimeMs, read);
    return read;
  };
  const visit = (rel: string, abs: string): void => {
    let st: Stats;
    try {
      // Plain (not bigint) stats: far less garbage per file, and enough precision to see changes.
      st = lstatSync(abs);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const stat = toLocalStat(st, abs);
    const isDir = (stat.mode & S_IFMT) === S_IFDIR;
    const entry: LocalEntry = { path: rel, stat };
    if (filtered) {
      while (parents.length > 0) {
        const last = parents[parents.length - 1];
        if (last !== undefined && rel.startsWith(last.pathWithSep)) break;
        parents.pop();
      }
    }
    const parent = parents[parents.length - 1];
    const dir: VisitedDir | undefined = isDir ? { entry, pathWithSep: `${rel}/`, includeInfo: NO_MATCH_INFO, excludeInfo: NO_MATCH_INFO, emitted: false } : undefined;
    let skip = false;
    if (include !== undefined) {
      const r = include.matchesUsingParentResults(rel, parent?.includeInfo ?? NO_MATCH_INFO);
      if (dir !== undefined) dir.includeInfo = r.info;
      if (!r.matched) {
        if (isDir && onlyPrefixIncludes) {
          const dirSlash = `${rel}/`;
          const reachable = include.patterns.some((p) => !p.exclusion && `${withoutTrailingGlob(p)}/`.startsWith(dirSlash));
          if (!reachable) return;
        }
        skip = true;
      }
    }
    if (exclude !== undefined) {
      const r = exclude.matchesUsingParentResults(rel, parent?.excludeInfo ?? NO_MATCH_INFO);
      if (dir !== undefined) dir.excludeInfo = r.info;
      if (r.matched) {
        if (isDir && onlyPrefixExcludeExceptions) {
          if (!exclude.exclusions) return;
          const dirSlash = `${rel}/`;
          const reachable = exclude.patterns.some((p) => p.exclusion && `${withoutTrailingGlob(p)}/`.startsWith(dirSlash));
          if (!reachable) return;
        }
        skip = true;
      }
    }
    if (!skip) {
      if (filtered) {
        for (const p of parents) {
          if (!p.emitted) {
            out.push(p.entry);
            p.emitted = true;
          }
        }
      }
      out.push(entry);
      if (dir !== undefined) dir.emitted = true;
    }
    if (dir !== undefined) {
      if (filtered) parents.push(dir);
      for (const name of names(abs, rel, st)) visit(`${rel}/${name}`, join(abs, name));
    }
  };
  // The root is followed (readdir follows it too): a symlinked context is listed by its target's ctime.
  const rootStat = listings === undefined ? undefined : statSync(root, { throwIfNoEntry: false });
  for (const name of names(root, '', rootStat)) visit(name, join(root, name));
  return out;
}

/** A directory changed less than this long before it was read may change again within the same ctime tick (a coarse kernel clock tick is at most 10 ms). */
const RACY_MS = 50;

/** Directory entry names in Go's lexical (byte) order. */
function readNames(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  return names.sort(compareBytes);
}

/** Compares two strings by their UTF-8 bytes (Go's string order). */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  // Code-unit order equals UTF-8 byte order except around surrogates; fall back to bytes there.
  if (/[\ud800-\udfff]/.test(a + b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : 1;
}

/**
 * The paths `paths` name plus the targets of every symlink met on the way, relative to `root`
 * (fsutil.FollowLinks, the resolver of LLB `followpaths`, e.g. a Dockerfile that is a symlink).
 * As there: a link's target is resolved against the root, so `..` never leaves it; a wildcard in
 * a base name follows every symlink it matches in that directory (and stays a path of its own
 * when none is a link). Empty when a path resolves to the root itself: nothing is filtered.
 */
export function followLinks(root: string, paths: readonly string[]): string[] {
  const resolved = new Set<string>();
  const append = (path: string, depth: number): void => {
    // fsutil relies on `resolved` alone to end a cycle; a bound on the hops is a second guard.
    if (depth > 255) throw new SolverError('SOLVER_TOO_MANY_LINKS', `too many links resolving ${path}`);
    let p = goJoin('.', path);
    let current = '.';
    for (;;) {
      const slash = p.indexOf('/');
      current = goJoin(current, slash < 0 ? p : p.slice(0, slash));
      const targets = readSymlink(root, current, true);
      p = slash < 0 ? '' : p.slice(slash + 1);
      if ((p === '' || targets !== undefined) && resolved.has(current)) return;
      if (targets !== undefined) {
        resolved.add(current);
        for (const t of targets) append(goJoin(t, p), depth + 1);
        return;
      }
      if (p === '') {
        resolved.add(current);
        return;
      }
    }
  };
  for (const p of paths) append(p, 0);
  // fsutil dedupePaths: a path resolving to the root itself means no filter at all (nil).
  if (resolved.has('.')) return [];
  return dedupePaths([...resolved].sort(compareBytes));
}

/** Go's filepath.Join: the non-empty elements joined by `/`, cleaned ('' when all are empty). */
function goJoin(...parts: string[]): string {
  const kept = parts.filter((s) => s !== '');
  return kept.length === 0 ? '' : cleanPath(kept.join('/'));
}

/** fsutil symlinkResolver.readSymlink: the root-relative targets of `p` if it is a link (or, with a wildcard base, of the links it matches). */
function readSymlink(root: string, p: string, allowWildcard: boolean): string[] | undefined {
  const slash = p.lastIndexOf('/');
  const dir = slash < 0 ? '.' : p.slice(0, slash);
  const base = slash < 0 ? p : p.slice(slash + 1);
  if (allowWildcard && containsWildcards(base)) {
    let out: string[] | undefined;
    for (const name of readNames(join(root, dir))) {
      let ok = false;
      try {
        ok = goPathMatch(base, name);
      } catch {
        ok = false; // filepath.Match's ErrBadPattern is ignored there
      }
      if (!ok) continue;
      const t = readSymlink(root, goJoin(dir, name), false);
      if (t !== undefined) (out ??= []).push(...t);
    }
    return out;
  }
  let st: Stats;
  try {
    st = lstatSync(join(root, p));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  if (!st.isSymbolicLink()) return undefined;
  const link = cleanPath(readlinkSync(join(root, p)));
  if (link.startsWith('/')) return [link];
  return [goJoin('/', goJoin(dir, link))];
}


/** Drops paths that lie under another path of the list (fsutil's dedupePaths); keeps order. */
export function dedupePaths(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths)].sort(compareBytes);
  const out: string[] = [];
  for (const p of sorted) {
    if (out.some((q) => p === q || p.startsWith(`${q}/`))) continue;
    out.push(p);
  }
  return out;
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}
