import type { BigIntStats } from 'node:fs';
import { chmodSync, constants, lchownSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { copyFile, link, lutimes, rm, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { checkAborted, errnoCode, FileOpError, wrapOsError } from './errors.js';
import { Limiter } from './limiter.js';
import { devNumbers, makeSpecial, nsToSeconds, preserveOwnerSync, type Seconds } from './meta.js';
import { mkdirAllInRoot } from './mkdir-all.js';
import type { ModeSet } from './mode.js';
import { IncludeMatcher, PatternMatcher } from './patterns.js';
import { sourcePath } from './wildcards.js';
import { copyXattrs } from './xattrs.js';
import { cleanInRoot, inRootPath, resolveInRoot } from './resolve.js';
import type { FileOpOptions, Owner } from './types.js';

/** Settings of one copy (fsutil's CopyInfo). */
export interface CopyInfo {
  readonly owner: Owner | undefined;
  readonly time: Seconds | undefined;
  readonly mode: number | undefined;
  readonly modeSet: ModeSet | undefined;
  readonly followLinks: boolean;
  readonly copyDirContents: boolean;
  readonly includePatterns: ReadonlyArray<string>;
  readonly excludePatterns: ReadonlyArray<string>;
  readonly alwaysReplaceExistingDestPaths: boolean;
  readonly signal: AbortSignal | undefined;
  readonly concurrency: number;
  /** Regular files to hard-link instead of copy (see {@link FileOpOptions.copyLinks}). */
  readonly copyLinks: FileOpOptions['copyLinks'];
}

const OWN_UID = process.getuid?.() ?? 0;

/**
 * Copies one source path (no wildcards) from `srcRoot` to `dest` in `destRoot` with fsutil
 * `copy.Copy` semantics (`cp -a` like, trailing-slash and existing-directory rules of
 * prepareTargetDir).
 */
export async function copyPath(srcRoot: string, src: string, destRoot: string, dest: string, ci: CopyInfo): Promise<void> {
  // fsutil: a dest ending in `/` or `/.` is a directory to create; otherwise its parent.
  const lastSlash = dest.lastIndexOf('/');
  const destBase = dest.slice(lastSlash + 1);
  const ensure = destBase !== '' && destBase !== '.' ? dest.slice(0, lastSlash + 1) : dest;
  const created: string[] = [];
  if (ensure !== '') {
    created.push(...(await mkdirAllInRoot(destRoot, await resolveInRoot(destRoot, cleanInRoot(ensure)), 0o755, ci.owner, ci.time)));
  }
  const destHost = await resolveInRoot(destRoot, cleanInRoot(dest));
  const srcFollowed = await sourcePath(srcRoot, src, ci.followLinks);
  const c = new Copier(srcRoot, destRoot, ci);
  const target = await c.prepareTargetDir(srcFollowed, src, destHost, created);
  await c.copyTop(srcFollowed, target, created.includes(target));
  if (ci.time !== undefined) {
    // fsutil stamps created parents before filling them, so their mtime ends up "now"; we
    // re-stamp them last (deepest first) so a timestamp override gives a reproducible tree.
    for (const d of created.reverse()) {
      if (d !== target) await lutimes(d, ci.time, ci.time);
    }
  }
}

/** Entries handled between two yields to the event loop (metadata calls are synchronous). */
const YIELD_EVERY = 256;

interface Entry {
  readonly path: string;
  readonly st: BigIntStats;
}

class Copier {
  private readonly include: IncludeMatcher | undefined;
  private readonly exclude: PatternMatcher | undefined;
  private readonly limiter: Limiter;
  /** Relative paths copied so far (`''` is the top), for {@link copyXattrs}. */
  readonly copied = new Set<string>();
  /** First target of each multiply-linked source inode, for hardlink preservation. */
  private readonly inodes = new Map<string, Promise<string>>();
  /** Target directories that regular files were deferred into as hard links. */
  private readonly linkedInto = new Set<string>();
  private srcTop = '';
  private targetTop = '';
  private sinceYield = 0;

  constructor(
    private readonly srcRoot: string,
    private readonly destRoot: string,
    private readonly ci: CopyInfo,
  ) {
    this.include = ci.includePatterns.length > 0 ? new IncludeMatcher(ci.includePatterns) : undefined;
    this.exclude = ci.excludePatterns.length > 0 ? new PatternMatcher(ci.excludePatterns) : undefined;
    this.limiter = new Limiter(Math.max(1, ci.concurrency));
  }

  private destName(host: string): string {
    return inRootPath(this.destRoot, host);
  }

  async prepareTargetDir(srcFollowed: string, src: string, destPath: string, created: string[]): Promise<string> {
    let fiSrc: BigIntStats;
    try {
      fiSrc = lstatSync(srcFollowed, { bigint: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
        throw new FileOpError('FILEOP_NOT_FOUND', cleanInRoot(src), `copy source "${cleanInRoot(src)}" not found in the source snapshot`, {
          cause: err,
        });
      }
      throw wrapOsError(err, cleanInRoot(src), 'copy source');
    }
    let destIsDir: boolean | undefined;
    try {
      destIsDir = (await stat(destPath)).isDirectory();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw wrapOsError(err, this.destName(destPath), 'copy destination');
    }
    const srcIsDir = fiSrc.isDirectory();
    let target = destPath;
    if ((!this.ci.copyDirContents && srcIsDir && destIsDir !== undefined) || (!srcIsDir && destIsDir === true)) {
      // basename of the cleaned source: never `..`, so the join stays below destPath.
      target = join(destPath, posix.basename(cleanInRoot(src)));
    }
    let parent = dirname(target);
    if (this.ci.copyDirContents && srcIsDir && destIsDir === undefined) parent = target;
    // Copying a directory's contents onto the root itself: there is no parent to create.
    if (parent === this.destRoot || parent.startsWith(this.destRoot + '/')) {
      created.push(...(await mkdirAllInRoot(this.destRoot, parent, 0o755, this.ci.owner, this.ci.time)));
    }
    return target;
  }

  /** `targetCreated`: `target` is a directory this copy just created (nothing else is in it). */
  async copyTop(src: string, target: string, targetCreated: boolean): Promise<void> {
    this.srcTop = src;
    this.targetTop = target;
    const pending: Array<Promise<void>> = [];
    await this.copy(src, '', target, false, this.include === undefined, pending, false, undefined, targetCreated);
    await Promise.all(pending);
    await copyXattrs(src, target, this.copied);
  }

  /**
   * fsutil copier.copy. Regular-file contents and their metadata are pushed to `pending` (run
   * through the limiter); everything else is done before returning.
   */
  private async copy(
    src: string,
    rel: string,
    target: string,
    overwriteTargetMetadata: boolean,
    skipInclude: boolean,
    pending: Array<Promise<void>>,
    fresh = false,
    known?: BigIntStats,
    targetCreated = false,
  ): Promise<void> {
    await this.maybeYield();
    checkAborted(this.ci.signal, this.destName(target));
    // Same root for source and destination (`/` copied to `/sub`): never walk into our own output.
    if (rel !== '' && src === this.targetTop) return;
    const st = known ?? lstatSync(src, { bigint: true });
    const isDir = st.isDirectory();
    let included = false;
    if (rel !== '') {
      if (!skipInclude && this.include !== undefined) {
        const m = this.include.match(rel, isDir);
        if (!m.full && !(isDir && m.partial)) return;
        included = true;
        skipInclude = m.full;
      }
      if (this.excluded(rel, isDir)) return;
    }
    if (!isDir) {
      if (included) await this.createParentDirs(rel, overwriteTargetMetadata);
      // In a directory this copy just created nothing can be in the way: save the lstat.
      if (!fresh) await this.ensureEmptyFileTarget(target);
    } else if (skipInclude && this.include !== undefined) {
      await this.createParentDirs(rel, overwriteTargetMetadata);
    }

    const entry: Entry = { path: src, st };
    if (isDir) {
      // With include patterns, a directory only partly matched exists only if something below did.
      if (skipInclude) this.copied.add(rel);
      const created = await this.copyDirectory(src, rel, target, st, overwriteTargetMetadata, skipInclude, fresh, targetCreated);
      const applyInfo = overwriteTargetMetadata && skipInclude ? true : created;
      if (applyInfo) this.copyFileInfo(entry, target);
      const links = this.ci.copyLinks;
      if (applyInfo && links !== undefined && this.linkedInto.has(target)) {
        // The deferred links will bump this directory's mtime: they restore it afterwards.
        links.stamps.push({ path: links.destLayer + target.slice(this.destRoot.length), atime: nsToSeconds(st.atimeNs), mtime: nsToSeconds(st.mtimeNs) });
      }
      return;
    }
    if (st.isFile() && fresh && this.linkable(st, target)) {
      this.deferLink(src, target);
      return;
    }
    this.copied.add(rel);
    if (st.isFile()) {
      pending.push(this.copyRegular(entry, target));
      return;
    }
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(src), target);
    } else if (st.isFIFO()) {
      await makeSpecial(target, 'p', Number(st.mode));
    } else if (st.isBlockDevice() || st.isCharacterDevice()) {
      const [major, minor] = devNumbers(Number(st.rdev));
      await makeSpecial(target, st.isBlockDevice() ? 'b' : 'c', Number(st.mode), major, minor);
    } else {
      throw new FileOpError('FILEOP_UNSUPPORTED', rel === '' ? '/' : rel, `cannot copy "${rel}": sockets are not supported`);
    }
    this.copyFileInfo(entry, target);
  }

  /**
   * Metadata calls are synchronous: each is a few microseconds of work, while a thread-pool round
   * trip per call (four per directory or file) cost far more. Yield now and then instead, so a
   * big copy does not hold up progress and other vertices.
   */
  private async maybeYield(): Promise<void> {
    if (++this.sinceYield < YIELD_EVERY) return;
    this.sinceYield = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * Whether a regular file may be hard-linked (see {@link FileOpOptions.copyLinks}): the copy
   * would leave the source's owner, mode and times unchanged, so sharing the inode gives the
   * same file. A link shares the inode's xattrs too, so none are copied for it.
   */
  /**
   * Every regular file going into a fresh directory is linked: the copy changes no owner, mode
   * or time. (A source hardlink group with members in both fresh and existing directories then
   * keeps the source's inode for the former instead of sharing the latter's copy: same content.)
   */
  private get linksWithoutStat(): boolean {
    const ci = this.ci;
    return ci.copyLinks !== undefined && ci.time === undefined && ci.owner === undefined && ci.mode === undefined && ci.modeSet === undefined && OWN_UID === 0;
  }

  private linkable(st: BigIntStats, target: string): boolean {
    const ci = this.ci;
    if (ci.copyLinks === undefined || ci.time !== undefined) return false;
    if (!target.startsWith(this.destRoot + '/')) return false;
    const uid = ci.owner?.uid ?? Number(st.uid);
    const gid = ci.owner?.gid ?? Number(st.gid);
    if (uid !== Number(st.uid) || gid !== Number(st.gid)) return false;
    // Without root a copy of someone else's file ends up ours (preserveOwner); a link would not.
    if (OWN_UID !== 0 && uid !== OWN_UID) return false;
    // A member of a hardlink group that was copied already: link to that copy instead.
    if (st.nlink > 1n && this.inodes.has(`${st.dev}:${st.ino}`)) return false;
    return this.targetMode(st) === (Number(st.mode) & 0o7777);
  }

  private deferLink(src: string, target: string): void {
    const links = this.ci.copyLinks;
    if (links === undefined) return;
    links.links.push({ from: src, to: links.destLayer + target.slice(this.destRoot.length) });
    this.linkedInto.add(dirname(target));
  }

  private copyRegular(entry: Entry, target: string): Promise<void> {
    const st = entry.st;
    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.inodes.get(key);
      if (first !== undefined) {
        // Hardlink within the copy: link to the first copy once it exists.
        return first.then((t) => link(t, target));
      }
      const p = this.limiter.run(async () => {
        await this.copyContents(entry, target);
        return target;
      });
      this.inodes.set(key, p);
      return p.then(() => undefined);
    }
    return this.limiter.run(() => this.copyContents(entry, target));
  }

  private async copyContents(entry: Entry, target: string): Promise<void> {
    checkAborted(this.ci.signal, this.destName(target));
    // EXCL: the target was just removed, so never write through something that appeared there.
    // FICLONE: reflink where the filesystem can, else copy_file_range/sendfile in libuv.
    await copyFile(entry.path, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    this.copyFileInfo(entry, target);
  }

  private excluded(rel: string, isDir: boolean): boolean {
    const ex = this.exclude;
    if (ex === undefined || !ex.matches(rel)) return false;
    if (isDir && ex.hasExclusions) {
      // A `!` pattern below this directory may re-include something: walk it (fsutil).
      const dirSlash = rel + '/';
      for (const p of ex.patterns) {
        if (p.exclusion && (p.text + '/').startsWith(dirSlash)) return false;
      }
    }
    return true;
  }

  /** Delayed creation of the parents of an included path (fsutil createParentDirs). */
  private async createParentDirs(rel: string, overwriteTargetMetadata: boolean): Promise<void> {
    const comps = rel.split('/');
    for (let i = 1; i < comps.length; i++) {
      const sub = comps.slice(0, i).join('/');
      const s = join(this.srcTop, sub);
      const t = join(this.targetTop, sub);
      const st = await stat(s, { bigint: true });
      if (!st.isDirectory()) {
        throw new FileOpError('FILEOP_NOT_A_DIRECTORY', sub, `copy source "${sub}" is not a directory`);
      }
      const created = this.copyDirectoryOnly(t, st, overwriteTargetMetadata);
      if (created) {
        this.copyFileInfo({ path: s, st }, t);
        this.copied.add(sub);
      }
    }
  }

  private async copyDirectory(
    src: string,
    rel: string,
    dst: string,
    st: BigIntStats,
    overwriteTargetMetadata: boolean,
    skipInclude: boolean,
    fresh: boolean,
    targetCreated = false,
  ): Promise<boolean> {
    let created = false;
    // With include patterns, a directory is created only once something below it matches.
    if (skipInclude) {
      if (fresh) {
        mkdirSync(dst, Number(st.mode) & 0o7777);
        created = true;
      } else {
        created = this.copyDirectoryOnly(dst, st, overwriteTargetMetadata);
      }
    }
    const childrenFresh = (created || targetCreated) && this.include === undefined;
    // Regular files that will be linked whatever their stat says need none: only their type.
    const linkFiles = childrenFresh && this.linksWithoutStat;
    const entries = linkFiles ? readdirSync(src, { withFileTypes: true }) : readdirSync(src).map((name) => ({ name, isFile: () => false }));
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const pending: Array<Promise<void>> = [];
    try {
      for (const e of entries) {
        const r = rel === '' ? e.name : `${rel}/${e.name}`;
        if (linkFiles && e.isFile()) {
          checkAborted(this.ci.signal, this.destName(dst));
          if (!this.excluded(r, false)) this.deferLink(join(src, e.name), join(dst, e.name));
          continue;
        }
        await this.copy(join(src, e.name), r, join(dst, e.name), true, skipInclude, pending, childrenFresh, lstatSync(join(src, e.name), { bigint: true }));
      }
    } finally {
      // Children finish before the directory's own metadata (mtime) is set.
      const results = await Promise.allSettled(pending);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    }
    return created;
  }

  private copyDirectoryOnly(dst: string, st: BigIntStats, overwriteTargetMetadata: boolean): boolean {
    const cur0 = lstatSync(dst, { bigint: true, throwIfNoEntry: false });
    let cur: BigIntStats | undefined = cur0;
    if (cur !== undefined && !cur.isDirectory()) {
      if (!this.ci.alwaysReplaceExistingDestPaths) {
        throw new FileOpError('FILEOP_CANNOT_REPLACE', this.destName(dst), `cannot copy a directory onto non-directory "${this.destName(dst)}"`, {
          hint: 'remove the path first, or set alwaysReplaceExistingDestPaths',
        });
      }
      unlinkSync(dst);
      cur = undefined;
    }
    if (cur === undefined) {
      mkdirSync(dst, Number(st.mode) & 0o7777);
      return true;
    }
    if (overwriteTargetMetadata) chmodSync(dst, Number(st.mode) & 0o7777);
    return false;
  }

  private async ensureEmptyFileTarget(dst: string): Promise<void> {
    const cur = lstatSync(dst, { bigint: true, throwIfNoEntry: false });
    if (cur === undefined) return;
    if (cur.isDirectory()) {
      if (!this.ci.alwaysReplaceExistingDestPaths) {
        throw new FileOpError('FILEOP_CANNOT_REPLACE', this.destName(dst), `cannot replace directory "${this.destName(dst)}" with a file`, {
          hint: 'remove the directory first, or set alwaysReplaceExistingDestPaths',
        });
      }
      await rm(dst, { recursive: true, force: true });
      return;
    }
    unlinkSync(dst);
  }

  /** The permission bits a copy of `st` gets (the source's, or the copy's mode override). */
  private targetMode(st: BigIntStats): number {
    const m = Number(st.mode) & 0o7777;
    if (this.ci.mode !== undefined) return (m & ~0o777) | (this.ci.mode & 0o777);
    if (this.ci.modeSet !== undefined) return this.ci.modeSet(m, st.isDirectory()) & 0o7777;
    return m;
  }

  /** Owner, mode, times of `target` from the source entry and the copy's overrides. */
  private copyFileInfo(entry: Entry, target: string): void {
    const st = entry.st;
    const uid = this.ci.owner?.uid ?? Number(st.uid);
    const gid = this.ci.owner?.gid ?? Number(st.gid);
    if (this.ci.owner !== undefined) lchownSync(target, uid, gid);
    else preserveOwnerSync(target, uid, gid);
    if (!st.isSymbolicLink()) {
      // After chown: chown clears set-id bits.
      chmodSync(target, this.targetMode(st));
    }
    if (this.ci.time !== undefined) lutimesSync(target, this.ci.time, this.ci.time);
    else lutimesSync(target, nsToSeconds(st.atimeNs), nsToSeconds(st.mtimeNs));
  }
}
