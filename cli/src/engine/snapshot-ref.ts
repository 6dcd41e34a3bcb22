import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Stats } from 'node:fs';
import type { FileStat, ReadFileOptions } from '@kiln/llb-core';
import type { SolvedRef } from '@kiln/gateway';
import { goMatch, resolveInRoot, type MountedSnapshot, type Snapshotter } from '@kiln/runtime';
import { EngineError } from './errors.js';

// Go os.FileMode type bits (fstypes.Stat.Mode carries them).
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;
const MODE_DEVICE = 2 ** 26;
const MODE_PIPE = 2 ** 25;
const MODE_SOCKET = 2 ** 24;
const MODE_SETUID = 2 ** 23;
const MODE_SETGID = 2 ** 22;
const MODE_CHARDEV = 2 ** 21;
const MODE_STICKY = 2 ** 20;

/**
 * A solved result the gateway and exporters can read: a committed snapshot, mounted read-only on
 * first use and kept mounted until {@link SnapshotRef.release}. Every path is resolved inside the
 * snapshot root (symlinks and `..` cannot escape it), as BuildKit's `ReadFile` does.
 */
export class SnapshotRef implements SolvedRef {
  readonly snapshot: string;
  readonly #snapshotter: Snapshotter;
  readonly #onRelease: () => void;
  #mounted: Promise<MountedSnapshot> | undefined;
  #released = false;

  constructor(snapshotter: Snapshotter, snapshot: string, onRelease: () => void) {
    this.#snapshotter = snapshotter;
    this.snapshot = snapshot;
    this.#onRelease = onRelease;
  }

  /**
   * The host directory of the snapshot. A snapshot that is one plain directory (a single
   * committed layer, e.g. a local source) is read in place; others are mounted on first call.
   */
  async path(): Promise<string> {
    if (this.#released) throw new Error('snapshot ref used after release');
    this.#mounted ??= this.#open();
    return (await this.#mounted).path;
  }

  async #open(): Promise<MountedSnapshot> {
    const mounts = await this.#snapshotter.mounts(this.snapshot);
    const only = mounts.length === 1 ? mounts[0] : undefined;
    if (only !== undefined && only.type === 'bind' && only.options.includes('ro')) {
      // Saves a mount(8)/umount(8) pair per read: the directory is immutable by contract.
      return { path: only.source, release: async () => undefined };
    }
    return this.#snapshotter.mount(this.snapshot);
  }

  async readFile(path: string, options: ReadFileOptions = {}): Promise<Uint8Array> {
    const file = await resolveInRoot(await this.path(), path);
    let st: Stats;
    try {
      st = await lstat(file);
    } catch {
      throw notFound(path);
    }
    if (!st.isFile()) throw new EngineError('KLN0701', `${path} is not a regular file in the result`);
    const start = options.offset ?? 0;
    const length = options.length ?? Math.max(0, st.size - start);
    const buf = Buffer.alloc(Math.min(length, Math.max(0, st.size - start)));
    const fh = await open(file, 'r');
    try {
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await fh.read(buf, done, buf.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } finally {
      await fh.close();
    }
  }

  async readDir(path: string, include?: string): Promise<readonly FileStat[]> {
    const dir = await resolveInRoot(await this.path(), path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      throw notFound(path);
    }
    const out: FileStat[] = [];
    for (const name of names.sort()) {
      if (include !== undefined && include !== '' && !goMatch(include, name)) continue;
      const p = join(dir, name);
      const st = await lstat(p);
      out.push(toFileStat(name, st, await mtimeNs(p), st.isSymbolicLink() ? await readlink(p) : undefined));
    }
    return out;
  }

  async statFile(path: string): Promise<FileStat> {
    const file = await resolveInRoot(await this.path(), path, { followFinal: false });
    let st: Stats;
    try {
      st = await lstat(file);
    } catch {
      throw notFound(path);
    }
    return toFileStat(posix.normalize(path), st, await mtimeNs(file), st.isSymbolicLink() ? await readlink(file) : undefined);
  }

  /** Unmounts (if mounted) and ends the build's lease on the result. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const m = this.#mounted;
    this.#mounted = undefined;
    if (m !== undefined) await (await m.catch(() => undefined))?.release();
    this.#onRelease();
  }
}

function notFound(path: string): EngineError {
  return new EngineError('KLN0701', `${path}: no such file or directory in the result`);
}

async function mtimeNs(file: string): Promise<bigint> {
  return (await lstat(file, { bigint: true })).mtimeNs;
}

function toFileStat(path: string, st: Stats, modTime: bigint, linkname: string | undefined): FileStat {
  let mode = st.mode & 0o777;
  if (st.mode & 0o4000) mode += MODE_SETUID;
  if (st.mode & 0o2000) mode += MODE_SETGID;
  if (st.mode & 0o1000) mode += MODE_STICKY;
  if (st.isDirectory()) mode += MODE_DIR;
  else if (st.isSymbolicLink()) mode += MODE_SYMLINK;
  else if (st.isFIFO()) mode += MODE_PIPE;
  else if (st.isSocket()) mode += MODE_SOCKET;
  else if (st.isCharacterDevice()) mode += MODE_DEVICE + MODE_CHARDEV;
  else if (st.isBlockDevice()) mode += MODE_DEVICE;
  return { path, mode, uid: st.uid, gid: st.gid, size: st.isFile() ? st.size : 0, modTime, ...(linkname === undefined ? {} : { linkname }) };
}
