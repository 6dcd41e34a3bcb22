import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid exists and has not exited (EPERM: it exists, owned by someone
 * else). Files, mounts and locks that carry their owner's pid are cleaned up only once that
 * process is gone. An exited process nobody has reaped yet (a zombie: where no init reaps
 * orphans, as in a container whose first process does not wait, for good) still answers
 * kill(0); its /proc state (Z, or X while being reaped) says it is gone.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The state follows the command name, which may hold spaces and parentheses.
    const state = stat[stat.lastIndexOf(')') + 2];
    return state !== 'Z' && state !== 'X';
  } catch (e) {
    // Gone meanwhile; without /proc (or under hidepid) kill(0) is all there is to go by.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}
