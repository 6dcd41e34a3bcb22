import { open, readFile, stat, unlink } from 'node:fs/promises';
import { processAlive } from '@kiln/runtime';
import { throwIfCancelled } from '../errors.js';

/** Whether a process with this pid exists and has not exited (runtime's processAlive: a zombie is gone). */
export const pidAlive: (pid: number) => boolean = processAlive;

/**
 * Runs `fn` holding the exclusive lock file `lock` across processes (created with O_EXCL, holding
 * the owner's pid). A lock whose owner process is gone is broken; waiting polls every `pollMs`
 * and honours `signal`.
 */
export async function withFileLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>, pollMs = 10): Promise<T> {
  for (;;) {
    throwIfCancelled(signal);
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
      if (owner > 0 && !pidAlive(owner)) await breakStale(lock, async (c) => c === content, pollMs);
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
    if ((b > 0 && !pidAlive(b)) || (held === '' && (await abandoned(breaker)))) await unlink(breaker).catch(() => undefined);
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
