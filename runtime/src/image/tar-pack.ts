import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { Digester, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import type { Header } from 'tar-stream';
import { encodeXattrs } from '../layer/xattr-pack.js';

/** Read size of file bodies. */
const READ_CHUNK = 1 << 20;

/** A tar header to write (`name` required, the rest defaulted by tar-stream). */
export type TarHeader = Partial<Header> & { name: string };

/** One entry to pack: a header and, for regular files, the bytes or a file path to stream from. */
export interface PackEntry {
  readonly header: TarHeader;
  readonly data?: Uint8Array | undefined;
  readonly file?: string | undefined;
  /** Extended attributes, written as PAX `SCHILY.xattr.<name>` records (raw bytes, name order). */
  readonly xattrs?: ReadonlyMap<string, Buffer> | undefined;
  /** The digest `file`'s bytes must have; the archive fails with `DIGEST_MISMATCH` otherwise. */
  readonly digest?: Digest | undefined;
}

/** A pass-through that hashes what flows and fails at the end if it is not `expected`. */
export function verifyingTransform(expected: Digest, what: string): Transform {
  const d = new Digester();
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      d.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = d.digest();
      cb(got === expected ? null : new ImageStoreError('DIGEST_MISMATCH', `${what}: content has digest ${got}, expected ${expected}`));
    },
  });
}

/**
 * Packs entries into a tar stream, one at a time (file bodies are streamed, never buffered whole).
 * The returned Readable errors if an entry fails.
 */
export function packTar(entries: AsyncIterable<PackEntry> | Iterable<PackEntry>): Readable {
  return Readable.from(packTarRaw(entries));
}


function packTarRaw(entries: AsyncIterable<PackEntry> | Iterable<PackEntry>): AsyncIterable<Uint8Array> {
  const pack = tarPack();
  // Also writes owners above tar-stream's 6 octal digits as PAX records.
  const paxOf = encodeXattrs(pack);
  void (async () => {
    try {
      for await (const e of entries) {
        if (e.xattrs !== undefined && e.xattrs.size > 0) paxOf.set(e.header, e.xattrs);
        if (e.file !== undefined) {
          await new Promise<void>((resolve, reject) => {
            const w = pack.entry(e.header, (err) => (err ? reject(err) : resolve()));
            // 1 MiB reads: a 200 MB layer blob copied into an OCI tarball took 560 ms in 64 KiB
            // pieces and 350 ms in 1 MiB ones (this machine, page cache warm).
            const src = createReadStream(e.file as string, { highWaterMark: READ_CHUNK });
            (e.digest !== undefined ? pipeline(src, verifyingTransform(e.digest, e.header.name), w) : pipeline(src, w)).catch(reject);
          });
        } else {
          await new Promise<void>((resolve, reject) => {
            pack.entry(e.header, Buffer.from(e.data ?? new Uint8Array()), (err) => (err ? reject(err) : resolve()));
          });
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  })();
  return pack as unknown as AsyncIterable<Uint8Array>;
}

/**
 * Passes `src` through, throwing the signal's reason (an `AbortError`) at the next chunk once it
 * is aborted, so a writer fed from it stops and cleans up (writeFileAtomic removes its temp file).
 */
export async function* abortable(src: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncIterable<Uint8Array> {
  if (signal === undefined) {
    yield* src;
    return;
  }
  for await (const c of src) {
    signal.throwIfAborted();
    yield c;
  }
}

/** Reads every entry of a tar stream, calling `onEntry` (which must consume or ignore the body). */
export async function readTar(
  source: AsyncIterable<Uint8Array>,
  onEntry: (header: Header, body: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  const extract = tarExtract();
  const done = pipeline(Readable.from(source), extract);
  try {
    for await (const entry of extract) {
      await onEntry(entry.header, entry as unknown as AsyncIterable<Uint8Array>);
      entry.resume(); // drain what onEntry did not read
    }
  } catch (e) {
    extract.destroy();
    await done.catch(() => undefined);
    throw e;
  }
  await done;
}
