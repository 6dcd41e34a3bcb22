import { open, readFile, unlink } from 'node:fs/promises';
import { processAlive } from '../api/process-alive.js';
import { ImageStoreError } from '../content/errors.js';

/** The lock file of a layout's index.json, in the layout directory (kiln's, not BuildKit's flocked `index.json.lock`). */
export const LAYOUT_INDEX_LOCK = '.index.json.lock';

/**
 * Runs `fn` holding the lock file `lock` (created with O_EXCL, holding the owner's pid), across
 * processes and within one: two exports into one cache directory update its `index.json` one
 * after the other, so neither drops the other's tag. A lock whose owner process is gone is broken.
 * The lock is held for one read and rename of `index.json`: after `maxWaitMs` the lock is taken
 * for stale (its pid reused by another process after a crash) and the wait fails (EXPORT_FAILED).
 * The solver's withFileLock is the same lock without that limit; the runtime cannot import it.
 */
export async function withLayoutLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>, maxWaitMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    signal?.throwIfAborted();
    if (Date.now() - t0 > maxWaitMs) {
      const owner = await readFile(lock, 'utf8').catch(() => '?');
      throw new ImageStoreError('EXPORT_FAILED', `${lock} is held by process ${owner.trim() || '?'} for over ${Math.round(maxWaitMs / 1000)} s`, {
        hint: `if no kiln export into this directory is running, remove ${lock}`,
      });
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
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      // An empty file is a lock being written right now; only a dead owner's lock is broken.
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) await unlink(lock).catch(() => undefined);
      else await new Promise((r) => setTimeout(r, 10));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}
