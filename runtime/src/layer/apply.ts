import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  opendirSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import { WorkerError, throwIfAborted } from '../api/errors.js';
import type { LayerCompression } from '../api/layer.js';
import { decompress } from './compression.js';
import { cleanRelative, resolveInRoot } from './root-path.js';
import { TarReader, type TarEntryHeader, type TarSink } from './tar-reader.js';
import { setfattrArgs, setfattrEnv, xattrRefusal } from '../fileop/xattrs.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** Options for {@link applyLayer}. */
export interface ApplyLayerOptions {
  readonly signal?: AbortSignal;
  /**
   * Whether whiteouts may delete what is in `dir` already. `true` (default) applies the layer on
   * top of existing content (a merged overlay view or a copied parent); OCI whiteouts become deletions.
   */
  readonly whiteouts?: boolean;
  /**
   * Whether entries keep their owners (default true, when root). false: every node belongs to this
   * process, for an archive whose owners are not used (a build context: kiln sends it as root's,
   * as buildx resets them), so ids a rootless namespace lacks do not fail the unpack.
   */
  readonly owners?: boolean;
}

/** What {@link applyLayer} read. */
export interface ApplyLayerResult {
  /** sha256 of the uncompressed tar, `sha256:<hex>`: compare with the image config's diff_ids. */
  readonly diffID: string;
  readonly compression: LayerCompression;
  /** Uncompressed size in bytes. */
  readonly size: number;
  readonly entries: number;
}

interface DirTime {
  readonly path: string;
  /** Root-relative (`''` the root). */
  readonly rel: string;
  /** Seconds since the epoch. */
  readonly mtime: number;
}

/**
 * Streams an OCI layer (tar, gzip or zstd, sniffed) into `dir`, which holds the layers below it.
 * OCI whiteouts (`.wh.name`) delete `name`, an opaque marker (`.wh..wh..opq`) empties its directory
 * of what lower layers put there. Modes (incl. setuid), owners (when root), mtimes, symlinks,
 * hardlinks, fifos and devices are kept, and so are extended attributes from PAX `SCHILY.xattr.*`
 * records (file capabilities: `security.capability`), except those the filesystem refuses
 * (ENOTSUP, EPERM), which containerd's applier skips too. GNU sparse files (PAX 0.0/0.1/1.0) are
 * written with their holes left unwritten. Every path is resolved inside
 * `dir`: `..` or a symlink cannot place a file outside it (`PATH_ESCAPE`). Not atomic: on failure
 * `dir` holds a partial layer and should be discarded by the caller.
 *
 * The tar is parsed chunk by chunk (`TarReader`) and every entry a chunk completes is applied
 * with synchronous metadata calls before the next chunk is read: a layer of a few hundred small
 * entries (a busybox base: 270 symlinks) cost a promise, a stream and a thread-pool-free but
 * exception-throwing lstat per entry before (97 ms cold for busybox; see the commit message).
 */
export async function applyLayer(
  dir: string,
  input: AsyncIterable<Uint8Array>,
  opts: ApplyLayerOptions = {},
): Promise<ApplyLayerResult> {
  const { signal } = opts;
  throwIfAborted(signal);
  const { compression, stream } = await decompress(input, signal);
  const hash = createHash('sha256');
  let size = 0;
  const applier = new LayerApplier(dir, opts.whiteouts !== false, opts.owners !== false);
  const reader = new TarReader(applier);
  try {
    for await (const chunk of stream) {
      throwIfAborted(signal);
      const b = chunk as Buffer;
      hash.update(b);
      size += b.length;
      reader.push(b);
    }
    reader.finish();
    throwIfAborted(signal);
  } finally {
    applier.close();
    stream.destroy();
  }
  applier.finishDirectories();
  return { diffID: `sha256:${hash.digest('hex')}`, compression, size, entries: reader.entries };
}

