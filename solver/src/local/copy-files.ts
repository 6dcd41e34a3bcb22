import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { throwIfCancelled } from '../errors.js';

/** One small regular file for {@link copySmallFiles}. */
export interface SmallCopyJob {
  /** The file to read (in the build context). */
  readonly abs: string;
  /** Where its copy goes: a new inode (created exclusively; `unlink` first removes an old one). */
  readonly target: string;
  readonly size: number;
  /** Permission bits (`& 0o7777`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** mtime (and atime) in seconds. */
  readonly mtime: number;
  /** The tarsum header text the record digest starts with. */
  readonly header: string;
  readonly unlink: boolean;
  /** Set the owner (after creating, before the mode: chown clears set-id bits). */
  readonly chown: boolean;
  /** Set the mode explicitly (the umask changed it, or it has set-id bits, or chown ran). */
  readonly chmod: boolean;
}

type SyncFs = Pick<typeof fs, 'unlinkSync' | 'openSync' | 'readSync' | 'closeSync' | 'writeSync' | 'fchownSync' | 'fchmodSync' | 'futimesSync'>;

/**
 * Copies one small file into a new inode and returns its BuildKit record digest (sha256 of the
 * header then the bytes written: hash and copy are the same bytes). Self-contained on purpose:
 * its source text also runs in the copy worker thread, so it uses only its parameters.
 */
function copyJob(f: SyncFs, hash: typeof createHash, j: SmallCopyJob): string {
  if (j.unlink) {
    try {
      f.unlinkSync(j.target);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
  }
  let buf = Buffer.alloc(0);
  if (j.size > 0) {
    // One read of the size the walk saw (like readFileSync, without its fstat).
    buf = Buffer.allocUnsafe(j.size);
    const rfd = f.openSync(j.abs, 'r');
    try {
      let n = 0;
      while (n < j.size) {
        const r = f.readSync(rfd, buf, n, j.size - n, null);
        if (r === 0) break;
        n += r;
      }
      if (n < j.size) buf = buf.subarray(0, n);
    } finally {
      f.closeSync(rfd);
    }
  }
  const fd = f.openSync(j.target, 'wx', j.mode);
  try {
    for (let off = 0; off < buf.length; ) off += f.writeSync(fd, buf, off);
    if (j.chown) f.fchownSync(fd, j.uid, j.gid);
    if (j.chmod) f.fchmodSync(fd, j.mode);
    f.futimesSync(fd, j.mtime, j.mtime);
  } finally {
    f.closeSync(fd);
  }
  return `sha256:${hash('sha256').update(j.header).update(buf).digest('hex')}`;
}

const WORKER_SOURCE = `
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const { parentPort } = require('node:worker_threads');
const copyJob = ${copyJob.toString()};
parentPort.on('message', (jobs) => {
  const out = [];
  for (const j of jobs) {
    try {
      out.push({ digest: copyJob(fs, createHash, j) });
    } catch (e) {
      out.push({ error: { message: String(e && e.message), code: e && e.code } });
      break;
    }
  }
  parentPort.postMessage(out);
});
`;

/** Below this many files one thread copies them all (a worker costs a few tens of ms to start). */
const PARALLEL_MIN = 512;
const CHUNK = 128;

type WorkerReply = ReadonlyArray<{ digest?: string; error?: { message: string; code?: unknown } }>;

/**
 * Copies small files (see {@link copyJob}) and reports each digest through `done(index, digest)`.
 * Many files are shared between this thread and one worker thread taking chunks from the same
 * queue when a core is free: creating inodes is kernel work that a second core halves. Cancellation is checked
 * between chunks; the first error stops both and is thrown.
 */
export async function copySmallFiles(
  jobs: readonly SmallCopyJob[],
  done: (index: number, digest: string) => void,
  signal?: AbortSignal,
  /** Use the worker thread (true), never (false), or when there are many files and a free core (default). */
  parallel?: boolean,
): Promise<void> {
  let next = 0;
  const take = (): [number, number] | undefined => {
    if (next >= jobs.length) return undefined;
    const start = next;
    next = Math.min(jobs.length, next + CHUNK);
    return [start, next];
  };
  let failed: unknown;
  let worker: Worker | undefined;
  // A second thread helps only with a core to spare: on a saturated machine it would add its
  // start-up and message passing (measured: +~100 ms CPU for 5,000 files) and gain nothing.
  if (parallel ?? (jobs.length >= PARALLEL_MIN && (loadavg()[0] ?? 0) < availableParallelism() - 0.5)) {
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true });
    } catch {
      worker = undefined; // copy on this thread alone
    }
  }
  const helped =
    worker === undefined
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const w = worker as Worker;
          let range: [number, number] | undefined;
          const send = (): void => {
            range = failed === undefined && signal?.aborted !== true ? take() : undefined;
            if (range === undefined) resolve();
            else w.postMessage(jobs.slice(range[0], range[1]));
          };
          w.on('message', (reply: WorkerReply) => {
            const [start] = range ?? [0, 0];
            for (const [k, r] of reply.entries()) {
              if (r.digest !== undefined) done(start + k, r.digest);
              else failed ??= Object.assign(new Error(r.error?.message ?? 'copy failed'), { code: r.error?.code });
            }
            send();
          });
          w.on('error', (err) => {
            failed ??= err;
            resolve();
          });
          send();
        });
  try {
    for (;;) {
      if (failed !== undefined) break;
      throwIfCancelled(signal);
      const range = take();
      if (range === undefined) break;
      for (let i = range[0]; i < range[1]; i++) {
        const j = jobs[i];
        if (j !== undefined) done(i, copyJob(fs, createHash, j));
      }
      // Yield: progress, other vertices and the worker's replies.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await helped;
  } finally {
    await worker?.terminate();
  }
  if (failed !== undefined) throw failed;
  throwIfCancelled(signal);
}
