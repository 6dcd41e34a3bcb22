import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SolverError } from '../errors.js';
import { basePath, cleanPath, containsWildcards } from '../local/clean-path.js';
import { NO_MATCH_INFO, PatternMatcher, type MatchInfo } from '@kiln/llb-core';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, toLocalStat, type LocalEntry } from '../local/walk.js';
import { goPathMatch } from './go-path-match.js';
import { EMPTY_DIGEST, digestOf, tarsumHeaderHash } from './tarsum.js';

/** BuildKit's CacheRecordType. */
export type RecordType = 'file' | 'dir' | 'dirHeader' | 'symlink';

interface CacheRecord {
  readonly type: RecordType;
  digest: string | undefined;
  readonly linkname: string;
}

/** Options of {@link ContentHashTree.checksum}, as BuildKit's contenthash.ChecksumOpts. */
export interface ChecksumOptions {
  readonly followLinks?: boolean;
  readonly wildcard?: boolean;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
}

/** One file of a tree with its record digest, if already known (see {@link ContentHashTree.fromEntries}). */
export interface HashedEntry extends LocalEntry {
  readonly digest?: string | undefined;
}

const MAX_SYMLINKS = 255;

/** path "/a/b" → radix key "\0a\0b" (BuildKit's convertPathToKey). */
const toKey = (p: string): string => p.replaceAll('/', '\0');
const toPath = (k: string): string => k.replaceAll('\0', '/');
/** BuildKit's keyPath: cleaned absolute path, "" for the root. */
const keyPath = (p: string): string => {
  const c = cleanPath(`/${p}`);
  return c === '/' ? '' : c;
};

interface IncludedPath {
  path: string;
  record: { type?: RecordType; digest: string } | undefined;
  included: boolean;
  includeInfo: MatchInfo;
  excludeInfo: MatchInfo;
}

/**
 * The content checksums of one filesystem tree, computed the way BuildKit's cache/contenthash
 * does, so selector digests (COPY/ADD sources) equal BuildKit's:
 * - each path has a record keyed by its path with `/` as `\0`; a directory has two: `/dir` (its
 *   contents) and `/dir/` (its header); the root's are `` and `/`;
 * - a file's digest is sha256 over its tarsum header followed by its bytes; a symlink's and a
 *   directory header's over the header alone;
 * - a directory's digest is sha256 over, in key order, the key suffix of its header and of each
 *   child followed by that record's digest (`\0` + hdr, `\0name` + digest, …).
 * Digests unknown at construction are computed lazily from `root` on disk and memoized.
 */
export class ContentHashTree {
  readonly #records = new Map<string, CacheRecord>();
  #sorted: string[] | undefined;
  readonly #root: string | undefined;

  private constructor(root: string | undefined) {
    this.#root = root;
  }

  /**
   * A tree over `entries` (from a walk of `root`). `rootHeaderDigest` is the root directory's
   * header digest: BuildKit uses sha256("") for a local source (synced files) and the real
   * header for a snapshot it scans. Entries without a digest are hashed from `root` on demand.
   */
  static fromEntries(
    entries: readonly HashedEntry[],
    opts: { root?: string; rootHeaderDigest: string; dirDigests?: Readonly<Record<string, string>> },
  ): ContentHashTree {
    const t = new ContentHashTree(opts.root);
    const known = opts.dirDigests ?? {};
    t.#records.set('', { type: 'dir', digest: known[''], linkname: '' });
    t.#records.set('\0', { type: 'dirHeader', digest: opts.rootHeaderDigest, linkname: '' });
    for (const e of entries) {
      const k = toKey(`/${e.path}`);
      const fmt = e.stat.mode & S_IFMT;
      if (fmt === S_IFDIR) {
        t.#records.set(k, { type: 'dir', digest: known[e.path], linkname: '' });
        t.#records.set(`${k}\0`, { type: 'dirHeader', digest: e.digest, linkname: '' });
      } else if (fmt === S_IFLNK) {
        t.#records.set(k, { type: 'symlink', digest: e.digest, linkname: e.stat.linkname });
      } else {
        t.#records.set(k, { type: 'file', digest: e.digest, linkname: '' });
      }
    }
    return t;
  }

