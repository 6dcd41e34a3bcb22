import { withFileLock } from '../api/file-lock.js';
import { ImageStoreError } from '../content/errors.js';

/** The lock file of a layout's index.json, in the layout directory (kiln's, not BuildKit's flocked `index.json.lock`). */
export const LAYOUT_INDEX_LOCK = '.index.json.lock';

/**
 * Runs `fn` holding a layout's index lock: two writers into one layout (cache exports, the oci
 * exporter, `kiln imagetools create -t oci-layout://`) update its `index.json` one after the
 * other, so neither drops the other's tag. The lock is held for one read and rename, so a wait
 * over `maxWaitMs` fails (EXPORT_FAILED) rather than hang on a stuck owner.
 */
export function withLayoutLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>, maxWaitMs = 30_000): Promise<T> {
  return withFileLock(lock, signal, fn, {
    maxWaitMs,
    onTimeout: (owner) =>
      new ImageStoreError('EXPORT_FAILED', `${lock} is held by process ${owner} for over ${Math.round(maxWaitMs / 1000)} s`, { hint: `if no kiln export into this directory is running, remove ${lock}` }),
  });
}
