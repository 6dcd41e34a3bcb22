import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { WorkerError } from '../api/errors.js';

/**
 * A spawned child's exit status: its code, or 128+n when signal n killed it. Rejects with
 * `missing()` when the binary is not there (ENOENT), else with the spawn error.
 */
export function childExit(child: ChildProcess, missing: () => WorkerError): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? missing() : e));
    child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === null ? 0 : (constants.signals[sig] ?? 0))));
  });
}