/** Applies tar entries to a directory as {@link TarReader} hands them over (all synchronous). */
class LayerApplier implements TarSink {
  readonly #dir: string;
  readonly #whiteouts: boolean;
  /** Whether entries get their owners: root, and owners asked for. */
  readonly #isRoot: boolean;
  /** Owner a new node gets without a chown (this process's effective ids). */
  readonly #uid = process.geteuid?.() ?? -1;
  readonly #gid = process.getegid?.() ?? -1;
  /** Paths (relative) this layer created: same-layer whiteouts do not delete them. */
  readonly #created = new Set<string>();
  /** Parent directories (relative) known to be real directories at their plain path. */
  readonly #verified = new Set<string>();
  /** Whether a host directory is set-gid (new nodes then take its group): looked up once each. */
  readonly #setgid = new Map<string, boolean>();
  readonly #dirTimes: DirTime[] = [];
  /**
   * Host paths removed during the apply: a directory in #dirTimes at or below one of them may be
   * a symlink (or reached through one) by now.
   */
  readonly #removed = new Set<string>();
  /**
   * The root was empty when the layer started (a base layer): nothing exists that this layer did
   * not create or whose parent directories it did not make, so no lstat is needed to find out.
   */
  #empty: boolean;
  /** The open regular file receiving data, with its header. */
  #file:
    | {
        readonly fd: number;
        readonly header: TarEntryHeader;
        readonly parent: string;
        readonly target: string;
        /** Where the next data goes (holes of sparse files move it without writing). */
        pos: number;
        /** Whether the file ends in a hole, which only a truncate can make. */
        holeAtEnd: boolean;
      }
    | undefined;

