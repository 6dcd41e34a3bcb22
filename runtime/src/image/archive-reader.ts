import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type Header } from 'tar-stream';
import { isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { decompress } from '../layer/compression.js';
import { MAX_MANIFEST_SIZE } from './oci-layout-reader.js';

/** A blob an archive entry became: its digest and size in the content store. */
export interface ArchiveBlob {
  readonly digest: Digest;
  readonly size: number;
}

/**
 * What {@link readImageArchive} found: every file entry is in the content store by now (mapped
 * from its path), links are kept as paths, and the small metadata files are in memory. Nothing is
 * named yet: the caller decides from `index.json` / `manifest.json` once the whole stream is in.
 */
export interface ArchiveContents {
  /** Entry path (normalised, no `./`) → the blob its bytes are. */
  readonly blobs: ReadonlyMap<string, ArchiveBlob>;
  /** Symlink or hard link path → the path it names (resolved against the archive root). */
  readonly links: ReadonlyMap<string, string>;
  /** `index.json` (an OCI layout's, also in Docker 25+ and kiln's docker archives). */
  readonly index?: Buffer | undefined;
  /** `manifest.json` (`docker save`'s). */
  readonly dockerManifest?: Buffer | undefined;
  /** The archive had an `oci-layout` file. */
  readonly ociLayout: boolean;
  /** How the input was compressed. */
  readonly compression: 'none' | 'gzip' | 'zstd';
}

/** Options for {@link readImageArchive}. */
export interface ReadImageArchiveOptions {
  readonly signal?: AbortSignal | undefined;
  /** How messages name the input (`-i FILE`'s path, or `standard input`). */
  readonly name?: string | undefined;
}

const DAMAGED = 'the archive is damaged: save or copy it again (docker save, skopeo copy, kiln save)';
/** Metadata files read into memory (each at most {@link MAX_MANIFEST_SIZE}). */
const METADATA = new Set(['index.json', 'manifest.json', 'oci-layout']);
/** Legacy `docker save` files kiln has no use for (v1 image JSON, layer format version, repositories). */
const IGNORED = /^(?:repositories|[^/]+\/(?:json|VERSION))$/;
/** Entry names that are digests: `blobs/sha256/<hex>` (OCI), `<hex>.json` / `<hex>.tar` (docker save, skopeo). */
const DIGEST_NAME = /^(?:blobs\/sha256\/([a-f0-9]{64})|([a-f0-9]{64})\.(?:json|tar))$/;

/**
 * Streams an image archive (a tar, plain, gzip or zstd) into the content store, entry by entry as
 * it comes: never the whole archive in memory nor a copy of it on disk. A file whose name is a
 * digest is checked against it (DIGEST_MISMATCH naming the entry); any other file (`<id>/layer.tar`
 * of a legacy `docker save`) is stored under the sha256 computed while it streams. The metadata
 * files may come anywhere, last included (`docker save` writes `manifest.json` at the end). On
 * failure the blobs already stored stay, unreferenced, for the content GC (`kiln prune`).
 * LAYOUT_INVALID for input that is not a tar or is cut short, naming the entry.
 */
export async function readImageArchive(source: AsyncIterable<Uint8Array>, store: ContentStore, opts: ReadImageArchiveOptions = {}): Promise<ArchiveContents> {
  const what = opts.name ?? 'the archive';
  const blobs = new Map<string, ArchiveBlob>();
  const links = new Map<string, string>();
  const meta = new Map<string, Buffer>();
  let current: string | undefined;
  let last: string | undefined;
  let head: Buffer | undefined;
  // The first bytes: none is an empty input; bzip2's and xz's magic get their own message.
  const sniffing = (async function* () {
    for await (const c of source) {
      if (head === undefined) head = Buffer.from(c.subarray(0, 8));
      yield c;
    }
  })();
  const { compression, stream } = await decompress(sniffing, opts.signal).catch((e: unknown) => {
    throw readError(e, what, undefined, undefined);
  });
  const extract = tarExtract();
  const done = pipeline(stream, extract);
  done.catch(() => undefined);
  try {
    if (head !== undefined && compression === 'none') refuseOtherCompression(head, what);
    for await (const entry of extract) {
      opts.signal?.throwIfAborted();
      const h: Header = entry.header;
      const body = entry as unknown as AsyncIterable<Uint8Array>;
      const path = entryPath(h.name);
      current = path;
      if (h.type === 'symlink' || h.type === 'link') {
        const target = h.linkname ?? '';
        links.set(path, h.type === 'symlink' ? posix.normalize(posix.join(posix.dirname(path), target)) : entryPath(target));
      } else if (h.type === 'file' || h.type === 'contiguous-file') {
        if (METADATA.has(path)) meta.set(path, await readSmall(body, path, what));
        else if (!IGNORED.test(path)) blobs.set(path, await ingestEntry(store, body, path, h.size ?? 0, what, opts.signal));
      }
      entry.resume(); // what was not read (directories, ignored files)
      last = path;
      current = undefined;
    }
    await done;
  } catch (e) {
    extract.destroy();
    // An entry cut short fails its reader with a bare "Stream was destroyed"; the extractor's own
    // error says why (unexpected end of data, a bad header, the gzip stream's).
    const why = await done.then(() => e, (pe: unknown) => (e instanceof Error && /destroyed|premature close/i.test(e.message) ? pe : e));
    if (opts.signal?.aborted === true) throw opts.signal.reason;
    throw readError(why, what, current, last);
  }
  if (head === undefined) throw new ImageStoreError('LAYOUT_INVALID', `${what} is empty`, { hint: 'give a tarball from docker save, skopeo copy … docker-archive:|oci-archive:, or kiln save' });
  return {
    blobs,
    links,
    index: meta.get('index.json'),
    dockerManifest: meta.get('manifest.json'),
    ociLayout: meta.has('oci-layout'),
    compression,
  };
}

/** `./a//b` → `a/b`; entries never escape the archive root. */
export function entryPath(name: string): string {
  return posix.normalize(name).replace(/^(?:\.\/|\/)+/, '').replace(/\/$/, '');
}

/**
 * Stores one entry: a digest-named one under that digest (skipped, drained, when the store has it),
 * any other under the digest its bytes have.
 */
async function ingestEntry(store: ContentStore, body: AsyncIterable<Uint8Array>, path: string, size: number, what: string, signal: AbortSignal | undefined): Promise<ArchiveBlob> {
  const m = DIGEST_NAME.exec(path);
  const named = m === null ? undefined : `sha256:${m[1] ?? m[2] ?? ''}`;
  const expected = named !== undefined && isDigest(named) ? named : undefined;
  if (expected !== undefined && (await store.has(expected))) {
    // A stored blob is verified already: this entry's bytes are not read, only its size compared.
    const info = await store.info(expected);
    if (info.size !== size) throw new ImageStoreError('DIGEST_MISMATCH', `${what}: entry ${path} has ${size} bytes, but the blob of its digest has ${info.size}`, { hint: DAMAGED });
    // Drained here, so that an archive cut short inside it is reported as such.
    for await (const _ of body) signal?.throwIfAborted();
    return info;
  }
  try {
    return await store.ingest(body, { expected, expectedSize: size, signal });
  } catch (e) {
    if (e instanceof ImageStoreError && e.code === 'DIGEST_MISMATCH') {
      throw new ImageStoreError('DIGEST_MISMATCH', `${what}: entry ${path}: its content does not have the digest its name says (${e.message})`, { hint: DAMAGED, cause: e });
    }
    throw e;
  }
}

async function readSmall(body: AsyncIterable<Uint8Array>, path: string, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > MAX_MANIFEST_SIZE) throw new ImageStoreError('LAYOUT_INVALID', `${what}: ${path} is larger than ${MAX_MANIFEST_SIZE} bytes`, { hint: DAMAGED });
    chunks.push(Buffer.from(c));
  }
  return Buffer.concat(chunks);
}

