import { processAlive, withFileLock as withRuntimeFileLock } from '@kiln/runtime';
import { throwIfCancelled } from '../errors.js';

/** Whether a process with this pid exists and has not exited (runtime's processAlive: a zombie is gone). */
export const pidAlive: (pid: number) => boolean = processAlive;

/**
 * The runtime's file lock (a dead owner's lock broken; no wait limit: the solver holds its locks
 * for a whole git fetch or RUN), a wait cut short by `signal` failing as the solver's other waits
 * do (SOLVER_CANCELLED).
 */
export async function withFileLock<T>(lock: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await withRuntimeFileLock(lock, signal, fn);
  } catch (e) {
    if (signal?.aborted === true && e === signal.reason) throwIfCancelled(signal);
    throw e;
  }
}
