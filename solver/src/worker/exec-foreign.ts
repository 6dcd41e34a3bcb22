import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { elfPlatform, formatPlatform, type Snapshotter } from '@kiln/runtime';
import { SolverError } from '../errors.js';
import { noEmulator, type ExecPlatformOptions } from './exec-platform.js';
import { rootPath } from './root-path.js';
import { withMounted } from './snapshots.js';

/** The directories of a process's PATH (runc's default when the env has none). */
function pathDirs(env: readonly string[]): string[] {
  const path = [...env].reverse().find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return path.split(':').filter((d) => d.startsWith('/'));
}

/**
 * The first 20 bytes of a file the kernel would run: a regular file with an execute bit (runc's
 * LookPath passes over anything else on PATH, and execve refuses it). Undefined otherwise, or when
 * it cannot be read. Opened without following a last link (rootPath resolved them inside the
 * root) and without blocking, so a FIFO there never waits for a writer.
 */
async function head(path: string): Promise<Buffer | undefined> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile() || (st.mode & 0o111) === 0) return undefined;
    const b = Buffer.alloc(20);
    const { bytesRead } = await fh.read(b, 0, 20, 0);
    return b.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * Why a failed exec never ran: its program is built for a platform nothing here runs (the kernel
 * refused it; runc says `exec format error`, where BuildKit leaves the user). Read only after a
 * failure (one mount of the root's input, a 20-byte read), so a step whose stage names another
 * platform but whose programs are the host's (a single-platform base image, which containerd
 * resolves for any platform) runs as in BuildKit, and a foreign image in a host stage is
 * explained as well. Undefined when the program is the host's, emulated (also by a handler
 * without `F` whose interpreter the root holds), a script, not executable, or unreadable.
 */
export async function foreignProgramError(
  s: Snapshotter,
  root: string | undefined,
  proc: { readonly args: readonly string[]; readonly env: readonly string[]; readonly cwd?: string | undefined; readonly mounts?: readonly string[] },
  signal: AbortSignal | undefined,
  cause: unknown,
  opts: ExecPlatformOptions = {},
): Promise<SolverError | undefined> {
  const prog = proc.args[0];
  if (root === undefined || prog === undefined || prog === '' || signal?.aborted === true) return undefined;
  const candidates = prog.includes('/') ? [posix.resolve(proc.cwd ?? '/', prog)] : pathDirs(proc.env).map((d) => posix.join(d, prog));
  try {
    return await withMounted(s, root, signal, async (dir) => {
      for (const c of candidates) {
        // Under another mount (a bind, a cache): what runc found there is not in the root.
        if (under(c, proc.mounts)) return undefined;
        const bytes = await head(await rootPath(dir, c));
        if (bytes === undefined) continue;
        const platform = elfPlatform(bytes);
        // a script, or an ELF machine kiln does not know: its interpreter's failure stands
        if (platform === undefined) return undefined;
        const none = noEmulator(platform, opts);
        if (none === undefined) return undefined;
        // A handler without F whose interpreter this root holds ran the program: its failure stands.
        for (const i of none.interpreters) if ((await head(await rootPath(dir, i))) !== undefined) return undefined;
        const e = none.error;
        return new SolverError(e.code, `${e.message} (${c} is a ${formatPlatform(platform)} program)`, { cause, ...(e.hint === undefined ? {} : { hint: e.hint }) });
      }
      return undefined;
    });
  } catch {
    return undefined; // the explanation is a bonus: the exec's own failure stands
  }
}

/** Whether `path` is at or below one of `mounts` (container paths; `/` itself is the root, left out). */
function under(path: string, mounts: readonly string[] | undefined): boolean {
  return (mounts ?? []).some((m) => {
    const d = posix.resolve('/', m);
    return d !== '/' && (path === d || path.startsWith(`${d}/`));
  });
}
