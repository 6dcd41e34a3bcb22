import { copyFile, link, lchown, lstat, lutimes, mkdir, readdir, readlink, rename, symlink, chmod, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Stats } from 'node:fs';
import { devNumbers, makeSpecial } from '../fileop/meta.js';
import { processAlive } from '../api/process-alive.js';

/** One filesystem entry of a tree, relative path with `/` separators. */
export interface TreeEntry {
  readonly path: string;
  readonly abs: string;
  readonly stat: Stats;
}

/**
 * Walks a directory tree without following symlinks, in a deterministic order: entries sorted by
 * byte order of their names, each directory before its contents.
 */
export async function* walkTree(rootDir: string, rel = ''): AsyncIterable<TreeEntry> {
  const names = (await readdir(rel === '' ? rootDir : join(rootDir, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const abs = join(rootDir, path);
    const st = await lstat(abs);
    yield { path, abs, stat: st };
    if (st.isDirectory()) yield* walkTree(rootDir, path);
  }
}

/** A temporary entry of {@link copyTree}'s replace mode: `.kiln-tmp-<pid>-<random>`. */
const REPLACE_TEMP = /^\.kiln-tmp-(\d+)-[0-9a-f]{12}$/;

/** Removes the temporary entries that kiln processes no longer running left in `dir`. */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const pid = Number(REPLACE_TEMP.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isNaN(pid) && pid !== process.pid && !processAlive(pid)) await rm(join(dir, name), { force: true });
  }
}

/** Options for {@link copyTree}. */
export interface CopyTreeOptions {
  /**
   * Keep each entry's uid/gid (when running as root). Default false: every entry is owned by the
   * calling process's uid/gid, as BuildKit's `type=local` exporter writes files (the client side of
   * session/filesync sets `st.Uid = os.Getuid(); st.Gid = os.Getgid()` on everything it receives).
   */
  readonly preserveOwners?: boolean | undefined;
  /**
   * Set every entry's mtime and atime to this (SOURCE_DATE_EPOCH), as BuildKit's local exporter
   * does; otherwise the source mtime is kept and atime set to it (fsutil's receiver sets both).
   */
  readonly mtime?: Date | undefined;
  /** Checked before each entry: an aborted copy throws the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /**
   * `dest` may hold files already (a local export into an existing directory): each non-directory
   * entry is made under a temporary name beside its path and renamed over it, as fsutil's
   * DiskWriter receives a BuildKit local export, so a copy cut off (kiln killed) leaves every
   * file old or new, never missing or half-written. The temporary names carry the pid: those a
   * killed kiln left are removed by the next export into the directory.
   */
  readonly replace?: boolean | undefined;
}

/**
 * Copies a tree preserving modes (incl. setuid/sticky), symlinks, hard links, fifos, device nodes
 * (made with coreutils `mknod`; device nodes need root) and mtimes; owners per
 * {@link CopyTreeOptions.preserveOwners}. Sockets are skipped. Existing files at the destination
 * are replaced.
 */
export async function copyTree(src: string, dest: string, opts: CopyTreeOptions = {}): Promise<void> {
  await mkdir(dest, { recursive: true });
  const rootSt = await lstat(src);
  const links = new Map<string, string>();
  const dirs: TreeEntry[] = [];
  const asRoot = process.getuid?.() === 0;
  const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const owner = (st: Stats): { uid: number; gid: number } => (opts.preserveOwners === true ? st : self);
  const time = (st: Stats): Date => opts.mtime ?? st.mtime;
  /** Makes the non-directory entry `e` at `at`, with its owner, mode and times. */
  const makeEntry = async (e: TreeEntry, at: string): Promise<void> => {
    const st = e.stat;
    if (st.isSymbolicLink()) {
      await symlink(await readlink(e.abs), at);
      if (asRoot) await lchown(at, owner(st).uid, owner(st).gid);
      await lutimes(at, time(st), time(st));
      return;
    }
    if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await link(first, at);
        return;
      }
      if (st.nlink > 1) links.set(key, join(dest, e.path));
      await copyFile(e.abs, at, constants.COPYFILE_FICLONE);
    } else {
      // fsutil's receiver mknods these (handleTarTypeBlockCharFifo); Node has no mknod, coreutils does.
      await makeSpecial(at, st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : 'b', 0o600, ...devNumbers(st.rdev));
    }
    // chown before chmod: chown clears setuid/setgid bits.
    if (asRoot) await lchown(at, owner(st).uid, owner(st).gid);
    await chmod(at, st.mode & 0o7777);
    await lutimes(at, time(st), time(st));
  };
  if (opts.replace === true) await removeStaleTemps(dest);
  for await (const e of walkTree(src)) {
    opts.signal?.throwIfAborted();
    const to = join(dest, e.path);
    const st = e.stat;
    if (st.isDirectory()) {
      const old = opts.replace === true ? await lstat(to).catch(() => undefined) : undefined;
      if (old?.isDirectory() === false) await rm(to, { force: true });
      await mkdir(to, { recursive: true });
      if (old?.isDirectory() === true) await removeStaleTemps(to);
      dirs.push(e);
      continue;
    }
    if (!st.isSymbolicLink() && !st.isFile() && !st.isFIFO() && !st.isCharacterDevice() && !st.isBlockDevice()) continue; // sockets
    // Where the entry is made: its path, or a temporary name renamed over an old entry.
    let at = to;
    if (opts.replace === true) {
      const old = await lstat(to).catch(() => undefined);
      if (old?.isDirectory() === true) await rm(to, { recursive: true, force: true });
      else if (old !== undefined) at = join(dirname(to), `.kiln-tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    } else {
      await rm(to, { force: true, recursive: false }).catch(() => undefined);
    }
    try {
      await makeEntry(e, at);
      if (at !== to) await rename(at, to);
    } catch (err) {
      if (at !== to) await rm(at, { force: true }).catch(() => undefined);
      throw err;
    }
  }
  // Directories last (deepest first) so adding entries does not disturb their mtimes.
  for (const e of dirs.reverse()) {
    const to = join(dest, e.path);
    if (asRoot) await lchown(to, owner(e.stat).uid, owner(e.stat).gid);
    await chmod(to, e.stat.mode & 0o7777);
    await lutimes(to, time(e.stat), time(e.stat));
  }
  await chmod(dest, rootSt.mode & 0o7777);
}
