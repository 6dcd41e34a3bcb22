/**
 * Whether a process with this pid exists (EPERM: it exists, owned by someone else). Files and
 * mounts that carry their owner's pid are cleaned up only once that process is gone.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