  /**
   * The directory-content digests computed so far, by relative path (`''` is the root); feed
   * them back through `fromEntries({dirDigests})` when the tree is known to be unchanged.
   */
  dirDigests(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, r] of this.#records) {
      if (r.type === 'dir' && r.digest !== undefined) out[toPath(k).slice(1)] = r.digest;
    }
    return out;
  }

  /** Number of records (a directory has two). */
  get size(): number {
    return this.#records.size;
  }

  #keys(): string[] {
    this.#sorted ??= [...this.#records.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.#sorted;
  }

  #lowerBound(k: string): number {
    const keys = this.#keys();
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((keys[mid] ?? '') < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** BuildKit's getFollowLinks: resolves symlinks in `k`'s components inside the tree. */
  #follow(k: string, followTrailing: boolean): { key: string; record: CacheRecord | undefined } {
    const v = this.#records.get(k);
    if (v !== undefined && (!followTrailing || v.type !== 'symlink')) return { key: k, record: v };
    if (k === '') return { key: k, record: undefined };
    let current = '/';
    let remaining = toPath(k);
    const trailing = remaining.endsWith('/');
    if (trailing) remaining = remaining.slice(0, -1);
    let links = 0;
    let cr: CacheRecord | undefined;
    while (remaining !== '') {
      const i = remaining.indexOf('/');
      const part = i < 0 ? remaining : remaining.slice(0, i);
      remaining = i < 0 ? '' : remaining.slice(i + 1);
      const next = keyPath(`${current}/${part}`);
      cr = this.#records.get(toKey(next));
      if (cr === undefined || cr.type !== 'symlink') {
        current = next;
        continue;
      }
      if (!followTrailing && remaining === '') {
        current = next;
        break;
      }
      if (++links > MAX_SYMLINKS) throw new SolverError('SOLVER_TOO_MANY_LINKS', `too many links resolving ${toPath(k)}`);
      remaining = `${cr.linkname}/${remaining}`;
      if (cr.linkname.startsWith('/')) current = '/';
    }
    if (trailing) {
      current += '/';
      cr = this.#records.get(toKey(current));
    }
    return { key: toKey(current), record: cr };
  }

  async #checksumKey(k0: string, followTrailing: boolean): Promise<CacheRecord> {
    const { key: k, record: cr } = this.#follow(k0, followTrailing);
    if (cr === undefined) {
      throw new SolverError('SOLVER_NOT_FOUND', `${JSON.stringify(toPath(k0) || '/')}: not found`, {
        hint: 'the path must exist in what it is copied from (the build context, a stage, an image) and not be excluded by .dockerignore',
      });
    }
    if (cr.digest !== undefined) return cr;
    if (cr.type === 'dir') {
      const h = createHash('sha256');
      const keys = this.#keys();
      const next = `${k}\0`;
      let i = this.#lowerBound(`${next}\0`);
      let subk: string | undefined = next;
      while (subk !== undefined && subk.startsWith(next)) {
        h.update(subk.slice(k.length), 'utf8');
        const sub = await this.#checksumKey(subk, false);
        h.update(sub.digest ?? '', 'utf8');
        if (sub.type === 'dir') i = this.#lowerBound(`${subk}\0\uffff`);
        subk = keys[i++];
      }
      cr.digest = digestOf(h);
      return cr;
    }
    cr.digest = await this.#hashFromDisk(toPath(k.endsWith('\0') ? k.slice(0, -1) : k));
    return cr;
  }

  async #hashFromDisk(p: string): Promise<string> {
    if (this.#root === undefined) throw new SolverError('SOLVER_NOT_FOUND', `no content for ${p}`);
    const fp = join(this.#root, p);
    const st = await lstat(fp);
    return hashFile(fp, toLocalStat(st, fp));
  }

  /**
   * The checksum of `path` (BuildKit's cacheContext.Checksum): without wildcard or patterns,
   * the record digest of the path (a directory's content digest); otherwise a digest over the
   * base names and digests of every included file and directory header.
   */
  async checksum(path: string, opts: ChecksumOptions = {}): Promise<string> {
    const follow = opts.followLinks ?? false;
    const inc = opts.includePatterns ?? [];
    const exc = opts.excludePatterns ?? [];
    if (opts.wildcard !== true && inc.length === 0 && exc.length === 0) {
      const cr = await this.#checksumKey(toKey(keyPath(path)), follow);
      return cr.digest ?? EMPTY_DIGEST;
    }
    const included = await this.#includedPaths(path, opts);
    if (follow) {
      for (const w of included) {
        if (w.record?.type === 'symlink') {
          const cr = await this.#checksumKey(toKey(keyPath(w.path)), true);
          w.record = { digest: cr.digest ?? EMPTY_DIGEST };
        }
      }
    }
    if (included.length === 0) return EMPTY_DIGEST;
    const first = included[0];
    if (included.length === 1 && first !== undefined && basePath(path) === basePath(first.path)) return first.record?.digest ?? EMPTY_DIGEST;
    const h = createHash('sha256');
    included.forEach((w, i) => {
      if (i !== 0) h.update('\0');
      h.update(basePath(w.path), 'utf8');
      h.update(w.record?.digest ?? '', 'utf8');
    });
    return digestOf(h);
  }

  async #includedPaths(pathIn: string, opts: ChecksumOptions): Promise<IncludedPath[]> {
    const endsInSep = pathIn.endsWith('/');
    const p = keyPath(pathIn);
    const inc = opts.includePatterns !== undefined && opts.includePatterns.length > 0 ? new PatternMatcher(opts.includePatterns) : undefined;
    const exc = opts.excludePatterns !== undefined && opts.excludePatterns.length > 0 ? new PatternMatcher(opts.excludePatterns) : undefined;
    const keys = this.#keys();
    const out: IncludedPath[] = [];
    let origPrefix: string;
    let k: string | undefined;
    let keyOk: boolean;
    let i = 0;
    let resolvedPrefix = '';
    if (opts.wildcard === true) {
      const [d1, d2] = splitWildcards(p);
      if (d1 === '/') {
        origPrefix = '';
        keyOk = false;
      } else {
        const r = this.#follow(toKey(d1), d2 !== '');
        origPrefix = d1;
        k = r.key;
        keyOk = r.record !== undefined;
      }
    } else {
      origPrefix = p;
      const r = this.#follow(toKey(p), false);
      k = r.key;
      keyOk = r.record !== undefined;
    }
    if (origPrefix !== '') {
      if (keyOk) i = this.#lowerBound(`${k ?? ''}\0`);
      resolvedPrefix = toPath(k ?? '');
    } else {
      k = keys[i++];
      keyOk = k !== undefined;
    }
    const parents: IncludedPath[] = [];
    let lastMatchedDir = '';
    const advance = (): void => {
      k = keys[i++];
      keyOk = k !== undefined;
    };
    while (keyOk && k !== undefined) {
      let fn = toPath(k);
      if (fn.startsWith(resolvedPrefix)) fn = origPrefix + fn.slice(resolvedPrefix.length);
      while (parents.length > 0) {
        const last = parents[parents.length - 1];
        if (last !== undefined && fn.startsWith(`${last.path}/`)) break;
        parents.pop();
      }
      const parentDir = parents[parents.length - 1];
      let dirHeader = false;
      if (k.endsWith('\0')) {
        dirHeader = true;
        fn = fn.slice(0, -1);
        if (fn === p && endsInSep) {
          advance();
          continue;
        }
      }
      const maybe: IncludedPath = { path: fn, record: undefined, included: false, includeInfo: NO_MATCH_INFO, excludeInfo: NO_MATCH_INFO };
      let shouldInclude: boolean;
      if (opts.wildcard === true) {
        if (p !== '' && (lastMatchedDir === '' || !fn.startsWith(`${lastMatchedDir}/`))) {
          if (!goPathMatch(p, fn)) {
            advance();
            continue;
          }
          lastMatchedDir = fn;
        }
        shouldInclude = shouldIncludePath(trimRel(fn, lastMatchedDir), inc, exc, maybe, parentDir);
      } else {
        if (!`${fn}/`.startsWith(`${p}/`)) break;
        shouldInclude = shouldIncludePath(trimRel(fn, p), inc, exc, maybe, parentDir);
      }
      if (!shouldInclude && !dirHeader) {
        advance();
        continue;
      }
      const cr = await this.#checksumKey(k, false);
      if (cr.type === 'dir') shouldInclude = false;
      maybe.record = { type: cr.type, digest: cr.digest ?? '' };
      if (shouldInclude) {
        for (const pd of parents) {
          if (!pd.included) {
            out.push(pd);
            pd.included = true;
          }
        }
        out.push(maybe);
        maybe.included = true;
      }
      if (cr.type === 'dirHeader') parents.push(maybe);
      advance();
    }
    return out;
  }
}

