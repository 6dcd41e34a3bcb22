import { copyFile, link, lchown, lstat, lutimes, mkdir, readdir, readlink, symlink, chmod, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Stats } from 'node:fs';
import { devNumbers, makeSpecial } from '../fileop/meta.js';

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
  for await (const e of walkTree(src)) {
    opts.signal?.throwIfAborted();
    const to = join(dest, e.path);
    const st = e.stat;
    if (st.isDirectory()) {
      await mkdir(to, { recursive: true });
      dirs.push(e);
      continue;
    }
    await rm(to, { force: true, recursive: false }).catch(() => undefined);
    if (st.isSymbolicLink()) {
      await symlink(await readlink(e.abs), to);
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await link(first, to);
        continue;
      }
      if (st.nlink > 1) links.set(key, to);
      await copyFile(e.abs, to, constants.COPYFILE_FICLONE);
      // chown before chmod: chown clears setuid/setgid bits.
      if (asRoot) await lchown(to, owner(st).uid, owner(st).gid);
      await chmod(to, st.mode & 0o7777);
      await lutimes(to, time(st), time(st));
      continue;
    } else if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
      // fsutil's receiver mknods these (handleTarTypeBlockCharFifo); Node has no mknod, coreutils does.
      await makeSpecial(to, st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : 'b', 0o600, ...devNumbers(st.rdev));
      if (asRoot) await lchown(to, owner(st).uid, owner(st).gid);
      await chmod(to, st.mode & 0o7777);
      await lutimes(to, time(st), time(st));
      continue;
    } else {
      continue; // sockets
    }
    if (asRoot) await lchown(to, owner(st).uid, owner(st).gid);
    await lutimes(to, time(st), time(st));
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
