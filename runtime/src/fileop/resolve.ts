import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, FileOpError } from './errors.js';

/** Linux's MAXSYMLINKS-like bound, as continuity's fs.RootPath. */
const MAX_SYMLINKS = 255;

/** Splits an LLB path into components, dropping empty and `.` ones. */
export function pathComponents(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Lexically cleans an in-root path to an absolute one (`/a/../b/` → `/b`), clamping `..` at `/`,
 * like Go's `filepath.Join("/", p)`.
 */
export function cleanInRoot(p: string): string {
  const out: string[] = [];
  for (const c of pathComponents(p)) {
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}

/** Options for {@link resolveInRoot}. */
export interface ResolveOptions {
  /** Follow a symlink in the last component too (default true). Parent components are always followed. */
  readonly followFinal?: boolean;
}

/**
 * Resolves `unsafePath` (absolute or relative, interpreted inside `root`) to a host path under
 * `root`, evaluating symlinks one component at a time as if `root` were `/`: absolute link targets
 * restart at `root`, `..` never climbs above it (continuity's `fs.RootPath`, securejoin). Missing
 * components are appended lexically. The result is always `root` or a descendant of it; it is
 * only as safe as the tree is quiet (no concurrent renames by a hostile process).
 */
export async function resolveInRoot(root: string, unsafePath: string, opts: ResolveOptions = {}): Promise<string> {
  const followFinal = opts.followFinal ?? true;
  let rest = pathComponents(unsafePath);
  const resolved: string[] = [];
  let links = 0;
  while (rest.length > 0) {
    const c = rest.shift() as string;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    if (rest.length === 0 && !followFinal) {
      resolved.push(c);
      continue;
    }
    const candidate = join(root, ...resolved, c);
    let isLink = false;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // A missing component is kept lexically. Later components are still checked: after a `..`
      // we may be back on existing ground where a symlink must not be taken literally.
    }
    if (!isLink) {
      resolved.push(c);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new FileOpError('FILEOP_SYMLINK_LOOP', unsafePath, `resolving "${unsafePath}": too many levels of symbolic links`);
    }
    const target = await readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    rest = [...pathComponents(target), ...rest];
  }
  return join(root, ...resolved);
}

/** The in-root path (`/…`) of a host path below `root`. */
export function inRootPath(root: string, hostPath: string): string {
  if (hostPath === root) return '/';
  const prefix = root.endsWith('/') ? root : root + '/';
  return hostPath.startsWith(prefix) ? '/' + hostPath.slice(prefix.length) : hostPath;
}
