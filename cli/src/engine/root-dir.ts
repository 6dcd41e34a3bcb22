import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EngineError } from './errors.js';

/**
 * Makes the kiln root directory (and its missing parents) before the stores open it, one level
 * at a time: the stores' recursive mkdir never returns for a path under /proc (mkdir answers
 * ENOENT there although the parent exists, and Node retries for ever), and its EPERM/ENOTDIR
 * named neither the root nor what to do. Fails with KLN0707.
 */
export async function ensureRootDir(root: string): Promise<void> {
  const fail = (why: string, cause?: unknown): EngineError =>
    new EngineError('KLN0707', `cannot use the kiln root ${root}: ${why}`, { hint: 'give a directory kiln can create and write: --root DIR or KILN_ROOT=DIR', ...(cause === undefined ? {} : { cause }) });
  const missing: string[] = [];
  for (let d = root; ; d = dirname(d)) {
    const st = await stat(d).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) throw fail(`${d} is not a directory`);
      break;
    }
    // ENOTDIR: a file on the way up, named when the walk reaches it
    if ((st.code !== 'ENOENT' && st.code !== 'ENOTDIR') || dirname(d) === d) throw fail(st.message, st);
    missing.push(d);
  }
  for (const d of missing.reverse()) {
    try {
      await mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw fail(`cannot create ${d}: ${(e as Error).message}`, e);
    }
  }
}
