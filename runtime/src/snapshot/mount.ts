import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Mount } from '../api/snapshot.js';
import { WorkerError } from '../api/errors.js';
import { ERRNO, MNT_DETACH, MS, SyscallError, sysMount, sysUmount } from './mount-helper.js';

const execFileP = promisify(execFile);

/** mount(2) flags for the option words `mount -o` understands as flags; the rest is fs data. */
const FLAG_WORDS: Readonly<Record<string, number>> = {
  ro: MS.RDONLY,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
};

function splitOptions(options: readonly string[]): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAG_WORDS[o];
    if (f !== undefined) flags |= f;
    else if (o !== 'rw' && o !== 'bind' && o !== 'rbind') data.push(o);
  }
  return { flags, data: data.join(',') };
}

/**
 * Performs `m` at `target`: through the mount helper (one syscall, no process), or with the
 * `mount` binary when the helper is unavailable.
 */
export async function mountAt(m: Mount, target: string): Promise<void> {
  try {
    if (m.type === 'bind') {
      const ro = m.options.includes('ro');
      // Like `mount --bind` (not recursive): snapshot layer dirs hold no mounts of their own.
      if (await sysMount(m.source, target, undefined, MS.BIND, undefined)) {
        if (ro) {
          try {
            await sysMount('none', target, undefined, MS.REMOUNT | MS.BIND | MS.RDONLY, undefined);
          } catch (e) {
            await unmount(target);
            throw e;
          }
        }
        return;
      }
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
    const { flags, data } = splitOptions(m.options);
    if (await sysMount(m.source, target, m.type, flags, data)) return;
    const opts = m.options.join(',');
    await execFileP('mount', ['-t', m.type, ...(opts === '' ? [] : ['-o', opts]), m.source, target]);
  } catch (e) {
    if (e instanceof WorkerError) throw e;
    const stderr = (e as { stderr?: string }).stderr ?? (e instanceof Error ? e.message : String(e));
    throw new WorkerError('MOUNT_FAILED', `mount ${m.type} at ${target}: ${stderr.trim()}`, { cause: e });
  }
}

/** Unmounts `target`; a target that is not mounted is fine. Falls back to a lazy unmount when busy. */
export async function unmount(target: string): Promise<void> {
  try {
    if (await sysUmount(target, 0)) return;
  } catch (e) {
    const errno = e instanceof SyscallError ? e.errno : -1;
    if (errno === ERRNO.EINVAL || errno === ERRNO.ENOENT) return; // not a mount point / gone
    if (errno === ERRNO.EBUSY) {
      await sysUmount(target, MNT_DETACH).catch((e2: unknown) => {
        throw new WorkerError('MOUNT_FAILED', `umount ${target}: ${e2 instanceof Error ? e2.message : String(e2)}`, { cause: e2 });
      });
      return;
    }
    throw new WorkerError('MOUNT_FAILED', `umount ${target}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
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
