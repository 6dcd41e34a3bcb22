import { chmod, lstat, mkdir as fsMkdir, open, rm as fsRm, symlink as fsSymlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { checkAborted, errnoCode, FileOpError, wrapOsError } from './errors.js';
import { copyPath, type CopyInfo } from './copy.js';
import { resolveWildcards } from './wildcards.js';
import { chownIf, timestampToSeconds, utimesIf } from './meta.js';
import { mkdirAllInRoot } from './mkdir-all.js';
import { parseModeStr } from './mode.js';
import { resolveOwner } from './owner.js';
import { cleanInRoot, resolveInRoot } from './resolve.js';
import { unpackArchive } from './unpack.js';
import type {
  FileAction,
  FileActionCopy,
  FileActionMkDir,
  FileActionMkFile,
  FileActionRm,
  FileActionSymlink,
  FileOpOptions,
} from './types.js';

const DEFAULT_CONCURRENCY = 8;

function assertNever(x: never): never {
  throw new Error(`unknown file action ${JSON.stringify(x)}`);
}

/**
 * FileActionMkDir in the snapshot directory `root`: creates `path` (symlinks followed inside
 * `root`) with exactly `mode & 0o777`, `owner` and `timestamp`. With `makeParents`, missing
 * parents are created the same way and an existing directory is fine; without it, an existing
 * path is left alone (BuildKit ignores EEXIST) and a missing parent fails.
 */
export async function fileMkdir(root: string, action: FileActionMkDir, opts: FileOpOptions = {}): Promise<void> {
  root = resolve(root);
  const name = cleanInRoot(action.path);
  const owner = await resolveOwner(action.owner, opts.ownerRoot ?? root);
  const time = timestampToSeconds(action.timestamp);
  const mode = action.mode & 0o777;
  const p = await resolveInRoot(root, action.path);
  try {
    if (action.makeParents) {
      const created = await mkdirAllInRoot(root, p, mode, owner, time);
      // Each mkdir bumps its parent's mtime: re-stamp deepest first so the tree is reproducible.
      for (const d of created.reverse()) await utimesIf(d, time);
      return;
    }
    try {
      await fsMkdir(p, mode);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return;
      throw err;
    }
    await chmod(p, mode);
    await chownIf(p, owner);
    await utimesIf(p, time);
  } catch (err) {
    throw wrapOsError(err, name, 'mkdir');
  }
}

/**
 * FileActionMkFile: writes `data` to `path` (created with `mode & 0o777`, or truncated in place;
 * symlinks followed inside `root`), then sets `owner` and `timestamp`.
 */
export async function fileMkfile(root: string, action: FileActionMkFile, opts: FileOpOptions = {}): Promise<void> {
  root = resolve(root);
  const name = cleanInRoot(action.path);
  const owner = await resolveOwner(action.owner, opts.ownerRoot ?? root);
  const time = timestampToSeconds(action.timestamp);
  const p = await resolveInRoot(root, action.path);
  try {
    let existed = true;
    try {
      await lstat(p);
    } catch {
      existed = false;
    }
    const fh = await open(p, 'w', action.mode & 0o777);
    try {
      await fh.writeFile(typeof action.data === 'string' ? Buffer.from(action.data, 'utf8') : action.data);
    } finally {
      await fh.close();
    }
    // BuildKit's os.WriteFile keeps the mode of an existing file; a new one gets exactly `mode`
    // (not masked by the process umask).
    if (!existed) await chmod(p, action.mode & 0o777);
    await chownIf(p, owner);
    await utimesIf(p, time);
  } catch (err) {
    throw wrapOsError(err, name, 'mkfile');
  }
}

/**
 * FileActionRm: removes `path` recursively. The last component is not followed (a symlink is
 * removed, not its target). With `allowWildcard`, every match is removed; with `allowNotFound`
 * a missing path (or no match) is not an error.
 */
export async function fileRm(root: string, action: FileActionRm, opts: FileOpOptions = {}): Promise<void> {
  root = resolve(root);
  checkAborted(opts.signal, cleanInRoot(action.path));
  if (!action.allowWildcard) {
    await rmPath(root, action.path, action.allowNotFound);
    return;
  }
  let matches: string[];
  try {
    matches = await resolveWildcards(root, action.path, false);
  } catch (err) {
    if (action.allowNotFound && (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR')) return;
    throw wrapOsError(err, cleanInRoot(action.path), 'rm');
  }
  for (const m of matches) await rmPath(root, m, action.allowNotFound);
}

async function rmPath(root: string, p: string, allowNotFound: boolean): Promise<void> {
  const name = cleanInRoot(p);
  if (name === '/') throw new FileOpError('FILEOP_INVALID_PATH', p, `rm "${p}": cannot remove the root directory`);
  const host = await resolveInRoot(root, name, { followFinal: false });
  if (!allowNotFound) {
    try {
      await lstat(host);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
        throw new FileOpError('FILEOP_NOT_FOUND', name, `rm "${name}": no such file or directory`, { cause: err });
      }
      throw wrapOsError(err, name, 'rm');
    }
  }
  try {
    await fsRm(host, { recursive: true, force: true });
  } catch (err) {
    throw wrapOsError(err, name, 'rm');
  }
}

/**
 * FileActionSymlink: creates `newpath` (its parent resolved inside `root`) as a symlink holding
 * `oldpath` verbatim, then sets `owner` and `timestamp` on the link itself. An existing
 * `newpath` is an error (`FILEOP_EXISTS`).
 */
export async function fileSymlink(root: string, action: FileActionSymlink, opts: FileOpOptions = {}): Promise<void> {
  root = resolve(root);
  const name = cleanInRoot(action.newpath);
  if (name === '/') throw new FileOpError('FILEOP_INVALID_PATH', action.newpath, 'symlink: newpath cannot be the root');
  const owner = await resolveOwner(action.owner, opts.ownerRoot ?? root);
  const time = timestampToSeconds(action.timestamp);
  const host = await resolveInRoot(root, name, { followFinal: false });
  try {
    await fsSymlink(action.oldpath, host);
    await chownIf(host, owner);
    await utimesIf(host, time);
  } catch (err) {
    throw wrapOsError(err, name, 'symlink');
  }
}

/**
 * FileActionCopy from the snapshot directory `srcRoot` to `destRoot` (they may be the same), with
 * BuildKit's semantics for every option (see the field docs of {@link FileActionCopy}). The owner
 * is resolved in `opts.ownerRoot`, else `destRoot`. Regular files are copied with reflinks where
 * possible, up to `opts.concurrency` at a time, never buffered whole.
 */
export async function fileCopy(srcRoot: string, destRoot: string, action: FileActionCopy, opts: FileOpOptions = {}): Promise<void> {
  srcRoot = resolve(srcRoot);
  destRoot = resolve(destRoot);
  const destName = cleanInRoot(action.dest);
  const owner = await resolveOwner(action.owner, opts.ownerRoot ?? destRoot);
  const time = timestampToSeconds(action.timestamp);
  if (!action.createDestPath) {
    // BuildKit: without createDestPath the parent of dest must exist.
    const p = await resolveInRoot(destRoot, destName);
    try {
      await lstat(dirname(p));
    } catch (err) {
      throw new FileOpError('FILEOP_NOT_FOUND', destName, `copy destination "${destName}": parent directory does not exist`, {
        cause: err,
        hint: 'create it first or set createDestPath',
      });
    }
  }
  const ci: CopyInfo = {
    owner,
    time,
    mode: action.modeStr === undefined || action.modeStr === '' ? (action.mode === -1 ? undefined : action.mode) : undefined,
    modeSet: action.modeStr === undefined || action.modeStr === '' ? undefined : parseModeStr(action.modeStr),
    followLinks: action.followSymlink,
    copyDirContents: action.dirCopyContents,
    includePatterns: action.includePatterns ?? [],
    excludePatterns: action.excludePatterns ?? [],
    alwaysReplaceExistingDestPaths: action.alwaysReplaceExistingDestPaths,
    signal: opts.signal,
    concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
    copyLinks: opts.copyLinks,
  };
  let sources: string[];
  if (!action.allowWildcard) {
    sources = [action.src];
  } else {
    try {
      sources = await resolveWildcards(srcRoot, action.src, action.followSymlink);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') sources = [];
      else throw wrapOsError(err, cleanInRoot(action.src), 'copy source');
    }
    if (sources.length === 0) {
      if (action.allowEmptyWildcard) return;
      throw new FileOpError('FILEOP_WILDCARD_NO_MATCH', cleanInRoot(action.src), `copy source "${cleanInRoot(action.src)}": no files match the pattern`);
    }
  }
  for (const s of sources) {
    checkAborted(opts.signal, cleanInRoot(s));
    if (action.attemptUnpackDockerCompatibility) {
      if (await unpackArchive(srcRoot, s, destRoot, action.dest, owner, time, opts.signal)) continue;
    }
    try {
      await copyPath(srcRoot, s, destRoot, action.dest, ci);
    } catch (err) {
      throw wrapOsError(err, destName, 'copy to');
    }
  }
}

/** Roots an action works on: `dest` is the snapshot being changed; `src` is read by copy (defaults to `dest`). */
export interface FileActionRoots {
  readonly dest: string;
  readonly src?: string;
}

/** Applies one {@link FileAction} (dispatching on `kind`). */
export async function applyFileAction(action: FileAction, roots: FileActionRoots, opts: FileOpOptions = {}): Promise<void> {
  switch (action.kind) {
    case 'mkdir':
      return fileMkdir(roots.dest, action, opts);
    case 'mkfile':
      return fileMkfile(roots.dest, action, opts);
    case 'rm':
      return fileRm(roots.dest, action, opts);
    case 'copy':
      return fileCopy(roots.src ?? roots.dest, roots.dest, action, opts);
    case 'symlink':
      return fileSymlink(roots.dest, action, opts);
    default:
      return assertNever(action);
  }
}
