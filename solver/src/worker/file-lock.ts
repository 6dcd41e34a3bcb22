import { open, readFile, unlink } from 'node:fs/promises';
import { throwIfCancelled } from '../errors.js';

/** Whether a process with this pid exists (EPERM: exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      // An empty file is a lock being written right now; only a dead owner's lock is broken.
      if (owner > 0 && !pidAlive(owner)) await breakStale(lock, owner, pollMs);
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

/**
 * Removes `lock` if it still holds the dead `owner`'s pid, one breaker at a time (`<lock>.break`):
 * two waiters that both read the dead pid would otherwise both remove "it", the second removing
 * the lock the first had taken meanwhile, and both would hold it. A breaker left by a process that
 * died while breaking (a window of microseconds) is removed the same way.
 */
async function breakStale(lock: string, owner: number, pollMs: number): Promise<void> {
  const breaker = `${lock}.break`;
  let fh;
  try {
    fh = await open(breaker, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const b = Number(await readFile(breaker, 'utf8').catch(() => ''));
    if (b > 0 && !pidAlive(b)) await unlink(breaker).catch(() => undefined);
    else await sleep(pollMs);
    return;
  }
  try {
    try {
      await fh.writeFile(String(process.pid));
    } finally {
      await fh.close();
    }
    if (Number(await readFile(lock, 'utf8').catch(() => '')) === owner) await unlink(lock).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}
