import { lstat, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, FileOpError } from './errors.js';
import { chownIf, utimesIf, type Seconds } from './meta.js';
import { inRootPath } from './resolve.js';
import type { Owner } from './types.js';

/**
 * fsutil's MkdirAll on a host path already resolved inside `root`: creates each missing directory
 * of `hostPath` with `mode`, and gives only the created ones `owner` and `time`. Existing
 * components must be directories (a symlink is refused, never followed).
 * Returns the host paths of the directories it created, outermost first.
 */
export async function mkdirAllInRoot(
  root: string,
  hostPath: string,
  mode: number,
  owner: Owner | undefined,
  time: Seconds | undefined,
): Promise<string[]> {
  const rel = inRootPath(root, hostPath);
  const comps = rel.split('/').filter((c) => c !== '');
  let cur = root;
  const created: string[] = [];
  for (const c of comps) {
    cur = join(cur, c);
    let exists = false;
    try {
      const st = await lstat(cur);
      if (!st.isDirectory()) {
        throw new FileOpError('FILEOP_NOT_A_DIRECTORY', inRootPath(root, cur), `cannot create directory below "${inRootPath(root, cur)}": not a directory`);
      }
      exists = true;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    if (exists) continue;
    try {
      await mkdir(cur, mode);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') continue; // created concurrently
      throw err;
    }
    await chmod(cur, mode); // exact bits, independent of the process umask
    await chownIf(cur, owner);
    await utimesIf(cur, time);
    created.push(cur);
  }
  return created;
}