/** strings.TrimSuffix(strings.TrimPrefix(fn+"/", prefix+"/"), "/") */
function trimRel(fn: string, prefix: string): string {
  let s = `${fn}/`;
  const pre = `${prefix}/`;
  if (s.startsWith(pre)) s = s.slice(pre.length);
  return s.endsWith('/') ? s.slice(0, -1) : s;
}

function shouldIncludePath(candidate: string, inc: PatternMatcher | undefined, exc: PatternMatcher | undefined, maybe: IncludedPath, parent: IncludedPath | undefined): boolean {
  if (inc !== undefined) {
    const r = inc.matchesUsingParentResults(candidate, parent?.includeInfo ?? NO_MATCH_INFO);
    maybe.includeInfo = r.info;
    if (!r.matched) return false;
  }
  if (exc !== undefined) {
    const r = exc.matchesUsingParentResults(candidate, parent?.excludeInfo ?? NO_MATCH_INFO);
    maybe.excludeInfo = r.info;
    if (r.matched) return false;
  }
  return true;
}

/** Splits a path at its first wildcard component (BuildKit's splitWildcards). */
export function splitWildcards(p: string): [string, string] {
  const parts = cleanPath(p === '' ? '.' : p).split('/');
  const p1: string[] = [];
  const p2: string[] = [];
  let found = false;
  for (let part of parts) {
    if (!found && containsWildcards(part)) found = true;
    if (part === '') part = '/';
    (found ? p2 : p1).push(part);
  }
  const join = (xs: string[]): string => (xs.length === 0 ? '' : cleanPath(xs.join('/')));
  return [join(p1), join(p2)];
}


/** Record digest of one file on disk: tarsum header, then the bytes of a non-empty regular file. */
export async function hashFile(fp: string, stat: import('../local/walk.js').LocalStat): Promise<string> {
  const h = tarsumHeaderHash(stat);
  if ((stat.mode & S_IFMT) === S_IFREG && stat.size > 0) {
    for await (const chunk of createReadStream(fp, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  }
  return digestOf(h);
}
