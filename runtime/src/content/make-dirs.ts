import { lstat, mkdir, readlink, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * `mkdir -p DIR` that fails where it cannot go on, with `fail(why)`: Node 20's recursive mkdir
 * never returns for a path under /proc (mkdir answers ENOENT there although the parent exists,
 * and Node retries for ever; in a daemon it holds a libuv thread at 100 % CPU), and its
 * EPERM/ENOTDIR named no path. The missing directories are made one at a time; a file on the
 * way up is named (`/x/file is not a directory`). Resolves with the directories it made, outermost first;
 * `mode` is theirs (under the umask).
 */
export async function makeDirs(dir: string, fail: (why: string, cause?: unknown) => Error, mode?: number): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) throw fail(`${d} is not a directory`);
      break;
    }
    const link = await danglingLink(d, st);
    if (link !== undefined) throw fail(link, st);
    // ENOTDIR: a file further up, named when the walk reaches it
    if ((st.code !== 'ENOENT' && st.code !== 'ENOTDIR') || dirname(d) === d) throw fail(st.message, st);
    missing.push(d);
  }
  const made: string[] = [];
  for (const d of missing.reverse()) {
    try {
      await mkdir(d, mode === undefined ? undefined : { mode });
      made.push(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        // made meanwhile by another process; a dangling symlink is EEXIST too, and no directory
        if ((await stat(d).catch(() => undefined))?.isDirectory() === true) continue;
        throw fail(`${d} is not a directory (a symlink to nothing?)`, e);
      }
      throw fail(`cannot create ${d}: ${(e as Error).message}`, e);
    }
  }
  return made;
}

/**
 * Why `path`, which `stat` failed on with `err`, cannot be made a directory when it is a symlink
 * that leads nowhere (to a missing path, or a loop); undefined when it is no symlink. mkdir would
 * fail on it with EEXIST, as Go's os.MkdirAll does (BuildKit's local export target).
 */
export async function danglingLink(path: string, err: NodeJS.ErrnoException): Promise<string | undefined> {
  if (err.code !== 'ENOENT' && err.code !== 'ELOOP') return undefined;
  if ((await lstat(path).catch(() => undefined))?.isSymbolicLink() !== true) return undefined;
  const to = await readlink(path).catch(() => '?');
  return `${path} is a symbolic link to ${to}, which ${err.code === 'ELOOP' ? 'does not resolve (ELOOP)' : 'does not exist'}`;
}
