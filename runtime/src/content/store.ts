import { createReadStream, type ReadStream } from 'node:fs';
import { appendFile, mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Digester, digestHex, isDigest, type Digest } from './digest.js';
import { ImageStoreError } from './errors.js';
import { processAlive } from '../api/process-alive.js';

/** What the store knows about one blob. */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** Bytes to ingest: a Node Readable, a web ReadableStream, any async iterable of chunks, or a buffer. */
export type ByteSource = AsyncIterable<Uint8Array> | Uint8Array;

/** Options for {@link ContentStore.ingest}. */
export interface IngestOptions {
  /** The digest the bytes must have; a mismatch fails the ingest and nothing is stored. */
  readonly expected?: Digest | undefined;
  /** The size the bytes must have. */
  readonly expectedSize?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** Disk usage of the blob store. */
export interface ContentUsage {
  readonly blobs: number;
  readonly bytes: number;
}

const TMP_SUFFIX = '.tmp';
const WRITE_COALESCE = 1 << 20;

/**
 * A content-addressed blob store under `<root>/content/blobs/sha256/<hex>`.
 *
 * Contract: a file under `blobs/` is only ever created by renaming a fully written, fsynced temp
 * file whose sha256 was verified while streaming. Temp files live in `<root>/content/ingest/` and
 * are named `<pid>-<random>.tmp`; they are never read as blobs, and {@link cleanupIngest} removes
 * those whose writer process is gone. Concurrent writers of the same blob each write their own
 * temp file; the renames are atomic and the bytes identical, so readers always see a whole blob.
 */
export class ContentStore {
  /** `<root>/content` */
  readonly dir: string;
  private readonly blobDir: string;
  private readonly ingestDir: string;
  private readonly sourceDir: string;

  private constructor(root: string) {
    this.dir = join(root, 'content');
    this.blobDir = join(this.dir, 'blobs', 'sha256');
    this.ingestDir = join(this.dir, 'ingest');
    this.sourceDir = join(this.dir, 'sources', 'sha256');
  }

  /** Opens (creating if needed) the store under the kiln root and removes temp files of dead writers. */
  static async open(root: string): Promise<ContentStore> {
    const s = new ContentStore(root);
    await mkdir(s.blobDir, { recursive: true });
    await mkdir(s.ingestDir, { recursive: true });
    await s.cleanupIngest();
    return s;
  }

