import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Mount } from '../api/snapshot.js';
import { WorkerError } from '../api/errors.js';

const execFileP = promisify(execFile);

/** Performs `m` at `target` with the `mount` binary (Node has no mount(2)). */
export async function mountAt(m: Mount, target: string): Promise<void> {
  try {
    if (m.type === 'bind') {
      const ro = m.options.includes('ro');
      await execFileP('mount', ['--bind', m.source, target]);
      if (ro) {
        try {
          await execFileP('mount', ['-o', 'remount,bind,ro', target]);
        } catch (e) {
          await unmount(target);
          throw e;
        }
      }
      return;
    }
    const opts = m.options.join(',');
    await execFileP('mount', ['-t', m.type, ...(opts === '' ? [] : ['-o', opts]), m.source, target]);
  } catch (e) {
    if (e instanceof WorkerError) throw e;
    const stderr = (e as { stderr?: string }).stderr ?? String(e);
    throw new WorkerError('MOUNT_FAILED', `mount ${m.type} at ${target}: ${stderr.trim()}`, { cause: e });
  }
}

/** Unmounts `target`; a target that is not mounted is fine. Falls back to a lazy unmount when busy. */
export async function unmount(target: string): Promise<void> {
  try {
    await execFileP('umount', [target]);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? '';
    if (/not mounted|no mount point|not found/i.test(stderr)) return;
    if (/busy/i.test(stderr)) {
      await execFileP('umount', ['-l', target]);
      return;
    }
    throw new WorkerError('MOUNT_FAILED', `umount ${target}: ${stderr.trim()}`, { cause: e });
  }
}

/** Mount points (from /proc/self/mountinfo) at or below `prefix`. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const path = mp.replace(/\\(\d{3})/g, (_s, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === prefix || path.startsWith(`${prefix}/`)) out.push(path);
  }
  return out;
}
