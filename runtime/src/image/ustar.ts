import { createReadStream } from 'node:fs';
import { ImageStoreError } from '../content/errors.js';
import type { PackEntry } from './tar-pack.js';

const BLOCK = 512;
/** Python's tarfile RECORDSIZE: archives are padded to a multiple of 20 blocks. */
const RECORD = 20 * BLOCK;
const TYPEFLAG: Record<string, string> = { file: '0', link: '1', symlink: '2', 'character-device': '3', 'block-device': '4', directory: '5', fifo: '6' };

function octal(n: number, width: number): string {
  // `%0*o` with width-1 digits then NUL, as Python's tarfile itn() for USTAR.
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * Encodes a plain USTAR header exactly as Python's `tarfile` (USTAR_FORMAT) does: zero-padded
 * octal fields ending in NUL, checksum `%06o\0 `, magic `ustar\0` + `00`, empty device numbers
 * for non-device entries and no extended headers. Throws if a name does not fit USTAR.
 */
export function ustarHeader(h: PackEntry['header']): Buffer {
  const buf = Buffer.alloc(BLOCK);
  let name = h.name;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const i = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, i);
    name = name.slice(i + 1);
    if (i < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) {
      throw new ImageStoreError('EXPORT_FAILED', `path too long for USTAR: ${h.name}`);
    }
  }
  const type = h.type ?? 'file';
  const isDev = type === 'character-device' || type === 'block-device';
  buf.write(name, 0, 100, 'utf8');
  buf.write(octal((h.mode ?? (type === 'directory' ? 0o755 : 0o644)) & 0o7777, 8), 100, 'ascii');
  buf.write(octal(h.uid ?? 0, 8), 108, 'ascii');
  buf.write(octal(h.gid ?? 0, 8), 116, 'ascii');
  buf.write(octal(type === 'file' ? (h.size ?? 0) : 0, 12), 124, 'ascii');
  buf.write(octal(Math.floor((h.mtime?.getTime() ?? 0) / 1000), 12), 136, 'ascii');
  buf.write('        ', 148, 'ascii');
  buf.write(TYPEFLAG[type] ?? '0', 156, 'ascii');
  buf.write(h.linkname ?? '', 157, 100, 'utf8');
  buf.write('ustar\u000000', 257, 'binary');
  buf.write(h.uname ?? '', 265, 32, 'utf8');
  buf.write(h.gname ?? '', 297, 32, 'utf8');
  if (isDev) {
    buf.write(octal(h.devmajor ?? 0, 8), 329, 'ascii');
    buf.write(octal(h.devminor ?? 0, 8), 337, 'ascii');
  }
  buf.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of buf) sum += b;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 'ascii');
  return buf;
}

/**
 * Streams a USTAR archive of `entries` (file bodies streamed from disk), ending with two zero
 * blocks and padded to a 10240-byte record like Python's tarfile, so the bytes are reproducible
 * from the entry list alone.
 */
export async function* packUstar(entries: Iterable<PackEntry> | AsyncIterable<PackEntry>): AsyncIterable<Uint8Array> {
  let total = 0;
  for await (const e of entries) {
    const size = e.header.type === 'file' || e.header.type === undefined ? (e.header.size ?? e.data?.length ?? 0) : 0;
    yield ustarHeader({ ...e.header, size });
    total += BLOCK;
    let written = 0;
    if (e.file !== undefined) {
      for await (const c of createReadStream(e.file)) {
        const chunk = c as Buffer;
        written += chunk.length;
        yield chunk;
      }
    } else if (e.data !== undefined) {
      written = e.data.length;
      yield e.data;
    }
    if (written !== size) throw new ImageStoreError('EXPORT_FAILED', `${e.header.name}: expected ${size} bytes, read ${written}`);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
    total += size + pad;
  }
  total += 2 * BLOCK;
  const recPad = (RECORD - (total % RECORD)) % RECORD;
  yield Buffer.alloc(2 * BLOCK + recPad);
}
