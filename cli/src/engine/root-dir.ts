import { makeDirs } from './make-dirs.js';
import { EngineError } from './errors.js';

/**
 * Makes the kiln root directory (and its missing parents) before the stores open it, one level
 * at a time (see {@link makeDirs}): the stores' recursive mkdir never returns for a path under
 * /proc, and its EPERM/ENOTDIR named neither the root nor what to do. Fails with KLN0707.
 */
export async function ensureRootDir(root: string): Promise<void> {
  await makeDirs(root, (why, cause) =>
    new EngineError('KLN0707', `cannot use the kiln root ${root}: ${why}`, { hint: 'give a directory kiln can create and write: --root DIR or KILN_ROOT=DIR', ...(cause === undefined ? {} : { cause }) }),
  );
}
