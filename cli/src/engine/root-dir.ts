import { statSync } from 'node:fs';
import { RootlessError, usernsState } from '@kiln/runtime';
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
  checkRootlessRoot(root);
}

/**
 * Rootless kiln (KLN0890) uses only a root its user owns: another user's files there are not
 * its to change, and inside its namespace they belong to nobody. Every command that resolves a
 * root checks (a missing root is made later, the user's).
 */
export function checkRootlessRoot(root: string): void {
  const ns = usernsState();
  if (ns === undefined) return;
  // Root inside is the user outside: any other owner is another user (unmapped: nobody).
  const st = statSync(root, { throwIfNoEntry: false });
  if (st !== undefined && st.uid !== 0) {
    throw new RootlessError(`cannot use the kiln root ${root}: it belongs to another user, and kiln runs rootless as ${ns.user}`, {
      hint: `use a root of your own (--root DIR, KILN_ROOT=DIR; default ~/.local/share/kiln), or run kiln as the root's owner`,
    });
  }
}
