import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FileOpError } from './errors.js';

/** Compression of an archive, detected by magic bytes as Docker's `DecompressStream`. */
export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** Detects the compression of a file from its first bytes. */
export async function detectCompression(path: string): Promise<Compression> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(6);
    const { bytesRead } = await fh.read(buf, 0, 6, 0);
    const b = buf.subarray(0, bytesRead);
    if (b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 0x08) return 'gzip';
    if (b.length >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (b.length >= 6 && b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

const TOOLS: Readonly<Record<'bzip2' | 'xz' | 'zstd', string>> = { bzip2: 'bzip2', xz: 'xz', zstd: 'zstd' };

/**
 * A decompressed stream of `path`. gzip runs in zlib; bzip2, xz and zstd run through the system
 * tools (`bzip2 -dc`, `xz -dc`, `zstd -dc`), which Node lacks. `destroy()` on the result stops
 * the reader and the tool.
 */
export function decompressedStream(path: string, compression: Compression): Readable {
  const file = createReadStream(path);
  if (compression === 'none') return file;
  if (compression === 'gzip') {
    const gz = createGunzip();
    file.on('error', (e) => gz.destroy(e));
    return file.pipe(gz);
  }
  const out = new PassThrough();
  const tool = TOOLS[compression];
  const proc = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.on('error', (e) =>
    out.destroy(
      new FileOpError('FILEOP_UNSUPPORTED', path, `cannot decompress ${compression} archive: ${tool} is not available`, {
        cause: e,
        hint: `apt-get install ${tool}`,
      }),
    ),
  );
  proc.stdin.on('error', () => undefined); // EPIPE when we stop reading early
  file.on('error', (e) => out.destroy(e));
  file.pipe(proc.stdin);
  proc.stdout.pipe(out);
  proc.on('close', (code, sig) => {
    if (code !== 0 && sig === null && !out.destroyed) out.destroy(new Error(`${tool} -dc failed: ${stderr.trim()}`));
  });
  out.on('close', () => {
    file.destroy();
    if (proc.exitCode === null) proc.kill();
  });
  return out;
}

/** Reads up to `n` bytes from the start of a stream, then destroys it. */
export async function readHead(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let len = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      chunks.push(b);
      len += b.length;
      if (len >= n) break;
    }
  } catch (err) {
    // A broken stream is simply "not an archive"; a missing decompressor is not.
    if (err instanceof FileOpError) throw err;
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, n);
}

/** Whether a 512-byte block is a tar header with a valid checksum (what Go's tar.Reader.Next needs). */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+/g, ' ').trim();
  if (field === '' || !/^[0-7]+$/.test(field)) return false;
  const sum = parseInt(field, 8);
  return sum === unsigned || sum === signed;
}