  constructor(dir: string, whiteouts: boolean, owners: boolean) {
    // Host paths are built by concatenation (path.join's normalisation showed in profiles).
    this.#dir = posix.normalize(dir).replace(/(.)\/+$/, '$1');
    this.#whiteouts = whiteouts;
    this.#isRoot = owners && process.getuid?.() === 0;
    const d = opendirSync(this.#dir);
    try {
      this.#empty = d.readSync() === null;
    } finally {
      d.closeSync();
    }
  }

  entry(h: TarEntryHeader): void {
    const rel = cleanRelative(h.name);
    const base = posix.basename(rel);
    if (rel === '') {
      // The root directory itself: keep it, but take its mtime.
      if (h.type === 'directory') this.#dirTimes.push({ path: this.#dir, rel: '', mtime: h.mtime });
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.#whiteout(rel, base);
      return;
    }
    const parentHost = this.#parentOf(rel);
    const target = posix.join(parentHost, base);
    const seen = this.#created.has(rel);
    this.#created.add(rel);
    switch (h.type) {
      case 'directory': {
        const exists = this.#removeExisting(target, rel, true, seen);
        if (!exists) mkdirSync(target, { mode: 0o755 });
        this.#chown(target, h, !exists, parentHost);
        const mode = h.mode & 0o7777;
        chmodSync(target, mode);
        this.#setgid.set(target, (mode & 0o2000) !== 0);
        this.#dirTimes.push({ path: target, rel, mtime: h.mtime });
        setXattrs(target, h);
        break;
      }
      case 'file': {
        this.#removeExisting(target, rel, false, seen);
        const fd = openSync(target, 'w', 0o600);
        this.#file = { fd, header: h, parent: parentHost, target, pos: 0, holeAtEnd: false };
        break;
      }
      case 'symlink': {
        this.#removeExisting(target, rel, false, seen);
        symlinkSync(h.linkname, target);
        this.#chown(target, h, true, parentHost);
        lutimesSync(target, h.mtime, h.mtime);
        setXattrs(target, h);
        break;
      }
      case 'link': {
        const linkRel = cleanRelative(h.linkname);
        // The target's parent directory was verified free of symlinks: no need to resolve it again.
        const linkParent = posix.dirname(linkRel);
        const source = linkParent !== '.' && this.#verified.has(linkParent) ? `${this.#dir}/${linkRel}` : resolveInRoot(this.#dir, linkRel, false);
        this.#removeExisting(target, rel, false, seen);
        try {
          linkSync(source, target);
        } catch (e) {
          throw new WorkerError('LAYER_INVALID', `hardlink ${h.name} -> ${h.linkname}: target missing`, { cause: e });
        }
        setXattrs(target, h);
        break;
      }
      case 'fifo':
      case 'character-device':
      case 'block-device': {
        this.#removeExisting(target, rel, false, seen);
        // Node has no mknod(2); these entries are rare in layers, the binary is fine.
        const args =
          h.type === 'fifo' ? [target, 'p'] : [target, h.type === 'block-device' ? 'b' : 'c', String(h.devmajor), String(h.devminor)];
        execFileSync('mknod', args, { stdio: 'ignore' });
        this.#chown(target, h, false, parentHost);
        chmodSync(target, h.mode & 0o7777);
        utimesSync(target, h.mtime, h.mtime);
        setXattrs(target, h);
        break;
      }
      default:
        // Sockets and unknown types are skipped (their data too).
        break;
    }
  }

  data(chunk: Buffer): void {
    const f = this.#file;
    if (f === undefined) return;
    let off = 0;
    while (off < chunk.length) {
      const n = writeSync(f.fd, chunk, off, chunk.length - off, f.pos);
      off += n;
      f.pos += n;
    }
    f.holeAtEnd = false;
  }

  /** A hole in a sparse file: left unwritten (it stays a hole on disk), sized at the end. */
  skip(n: number): void {
    const f = this.#file;
    if (f === undefined) return;
    f.pos += n;
    f.holeAtEnd = true;
  }

  end(): void {
    const f = this.#file;
    if (f === undefined) return;
    this.#file = undefined;
    try {
      const h = f.header;
      if (f.holeAtEnd) ftruncateSync(f.fd, f.pos);
      // chown before chmod: chown clears set-uid/set-gid bits.
      if (this.#isRoot && !this.#ownedAsCreated(h, f.parent)) {
        try {
          fchownSync(f.fd, h.uid, h.gid);
        } catch (e) {
          // fchown's error names no file: the one it was for (rootless kiln explains an unmapped owner)
          throw Object.assign(e as Error, { path: f.target });
        }
      }
      fchmodSync(f.fd, h.mode & 0o7777);
      futimesSync(f.fd, h.mtime, h.mtime);
    } finally {
      closeSync(f.fd);
    }
    // After chown and the data, which would clear security.capability again.
    setXattrs(f.target, f.header);
  }

  /** Closes a file left open by a failure. */
  close(): void {
    const f = this.#file;
    this.#file = undefined;
    if (f !== undefined) closeSync(f.fd);
  }

  /** Directory mtimes last, children before parents, since writing into a directory bumps its mtime. */
  finishDirectories(): void {
    for (let i = this.#dirTimes.length - 1; i >= 0; i--) {
      const d = this.#dirTimes[i] as DirTime;
      try {
        // A later entry may have replaced the directory, or one above it, with a symlink (to an
        // absolute host path): set times only on what is still a directory at its path in the root.
        if (this.#maybeReplaced(d.path) && (resolveInRoot(this.#dir, d.rel, false) !== d.path || !lstatSync(d.path).isDirectory())) continue;
        lutimesSync(d.path, d.mtime, d.mtime);
      } catch {
        // gone (a later whiteout removed it)
      }
    }
  }

  /** Whether host path `p` (under the root) is, or is below, a path removed during the apply. */
  #maybeReplaced(p: string): boolean {
    if (this.#removed.size === 0) return false;
    for (let q = p; q.length > this.#dir.length; q = q.slice(0, q.lastIndexOf('/'))) if (this.#removed.has(q)) return true;
    return false;
  }

  #whiteout(rel: string, base: string): void {
    const parentRel = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
    const parentHost = this.#parentOf(rel);
    if (!this.#whiteouts) return;
    if (base === OPAQUE) {
      for (const name of readdirSync(parentHost)) {
        const childRel = parentRel === '' ? name : `${parentRel}/${name}`;
        if (this.#created.has(childRel)) continue;
        this.#forget(childRel);
        this.#removed.add(posix.join(parentHost, name));
        rmSync(posix.join(parentHost, name), { recursive: true, force: true });
      }
      return;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    const childRel = parentRel === '' ? name : `${parentRel}/${name}`;
    if (name === '' || name === '.' || name === '..') throw new WorkerError('LAYER_INVALID', `bad whiteout ${rel}`);
    if (!this.#created.has(childRel)) {
      this.#forget(childRel);
      this.#removed.add(posix.join(parentHost, name));
      rmSync(posix.join(parentHost, name), { recursive: true, force: true });
    }
  }

  /** Host path of the parent directory of `rel`, created if missing, resolved inside the root. */
  #parentOf(rel: string): string {
    const parent = posix.dirname(rel);
    if (parent === '.' || parent === '') return this.#dir;
    if (this.#verified.has(parent)) return `${this.#dir}/${parent}`;
    const host = resolveInRoot(this.#dir, parent);
    mkdirSync(host, { recursive: true, mode: 0o755 });
    if (host === posix.join(this.#dir, parent)) {
      // mkdir made the missing ancestors too: mark them all, so that a later entry for one of
      // them (a layer listing children first) looks at what is there instead of assuming nothing.
      for (let p = parent; p !== '.' && !this.#verified.has(p); p = posix.dirname(p)) this.#verified.add(p);
    }
    // Reached through a symlink: directories were made where the bookkeeping of an empty root
    // does not see them, so look before creating from now on.
    else this.#empty = false;
    return host;
  }

  #forget(rel: string): void {
    if (!this.#verified.has(rel)) return;
    for (const v of [...this.#verified]) if (v === rel || v.startsWith(`${rel}/`)) this.#verified.delete(v);
  }

  /** Removes what is at `target` (a directory stays when `keepDir`); true when a directory was kept. */
  #removeExisting(target: string, rel: string, keepDir: boolean, seen: boolean): boolean {
    // Into an empty directory, only what this layer made can be there.
    if (this.#empty && !seen && !this.#verified.has(rel)) return false;
    // No exception for the usual "nothing there": throwing and catching one per entry was a
    // measurable part of applying a layer of small entries.
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (st === undefined) return false;
    if (keepDir && st.isDirectory()) return true;
    this.#forget(rel);
    this.#setgid.delete(target);
    this.#removed.add(target);
    rmSync(target, { recursive: true, force: true });
    return false;
  }

  /**
   * Whether a node this layer just created already has the header's owner: created by this
   * process (its effective uid/gid) in a directory that is not set-gid. Then the chown is skipped
   * (most layers are all 0:0 and kiln runs as root).
   */
  #ownedAsCreated(h: TarEntryHeader, parentHost: string): boolean {
    if (h.uid !== this.#uid || h.gid !== this.#gid) return false;
    let sgid = this.#setgid.get(parentHost);
    if (sgid === undefined) {
      sgid = (lstatSync(parentHost).mode & 0o2000) !== 0;
      this.#setgid.set(parentHost, sgid);
    }
    return !sgid;
  }

  #chown(target: string, h: TarEntryHeader, created: boolean, parentHost: string): void {
    if (!this.#isRoot) return;
    if (created && this.#ownedAsCreated(h, parentHost)) return;
    lchownSync(target, h.uid, h.gid);
  }
}

/**
 * Sets the entry's PAX xattrs on `target` (not following a symlink). Node has no setxattr(2): one
 * `setfattr` per attribute, and layers with xattrs are rare. As containerd's applier
 * (pkg/archive/tar.go createTarFile): an attribute the filesystem does not support (ENOTSUP) is
 * skipped, and so is EPERM for a `user.*` name on an entry that is neither a regular file nor a
 * directory (the kernel allows user.* only on those); any other failure, EPERM for `trusted.*` or
 * `security.*` included, fails the layer: it would be unpacked without what it asks for.
 */
function setXattrs(target: string, h: TarEntryHeader): void {
  if (h.xattrs === undefined) return;
  for (const [name, value] of h.xattrs) {
    const r = spawnSync('setfattr', setfattrArgs(name, value, target), { encoding: 'utf8', env: setfattrEnv() });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new WorkerError('PREREQUISITE_MISSING', `layer entry ${h.name} has extended attributes, and setting them needs setfattr`, { hint: 'apt-get install attr' });
    }
    if (r.status === 0) continue;
    const refusal = xattrRefusal(r.stderr);
    if (refusal === 'unsupported') continue;
    if (refusal === 'not-permitted' && name.startsWith('user.')) {
      const st = lstatSync(target, { throwIfNoEntry: false });
      if (st !== undefined && !st.isFile() && !st.isDirectory()) continue;
    }
    // setfattr prints "setfattr: <path>: <reason>"; the entry's name says which file.
    const last = r.stderr.trim().split('\n').pop() ?? '';
    const why = (last.includes(': ') ? last.slice(last.lastIndexOf(': ') + 2) : last) || r.error?.message || `exit ${String(r.status)}`;
    const message = `cannot set extended attribute ${name} on layer entry ${JSON.stringify(h.name)}: ${why}`;
    if (refusal !== 'not-permitted') throw new WorkerError('LAYER_INVALID', message);
    throw new WorkerError('LAYER_UNSUPPORTED', message, {
      hint: 'trusted.* needs CAP_SYS_ADMIN and security.* (file capabilities) CAP_SETFCAP in the unpacking process; containerd refuses such a layer too',
    });
  }
}
