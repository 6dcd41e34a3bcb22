import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SolverError } from '../errors.js';

/** Linux's MAXSYMLINKS-like bound, as continuity's fs.RootPath. */
const MAX_SYMLINKS = 255;

/**
 * The host path of `selector` inside the mounted snapshot `root`, with every symlink on the way
 * evaluated as if `root` were `/` (continuity's fs.RootPath, which BuildKit uses for mount
 * selectors): an absolute link target restarts at `root` and `..` never climbs above it. A mount
 * `source` that is a symlink to `/etc` thus means the snapshot's `/etc`, never the host's. Missing
 * components are kept lexically. The result is `root` or a path below it.
 */
export async function rootPath(root: string, selector: string): Promise<string> {
  let rest = selector.split('/').filter((c) => c !== '' && c !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (rest.length > 0) {
    const c = rest.shift() as string;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, c);
    const st = await lstat(candidate).catch(() => undefined);
    if (st === undefined || !st.isSymbolicLink()) {
      resolved.push(c);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new SolverError('SOLVER_INVALID_DEFINITION', `mount source ${JSON.stringify(selector)}: too many levels of symbolic links`);
    const target = await readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    rest = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...rest];
  }
  return join(root, ...resolved);
}
