import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { extract, type Header } from 'tar-stream';
import { WorkerError, throwIfAborted } from '../api/errors.js';
import type { LayerCompression } from '../api/layer.js';
import { decompress } from './compression.js';
import { cleanRelative, resolveInRoot } from './root-path.js';

const execFileP = promisify(execFile);

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
/** Files up to this size are buffered and written with one call, larger ones are streamed. */
const SMALL_FILE = 1 << 20;

/** Options for {@link applyLayer}. */
export interface ApplyLayerOptions {
  readonly signal?: AbortSignal;
  /**
   * Whether whiteouts may delete what is in `dir` already. `true` (default) applies the layer on
   * top of existing content (a merged overlay view or a copied parent); OCI whiteouts become deletions.
   */
  readonly whiteouts?: boolean;
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
  readonly mtime: Date;
}

/**
 * Streams an OCI layer (tar, gzip or zstd, sniffed) into `dir`, which holds the layers below it.
 * OCI whiteouts (`.wh.name`) delete `name`, an opaque marker (`.wh..wh..opq`) empties its directory
 * of what lower layers put there. Modes (incl. setuid), owners (when root), mtimes, symlinks,
 * hardlinks, fifos and devices are kept; xattrs are not applied. Every path is resolved inside
 * `dir`: `..` or a symlink cannot place a file outside it (`PATH_ESCAPE`). Not atomic: on failure
 * `dir` holds a partial layer and should be discarded by the caller.
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
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const ex = extract();
  const piping = pipeline(stream, tee, ex, ...(signal ? [{ signal }] : [])).catch((e: unknown) => {
    ex.destroy(e instanceof Error ? e : new Error(String(e)));
  });
  const isRoot = process.getuid?.() === 0;
  const created = new Set<string>();
  const dirTimes: DirTime[] = [];
  const verified = new Set<string>();
  let entries = 0;

  /** Host path of the parent directory of `rel`, created if missing, resolved inside `dir`. */
  // Metadata calls are synchronous: each is a few µs, where a promise call costs a thread-pool
  // round trip; the loop still yields to the event loop at every entry of the tar stream.
  function parentOf(rel: string): string {
    const parent = posix.dirname(rel);
    if (parent === '.' || parent === '') return dir;
    if (verified.has(parent)) return posix.join(dir, parent);
    const host = resolveInRoot(dir, parent);
    mkdirSync(host, { recursive: true, mode: 0o755 });
    if (host === posix.join(dir, parent)) verified.add(parent);
    return host;
  }

  function forget(rel: string): void {
    if (!verified.has(rel)) return;
    for (const v of [...verified]) if (v === rel || v.startsWith(`${rel}/`)) verified.delete(v);
  }

  function removeExisting(target: string, rel: string, keepDir: boolean): boolean {
    let st;
    try {
      st = lstatSync(target);
    } catch {
      return false;
    }
    if (keepDir && st.isDirectory()) return true;
    forget(rel);
    rmSync(target, { recursive: true, force: true });
    return false;
  }

  function setMeta(target: string, h: Header, isLink: boolean): void {
    if (isRoot) lchownSync(target, h.uid ?? 0, h.gid ?? 0);
    if (!isLink) chmodSync(target, (h.mode ?? 0o644) & 0o7777);
    const mtime = h.mtime ?? new Date(0);
    if (isLink) lutimesSync(target, mtime, mtime);
    else utimesSync(target, mtime, mtime);
  }

  try {
    for await (const entry of ex) {
      throwIfAborted(signal);
      const h = entry.header;
      entries += 1;
      const rel = cleanRelative(h.name);
      const base = posix.basename(rel);
      if (rel === '') {
        // The root directory itself: keep it, but take its metadata.
        if (h.type === 'directory') dirTimes.push({ path: dir, mtime: h.mtime ?? new Date(0) });
        entry.resume();
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        entry.resume();
        const parentRel = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
        const parentHost = parentOf(rel);
        if (opts.whiteouts === false) continue;
        if (base === OPAQUE) {
          for (const name of readdirSync(parentHost)) {
            const childRel = parentRel === '' ? name : `${parentRel}/${name}`;
            if (created.has(childRel)) continue;
            forget(childRel);
            rmSync(posix.join(parentHost, name), { recursive: true, force: true });
          }
        } else {
          const name = base.slice(WHITEOUT_PREFIX.length);
          const childRel = parentRel === '' ? name : `${parentRel}/${name}`;
          if (name === '' || name === '.' || name === '..') throw new WorkerError('LAYER_INVALID', `bad whiteout ${h.name}`);
          if (!created.has(childRel)) {
            forget(childRel);
            rmSync(posix.join(parentHost, name), { recursive: true, force: true });
          }
        }
        continue;
      }
      const parentHost = parentOf(rel);
      const target = posix.join(parentHost, base);
      created.add(rel);
      switch (h.type) {
        case 'directory': {
          const exists = removeExisting(target, rel, true);
          if (!exists) mkdirSync(target, { mode: 0o755 });
          if (isRoot) lchownSync(target, h.uid ?? 0, h.gid ?? 0);
          chmodSync(target, (h.mode ?? 0o755) & 0o7777);
          dirTimes.push({ path: target, mtime: h.mtime ?? new Date(0) });
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          removeExisting(target, rel, false);
          const len = h.size ?? 0;
          if (len <= SMALL_FILE) {
            const chunks: Buffer[] = [];
            for await (const c of entry) chunks.push(c as Buffer);
            writeFileSync(target, Buffer.concat(chunks), { mode: 0o600 });
          } else {
            await pipeline(entry, createWriteStream(target, { mode: 0o600 }));
          }
          setMeta(target, h, false);
          break;
        }
        case 'symlink': {
          entry.resume();
          removeExisting(target, rel, false);
          symlinkSync(h.linkname ?? '', target);
          setMeta(target, h, true);
          break;
        }
        case 'link': {
          entry.resume();
          const linkRel = cleanRelative(h.linkname ?? '');
          const source = resolveInRoot(dir, linkRel, false);
          removeExisting(target, rel, false);
          try {
            linkSync(source, target);
          } catch (e) {
            throw new WorkerError('LAYER_INVALID', `hardlink ${h.name} -> ${h.linkname ?? ''}: target missing`, { cause: e });
          }
          break;
        }
        case 'fifo':
        case 'character-device':
        case 'block-device': {
          entry.resume();
          removeExisting(target, rel, false);
          // Node has no mknod(2); these entries are rare in layers, the binary is fine.
          const args =
            h.type === 'fifo'
              ? [target, 'p']
              : [target, h.type === 'block-device' ? 'b' : 'c', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
          await execFileP('mknod', args);
          setMeta(target, h, false);
          break;
        }
        default:
          // pax/gnu headers are consumed by tar-stream; anything else (sockets, unknown) is skipped.
          entry.resume();
      }
    }
  } finally {
    await piping;
  }
  throwIfAborted(signal);
  // Directory mtimes last, children before parents, since writing into a directory bumps its mtime.
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    const d = dirTimes[i] as DirTime;
    try {
      utimesSync(d.path, d.mtime, d.mtime);
    } catch {
      // gone (a later whiteout removed it)
    }
  }
  return { diffID: `sha256:${hash.digest('hex')}`, compression, size, entries };
}
