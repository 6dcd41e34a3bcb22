import { open, readFile, stat, unlink } from 'node:fs/promises';
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
  /** The error of a wait over `maxWaitMs`, given the pid the lock holds (`?` if unreadable). */
  readonly onTimeout?: ((owner: string) => Error) | undefined;
}

/**
 * Runs `fn` holding the exclusive lock file `lock` across processes and within one (created with
 * O_EXCL, holding the owner's pid; removed after `fn`). A lock whose owner process is gone (killed,
 * or a zombie: {@link processAlive}) is broken, as is one left empty for longer than any pid write
 * takes. Waiting honours `signal` (its reason is thrown) and {@link FileLockOptions.maxWaitMs}.
 */
export async function withFileLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const pollMs = opts.pollMs ?? 10;
  const t0 = Date.now();
  for (;;) {
    signal?.throwIfAborted();
    if (opts.maxWaitMs !== undefined && Date.now() - t0 > opts.maxWaitMs) {
      const owner = (await readFile(lock, 'utf8').catch(() => '')).trim() || '?';
      throw opts.onTimeout?.(owner) ?? new Error(`${lock} is held by process ${owner} for over ${opts.maxWaitMs} ms`);
    }
    try {
      const fh = await open(lock, 'wx');
      try {
        await fh.writeFile(String(process.pid));
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const content = await readFile(lock, 'utf8').catch(() => undefined);
      const owner = Number(content);
      // An empty file is a lock being written right now, unless it has been empty for longer than
      // any write takes (its creator was killed before writing its pid); only a dead owner's lock
      // and such an abandoned one are broken.
      if (owner > 0 && !processAlive(owner)) await breakStale(lock, async (c) => c === content, pollMs);
      else if (content === '' && (await abandoned(lock))) await breakStale(lock, async (c) => c === '' && (await abandoned(lock)), pollMs);
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

/** How long a lock may stay empty while its creator writes its pid (one small write). */
const EMPTY_LOCK_GRACE_MS = 5_000;

/** Whether `lock` has been there, empty, for longer than {@link EMPTY_LOCK_GRACE_MS}. */
async function abandoned(lock: string): Promise<boolean> {
  const st = await stat(lock).catch(() => undefined);
  return st !== undefined && st.size === 0 && Date.now() - st.mtimeMs > EMPTY_LOCK_GRACE_MS;
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
  let fh;
  try {
    fh = await open(breaker, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const held = await readFile(breaker, 'utf8').catch(() => undefined);
    const b = Number(held);
    if ((b > 0 && !processAlive(b)) || (held === '' && (await abandoned(breaker)))) await unlink(breaker).catch(() => undefined);
    else await sleep(pollMs);
    return;
  }
  try {
    try {
      await fh.writeFile(String(process.pid));
    } finally {
      await fh.close();
    }
    if (await stale(await readFile(lock, 'utf8').catch(() => undefined))) await unlink(lock).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}