  /** Absolute path of a blob (it may not exist). Readers must treat the file as immutable. */
  blobPath(digest: Digest): string {
    return join(this.blobDir, digestHex(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      return (await stat(this.blobPath(digest))).isFile();
    } catch {
      return false;
    }
  }

  /** Size of a stored blob; throws `BLOB_NOT_FOUND`. */
  async info(digest: Digest): Promise<BlobInfo> {
    try {
      const st = await stat(this.blobPath(digest));
      return { digest, size: st.size };
    } catch (e) {
      throw notFound(digest, e);
    }
  }

  /** Streams a blob (optionally a byte range, `end` inclusive). Throws `BLOB_NOT_FOUND` if absent. */
  async readStream(digest: Digest, range: { start?: number; end?: number; highWaterMark?: number } = {}): Promise<ReadStream> {
    await this.info(digest);
    return createReadStream(this.blobPath(digest), range);
  }

  /** Reads a whole blob into memory: for manifests and configs, not layers. */
  async readBlob(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (e) {
      throw notFound(digest, e);
    }
  }

  /** Stores a buffer; returns its digest. Verifies `expected` when given. */
  async writeBlob(data: Uint8Array, expected?: Digest): Promise<BlobInfo> {
    return this.ingest(data, { expected, expectedSize: undefined });
  }

  /**
   * Streams bytes into the store, hashing as they are written. If `expected` is already present the
   * source is not read. Throws `DIGEST_MISMATCH` / `SIZE_MISMATCH` and stores nothing on a mismatch.
   */
  async ingest(source: ByteSource, opts: IngestOptions = {}): Promise<BlobInfo> {
    if (opts.expected !== undefined && (await this.has(opts.expected))) {
      await closeSource(source);
      return this.info(opts.expected);
    }
    const w = await this.openWriter();
    try {
      if (source instanceof Uint8Array) {
        await w.write(source);
      } else {
        for await (const chunk of source) {
          opts.signal?.throwIfAborted();
          await w.write(chunk);
        }
      }
      return await w.commit(opts.expected, opts.expectedSize);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /**
   * Opens a writer for a blob whose digest is known only at the end (layer diffs, compression).
   * Call `commit()` or `abort()` exactly once.
   */
  async openWriter(): Promise<BlobWriter> {
    const tmp = join(this.ingestDir, `${process.pid}-${randomBytes(8).toString('hex')}${TMP_SUFFIX}`);
    const fh = await open(tmp, 'wx', 0o644);
    return new BlobWriter(this, fh, tmp);
  }

  /** @internal moves a verified temp file into place. */
  async _commit(tmp: string, digest: Digest): Promise<void> {
    await rename(tmp, this.blobPath(digest));
  }

  /** Removes a blob (and its {@link sourcesOf} record); returns false if it was not there. Callers own reference tracking. */
  async delete(digest: Digest): Promise<boolean> {
    await rm(join(this.sourceDir, digestHex(digest)), { force: true });
    try {
      await rm(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Registry repositories (`host/path`) known to hold the blob: where it was pulled from or
   * pushed to. A push to another repository of the same registry mounts it from one of them
   * instead of uploading it, as containerd's `distribution.source` labels let BuildKit do.
   */
  async sourcesOf(digest: Digest): Promise<string[]> {
    const text = await readFile(join(this.sourceDir, digestHex(digest)), 'utf8').catch(() => '');
    return [...new Set(text.split('\n').filter((l) => l !== ''))];
  }

  /** Records that repository `source` (`host/path`) holds the blob (see {@link sourcesOf}). */
  async addSource(digest: Digest, source: string): Promise<void> {
    if (source.includes('\n') || (await this.sourcesOf(digest)).includes(source)) return;
    // One short O_APPEND write: concurrent recorders each add a whole line.
    await appendFile(join(this.sourceDir, digestHex(digest)), `${source}\n`).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
      await mkdir(this.sourceDir, { recursive: true });
      await appendFile(join(this.sourceDir, digestHex(digest)), `${source}\n`);
    });
  }

  /** Lists every stored blob (temp files excluded). */
  async *walk(): AsyncIterable<BlobInfo> {
    for (const name of (await readdir(this.blobDir)).sort()) {
      const d = `sha256:${name}`;
      if (!isDigest(d)) continue;
      try {
        const st = await stat(join(this.blobDir, name));
        if (st.isFile()) yield { digest: d, size: st.size };
      } catch {
        // deleted concurrently
      }
    }
  }

  /** Blob count and total bytes, for `kiln du`. */
  async usage(): Promise<ContentUsage> {
    let blobs = 0;
    let bytes = 0;
    for await (const b of this.walk()) {
      blobs++;
      bytes += b.size;
    }
    return { blobs, bytes };
  }

  /**
   * Deletes temp files left by writers that are gone (their pid no longer exists) or, with
   * `olderThanMs`, any temp file older than that. Returns how many were removed.
   */
  async cleanupIngest(opts: { olderThanMs?: number } = {}): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.ingestDir)) {
      const p = join(this.ingestDir, name);
      const pid = Number.parseInt(name.split('-')[0] ?? '', 10);
      let stale = !Number.isInteger(pid) || (pid !== process.pid && !processAlive(pid));
      if (!stale && opts.olderThanMs !== undefined) {
        try {
          stale = Date.now() - (await stat(p)).mtimeMs > opts.olderThanMs;
        } catch {
          continue;
        }
      }
      if (stale) {
        await rm(p, { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }
}

/** A blob being written; see {@link ContentStore.openWriter}. */
export class BlobWriter {
  private readonly digester = new Digester();
  private done = false;
  /**
   * Small chunks are copied into this one buffer (made on first use, reused for the writer's
   * life) and written 1 MiB at a time. Per-chunk copies plus a concat per write allocated 2 bytes
   * of fresh memory per byte stored: for a 200 MB layer of 64 KiB gzip pieces that was ~400 MB of
   * page-faulting allocations, and about twice as slow in a long-lived `kiln daemon` as in a fresh
   * process.
   */
  private pending: Buffer | undefined;
  private pendingSize = 0;

  /** @internal */
  constructor(
    private readonly store: ContentStore,
    private readonly fh: FileHandle,
    private readonly tmp: string,
  ) {}

  /** Bytes written so far. */
  get size(): number {
    return this.digester.size;
  }

  /** The sha256 of the bytes written so far (the digest `commit()` will store the blob under). */
  digest(): Digest {
    return this.digester.peek();
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.digester.update(chunk);
    if (chunk.length >= WRITE_COALESCE) {
      await this.flush();
      await this.writeAll(chunk);
      return;
    }
    // Coalesce small chunks into ~1 MiB writes (fewer syscalls). Copied: callers may reuse buffers.
    let off = 0;
    while (off < chunk.length) {
      const buf = (this.pending ??= Buffer.allocUnsafe(WRITE_COALESCE));
      const n = Math.min(chunk.length - off, WRITE_COALESCE - this.pendingSize);
      buf.set(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n), this.pendingSize);
      this.pendingSize += n;
      off += n;
      if (this.pendingSize === WRITE_COALESCE) await this.flush();
    }
  }

  private async writeAll(buf: Uint8Array): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
  }

  /** Writes the coalesced bytes; the buffer is free again when this resolves. */
  private async flush(): Promise<void> {
    if (this.pendingSize === 0 || this.pending === undefined) return;
    const n = this.pendingSize;
    this.pendingSize = 0;
    await this.writeAll(this.pending.subarray(0, n));
  }

  /** fsyncs, verifies and renames into place. Throws `DIGEST_MISMATCH`/`SIZE_MISMATCH` (and removes the temp file). */
  async commit(expected?: Digest, expectedSize?: number): Promise<BlobInfo> {
    if (this.done) throw new Error('BlobWriter already finished');
    this.done = true;
    const digest = this.digester.digest();
    const size = this.digester.size;
    try {
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new ImageStoreError('SIZE_MISMATCH', `blob ${expected ?? digest}: expected ${expectedSize} bytes, got ${size}`);
      }
      if (expected !== undefined && digest !== expected) {
        throw new ImageStoreError('DIGEST_MISMATCH', `digest mismatch: expected ${expected}, got ${digest}`, {
          hint: 'the source served different bytes than its digest promises',
        });
      }
      await this.flush();
      await this.fh.sync();
      await this.fh.close();
      await this.store._commit(this.tmp, digest);
      return { digest, size };
    } catch (e) {
      await this.fh.close().catch(() => undefined);
      await rm(this.tmp, { force: true });
      throw e;
    }
  }

  /** Discards the temp file. Safe to call after a failed commit. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}


function notFound(digest: Digest, cause: unknown): ImageStoreError {
  return new ImageStoreError('BLOB_NOT_FOUND', `blob ${digest} not found in the content store`, { cause });
}

async function closeSource(source: ByteSource): Promise<void> {
  if (source instanceof Uint8Array) return;
  const maybe = source as { destroy?: () => void; cancel?: () => Promise<void> };
  if (typeof maybe.destroy === 'function') maybe.destroy();
  else if (typeof maybe.cancel === 'function') await maybe.cancel().catch(() => undefined);
}
