import { lstat, readdir, rmdir, unlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { cleanRelative } from '../layer/root-path.js';

interface Stub {
  readonly host: string;
  readonly parent: string;
  readonly atime: Date;
  readonly mtime: Date;
}

/**
 * Remembers which mount destinations do not exist in the rootfs yet, so the empty files and
 * directories runc creates for them can be removed after the run and the parents' times restored
 * (BuildKit's executor/stubs.go). Without it `/proc`, `/etc/hosts` … would land in the layer.
 * Symlinks are not followed: a destination under a symlink is left to runc and not tracked.
 */
export async function recordStubs(rootfs: string, destinations: readonly string[]): Promise<Stub[]> {
  const out = new Map<string, Stub>();
  for (const d of destinations) {
    const parts = cleanRelative(d).split('/').filter((p) => p !== '');
    let cur = rootfs;
    for (const part of parts) {
      const next = posix.join(cur, part);
      let st;
      try {
        st = await lstat(next);
      } catch {
        const pst = await lstat(cur).catch(() => undefined);
        if (pst !== undefined && !out.has(next)) out.set(next, { host: next, parent: cur, atime: pst.atime, mtime: pst.mtime });
        break;
      }
      if (!st.isDirectory()) break;
      cur = next;
    }
  }
  return [...out.values()];
}

/** Removes stubs that are still empty (files of size 0, directories holding only such stubs). */
export async function removeStubs(stubs: readonly Stub[]): Promise<void> {
  for (const s of [...stubs].sort((a, b) => b.host.length - a.host.length)) {
    await removeIfEmpty(s.host);
    await utimes(s.parent, s.atime, s.mtime).catch(() => undefined);
  }
}

async function removeIfEmpty(p: string): Promise<boolean> {
  let st;
  try {
    st = await lstat(p);
  } catch {
    return true;
  }
  if (st.isDirectory()) {
    let empty = true;
    for (const name of await readdir(p).catch(() => [])) {
      if (!(await removeIfEmpty(posix.join(p, name)))) empty = false;
    }
    if (!empty) return false;
    return rmdir(p).then(
      () => true,
      () => false,
    );
  }
  if (st.isFile() && st.size === 0) {
    return unlink(p).then(
      () => true,
      () => false,
    );
  }
  return false;
}
