import { chmodSync, constants, copyFileSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { throwIfCancelled } from '../errors.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type LocalEntry, type LocalStat } from './walk.js';

/** What {@link linkTree} did: files and symlinks hard-linked, and those copied because linking failed. */
export interface LinkTreeStats {
  readonly linked: number;
  readonly copied: number;
}

const OWN_UID = process.getuid?.() ?? -1;
const OWN_GID = process.getgid?.() ?? -1;

/** Errors after which a copy is made instead of a link (another filesystem, too many links, no permission). */
const LINK_FALLBACK: ReadonlySet<unknown> = new Set<unknown>(['EXDEV', 'EMLINK', 'EPERM', 'EACCES', 'ENOTSUP', 'EOPNOTSUPP']);

function errCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}

/**
 * Recreates the synced tree `entries` of the mirror `from` in the empty directory `to` without
 * copying data: directories are created (owner, mode and mtime from the entries, deepest first,
 * after their children), regular files and symlinks are hard-linked to the mirror's inodes.
 * `to`'s own owner, mode and times are those of `from` (as `cp -a from/. to/` would set them).
 *
 * Safe only because the mirror never changes an inode in place (see syncLocalSource: a changed
 * file is written to a new inode, a removed one is unlinked), so an earlier tree made by this
 * function keeps its content whatever later syncs do. Where a link is impossible (another
 * filesystem, the link count limit) the entry is copied instead. Devices, fifos and sockets are
 * not in the mirror and are skipped.
 */
export async function linkTree(from: string, to: string, entries: readonly LocalEntry[], signal?: AbortSignal): Promise<LinkTreeStats> {
  const dirs: LocalEntry[] = [];
  // Directories made here belong to us (their parents are 0700 until the end, so no set-gid
  // group is inherited, unless `to` itself is set-gid): chown only where the owner differs.
  const ownedByUs = (lstatSync(to).mode & 0o2000) === 0;
  let linked = 0;
  let copied = 0;
  for (const [i, e] of entries.entries()) {
    if (i % 1024 === 1023) {
      // Yield now and then so progress and other vertices keep moving.
      await new Promise<void>((resolve) => setImmediate(resolve));
      throwIfCancelled(signal);
    }
    const fmt = e.stat.mode & S_IFMT;
    const dst = join(to, e.path);
    if (fmt === S_IFDIR) {
      mkdirSync(dst, 0o700);
      dirs.push(e);
      continue;
    }
    if (fmt !== S_IFREG && fmt !== S_IFLNK) continue;
    const src = join(from, e.path);
    try {
      linkSync(src, dst);
      linked++;
    } catch (err) {
      if (!LINK_FALLBACK.has(errCode(err))) throw err;
      copyEntry(src, dst, e.stat);
      copied++;
    }
  }
  for (const d of dirs.reverse()) setAttrs(join(to, d.path), d.stat, ownedByUs);
  const root = lstatSync(from, { bigint: true });
  lchownSync(to, Number(root.uid), Number(root.gid));
  chmodSync(to, Number(root.mode) & 0o7777);
  lutimesSync(to, Number(root.atimeNs) / 1e9, Number(root.mtimeNs) / 1e9);
  return { linked, copied };
}

/** Owner, then mode (chown may clear set-id bits), then times: as the mirror has them. */
function setAttrs(path: string, st: LocalStat, ownedByUs = false): void {
  if (!ownedByUs || st.uid !== OWN_UID || st.gid !== OWN_GID) lchownSync(path, st.uid, st.gid);
  if ((st.mode & S_IFMT) !== S_IFLNK) chmodSync(path, st.mode & 0o7777);
  const t = st.mtimeMs / 1000;
  lutimesSync(path, t, t);
}

function copyEntry(src: string, dst: string, st: LocalStat): void {
  if ((st.mode & S_IFMT) === S_IFLNK) symlinkSync(readlinkSync(src), dst);
  else copyFileSync(src, dst, constants.COPYFILE_EXCL);
  setAttrs(dst, st);
}