/** bzip2 and xz, which `docker load` takes too, are named rather than failing as "not a tar". */
function refuseOtherCompression(head: Buffer, what: string): void {
  const hex = head.subarray(0, 6).toString('hex');
  const kind = hex.startsWith('425a68') ? 'bzip2' : hex === 'fd377a585a00' ? 'xz' : undefined;
  if (kind === undefined) return;
  const tool = kind === 'xz' ? 'xz' : 'bzip2';
  throw new ImageStoreError('LAYOUT_INVALID', `${what} is ${kind}-compressed; kiln load reads plain, gzip and zstd tarballs`, { hint: `decompress it on the way in: ${tool} -dc FILE | kiln load` });
}

/** An extraction failure as LAYOUT_INVALID naming where in the archive it happened. */
function readError(e: unknown, what: string, current: string | undefined, last: string | undefined): unknown {
  if (e instanceof ImageStoreError && e.code !== 'SIZE_MISMATCH') return e;
  const msg = e instanceof Error ? e.message : String(e);
  const where = current !== undefined ? ` in entry ${current}` : last !== undefined ? ` after entry ${last}` : '';
  if (/unexpected end of (?:data|file)/i.test(msg) || (e instanceof ImageStoreError && e.code === 'SIZE_MISMATCH')) {
    return new ImageStoreError('LAYOUT_INVALID', `${what} is truncated: it ends${where === '' ? ' before the first entry' : where}`, { hint: 'the archive was cut short (an interrupted download or copy): save or copy it again', cause: e });
  }
  if (/invalid tar header/i.test(msg) && current === undefined && last === undefined) {
    return new ImageStoreError('LAYOUT_INVALID', `${what} is not a tar archive`, { hint: 'give a tarball from docker save, skopeo copy … docker-archive:|oci-archive:, or kiln save (plain, gzip or zstd)', cause: e });
  }
  return new ImageStoreError('LAYOUT_INVALID', `${what} cannot be read${where}: ${msg}`, { hint: DAMAGED, cause: e });
}
