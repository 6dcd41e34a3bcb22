import { lstat, open, readFile, readlink, symlink, unlink } from 'node:fs/promises';
import { ownProcessStart, processStart } from '../snapshot/process-start.js';
import { processAlive } from './process-alive.js';

/** How {@link withFileLock} waits. */
export interface FileLockOptions {
  /** How often a held lock is looked at again (default 10 ms). */
  readonly pollMs?: number | undefined;
  /**
   * For locks held only briefly (one read and rename of an `index.json`): a wait longer than this
   * means an owner that is stuck, or a stale lock whose pid was reused after a crash, and fails
   * with `onTimeout`'s error. Unset, the wait lasts as long as the owner holds the lock.
   */
  readonly maxWaitMs?: number | undefined;
  /** The error of a wait over `maxWaitMs`, given the pid the lock names (`?` if unreadable). */
  readonly onTimeout?: ((owner: string) => Error) | undefined;
}

/**
 * Runs `fn` holding the exclusive lock file `lock` across processes and within one (removed after
 * `fn`). The lock is a symlink whose target names its owner (pid and start time): made in one
 * step, it never exists without its owner, as a file created with O_EXCL and written next does
 * (a creator stalled before its write, on a busy thread pool or stopped with Ctrl-Z, had its empty
 * file broken as abandoned and went on to hold the lock beside the breaker). A lock whose owner is
 * gone (killed, a zombie: {@link processAlive}; or its pid now names a later process, as after a
 * container restart where kiln is pid 1 again) is broken, as is a file lock of an older kiln left
 * empty or unreadable for longer than any write takes. Waiting honours `signal` (its reason is
 * thrown) and {@link FileLockOptions.maxWaitMs}.
 */
export async function withFileLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const pollMs = opts.pollMs ?? 10;
  const t0 = Date.now();
  for (;;) {
    signal?.throwIfAborted();
    if (opts.maxWaitMs !== undefined && Date.now() - t0 > opts.maxWaitMs) {
      const owner = ((await ownerOf(lock)) ?? '').trim().split(' ')[0] || '?';
      throw opts.onTimeout?.(owner) ?? new Error(`${lock} is held by process ${owner} for over ${opts.maxWaitMs} ms`);
    }
    try {
      await create(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const content = await ownerOf(lock);
      // An empty file (an older kiln's lock) is a lock being written right now, unless it has been
      // empty for longer than any write takes (its creator was killed before writing); only a gone
      // owner's lock and such an abandoned (or unreadable) one are broken.
      const gone = content === undefined ? false : ownerGone(content);
      if (gone === true) await breakStale(lock, async (c) => c === content, pollMs);
      else if (gone === undefined && (await abandoned(lock))) await breakStale(lock, async (c) => c !== undefined && ownerGone(c) === undefined && (await abandoned(lock)), pollMs);
      else await sleep(pollMs);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long a lock may stay empty while its creator writes its mark (one small write). */
const EMPTY_LOCK_GRACE_MS = 5_000;

/**
 * Makes `lock` naming this process (EEXIST when it is there): a symlink; a file written after its
 * O_EXCL creation on a file system without symlinks (vfat: an OCI layout on a USB stick).
 */
async function create(lock: string): Promise<void> {
  try {
    await symlink(ownerMark(), lock);
    return;
  } catch (err) {
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
  const fh = await open(lock, 'wx');
  try {
    await fh.writeFile(ownerMark());
  } catch (err) {
    await unlink(lock).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * The owner `lock` names: its target (a symlink), or what it holds (a file, as older kilns and
 * file systems without symlinks have them); undefined when there is none.
 */
async function ownerOf(lock: string): Promise<string | undefined> {
  try {
    return await readlink(lock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return undefined;
  }
  return readFile(lock, 'utf8').catch(() => undefined);
}

/** What a lock names: `<pid> <start>` ({@link processStart}), a bare pid where /proc cannot tell. */
function ownerMark(): string {
  const start = ownProcessStart();
  return start === undefined ? String(process.pid) : `${process.pid} ${start}`;
}

/**
 * Whether the owner a lock file's content names is gone: its pid is dead, or now names a process
 * that started later. Undefined when the content names no owner (empty: being written; or not a
 * mark at all). A bare pid (written by an older kiln) is judged by the pid alone.
 */
function ownerGone(content: string): boolean | undefined {
  const m = /^(\d+)(?: (\S+))?$/.exec(content.trim());
  if (m === null) return undefined;
  const pid = Number(m[1]);
  if (!processAlive(pid)) return true;
  const now = m[2] === undefined ? undefined : processStart(pid);
  return now !== undefined && now !== m[2];
}

/** Whether `lock` has named no owner for longer than {@link EMPTY_LOCK_GRACE_MS} (its creator died writing it). */
async function abandoned(lock: string): Promise<boolean> {
  const st = await lstat(lock).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > EMPTY_LOCK_GRACE_MS;
}

/**
 * Removes `lock` if it is still stale (`stale(content)`: the dead owner's pid, or abandoned empty),
 * one breaker at a time (`<lock>.break`): two waiters that both read the stale lock would otherwise
 * both remove "it", the second removing the lock the first had taken meanwhile, and both would
 * hold it. A breaker left by a process that died while breaking (a window of microseconds) is
 * removed the same way.
 */
async function breakStale(lock: string, stale: (content: string | undefined) => Promise<boolean>, pollMs: number): Promise<void> {
  const breaker = `${lock}.break`;
  try {
    await create(breaker);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const held = await ownerOf(breaker);
    const gone = held === undefined ? false : ownerGone(held);
    if (gone === true || (gone === undefined && (await abandoned(breaker)))) await unlink(breaker).catch(() => undefined);
    else await sleep(pollMs);
    return;
  }
  try {
    if (await stale(await ownerOf(lock))) await unlink(lock).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}
