import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, realpath, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { danglingLink, makeDirs } from './make-dirs.js';
import { writeFileAtomic } from '@kiln/runtime';
import { callerPath, type CliIo } from '../io.js';
import { EngineError } from './errors.js';

/**
 * Where a file that `kiln build` writes for its caller (`--iidfile`, `--metadata-file`, an
 * `--output dest=`) goes:
 * - `stdout` / `stderr`: `/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1` (and 2) are the caller's
 *   streams, also through a daemon, whose own would be another process's;
 * - `special`: an existing device, FIFO or socket (`/dev/null`, a named pipe), written in place as
 *   `os.WriteFile` does for buildx; an atomic rename would replace the node itself;
 * - `file`: a regular file or a new one, written atomically at the end of its symlinks (the link
 *   stays a link, as buildx writes through it).
 */
export type FileTarget =
  | { readonly kind: 'stdout' | 'stderr'; readonly given: string }
  | { readonly kind: 'special'; readonly given: string; readonly path: string }
  | { readonly kind: 'file'; readonly given: string; readonly path: string };

const STREAMS: Readonly<Record<string, 'stdout' | 'stderr'>> = {
  '/dev/stdout': 'stdout',
  '/dev/fd/1': 'stdout',
  '/proc/self/fd/1': 'stdout',
  '/dev/stderr': 'stderr',
  '/dev/fd/2': 'stderr',
  '/proc/self/fd/2': 'stderr',
};

/**
 * Resolves `given` (relative to the caller's directory) to a {@link FileTarget}; creates missing
 * parent directories of a new file. `want` is what the caller writes there: a file that names a
 * directory (or a directory output that names a file) is refused now, before the build, rather
 * than failing at the end with the rename's EISDIR or mkdir's EEXIST. The parents it makes are
 * added to `made` (outermost first), for the caller to remove again if nothing was written.
 */
export async function fileTarget(io: CliIo, flag: string, given: string, want: 'file' | 'directory' = 'file', made?: string[]): Promise<FileTarget> {
  const path = callerPath(io, given);
  const stream = STREAMS[path];
  if (stream !== undefined) return { kind: stream, given };
  if (io.remote === true && /^\/(dev\/fd|proc\/(self|thread-self))(\/|$)/.test(path)) {
    throw new EngineError('KLN0702', `${flag} ${given} names a file of the kiln daemon's process, not of this command`, {
      hint: 'use a file path, /dev/stdout or /dev/stderr, or run without the daemon (KILN_DAEMON=0)',
    });
  }
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) {
    const link = want === 'directory' ? await danglingLink(path, st) : undefined;
    if (link !== undefined) throw new EngineError('KLN0702', `cannot write ${flag} ${given}: ${link}`, { hint: DANGLING_HINT });
    return newFileTarget(flag, given, path, made);
  }
  if (!st.isFile() && !st.isDirectory()) return { kind: 'special', given, path };
  if (st?.isDirectory() === true && want === 'file') {
    throw new EngineError('KLN0702', `cannot write ${flag} ${given}: it is a directory`, { hint: 'name a file, not a directory (a missing file is created)' });
  }
  if (st?.isFile() === true && want === 'directory') {
    throw new EngineError('KLN0702', `cannot write ${flag} ${given}: it is a file, and this output writes a directory`, { hint: 'name a directory (a new one is made) or use type=tar,dest=FILE for a tarball' });
  }
  const real = await realpath(path);
  // A directory output copies into an existing directory; anything else is renamed into place.
  await checkWritable(flag, given, st.isDirectory() ? real : dirname(real));
  return { kind: 'file', given, path: real };
}

const DANGLING_HINT = 'make the directory it points to, remove the link, or name another path';

/** A target at `path`, which does not exist yet: its parents are made (and added to `made`). */
async function newFileTarget(flag: string, given: string, path: string, made: string[] | undefined): Promise<FileTarget> {
  const parents = await makeParents(flag, given, dirname(path));
  made?.push(...parents);
  await checkWritable(flag, given, dirname(path));
  return { kind: 'file', given, path };
}

/**
 * Refuses, before the build, a directory that takes no new files (a read-only filesystem, another
 * user's directory, /proc): the atomic write's temporary file failed there only after the build,
 * with a bare ENOENT/EROFS/EACCES naming that temporary file. Tried with a probe file, removed at once.
 */
async function checkWritable(flag: string, given: string, dir: string): Promise<void> {
  const probe = join(dir, `.kiln-probe-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await (await open(probe, 'wx')).close();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new EngineError('KLN0702', `cannot write ${flag} ${given}: ${dir} does not take new files (${code})`, {
      hint: 'name a path in a writable directory',
    });
  }
  await rm(probe, { force: true });
}

/**
 * Checks, before the build and without making anything, that a directory can be written at
 * `path` (an existing one, or a new one under its nearest existing ancestor): a probe directory
 * is made and removed there. Node's recursive mkdir never returns under /proc, where mkdir says
 * ENOENT although the parent exists (`--cache-to type=local,dest=/proc/x` spun at full CPU after
 * the build, deaf to SIGTERM); a symlink to nothing on the way is refused (mkdir fails on it);
 * `fail` gets what is wrong.
 */
export async function checkDirectoryTarget(path: string, fail: (why: string) => Error): Promise<void> {
  let d = path;
  for (;;) {
    const st = await stat(d).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) throw fail(`${d} is not a directory`);
      break;
    }
    // mkdir -p stops at a symlink to nothing (EEXIST), as Go's os.MkdirAll does
    const link = await danglingLink(d, st);
    if (link !== undefined) throw fail(link);
    if (dirname(d) === d) return;
    d = dirname(d);
  }
  const probe = join(d, `.kiln-probe-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(probe);
  } catch (e) {
    throw fail(`${d} does not take new directories (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  await rmdir(probe).catch(() => undefined);
}

/** Removes what {@link fileTarget} added to `made` that is still empty (innermost first): nothing was written there. */
export async function removeMadeDirs(made: string[]): Promise<void> {
  for (const d of made.splice(0).reverse()) await rmdir(d).catch(() => undefined);
}

/** Writes `data` to `target` (see {@link FileTarget}). */
export async function writeTarget(io: CliIo, target: FileTarget, data: Uint8Array): Promise<void> {
  switch (target.kind) {
    case 'stdout':
      return void io.stdout.write(data);
    case 'stderr':
      return void io.stderr.write(data);
    case 'special':
      return writeFile(target.path, data);
    case 'file':
      return writeFileAtomic(target.path, data);
  }
}

/** Removes a regular file at `target` (only that: never a device, a stream or a link's target directory). */
export async function removeTarget(target: FileTarget): Promise<void> {
  if (target.kind !== 'file') return;
  const st = await lstat(target.path).catch(() => undefined);
  if (st?.isFile() === true) await rm(target.path, { force: true });
}

/** The parents of an output file, as {@link makeDirs} makes them; KLN0702 naming the flag. */
async function makeParents(flag: string, given: string, dir: string): Promise<string[]> {
  return makeDirs(dir, (why, cause) => new EngineError('KLN0702', `cannot write ${flag} ${given}: ${why}`, { hint: 'name a path kiln can make its directories in', ...(cause === undefined ? {} : { cause }) }));
}
