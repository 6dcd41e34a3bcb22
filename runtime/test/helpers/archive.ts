import { createHash } from 'node:crypto';
import { pack } from 'tar-stream';

/** Hex sha256 of `b`. */
export const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A tar entry: a file with `data`, or a symlink. */
export interface ArchiveEntry {
  readonly name: string;
  readonly data?: Buffer | string;
  readonly symlink?: string;
}

/** A tar written by tar-stream (not kiln's packer), entries in the order given. */
export async function tarOf(entries: readonly ArchiveEntry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.symlink !== undefined) p.entry({ name: e.name, type: 'symlink', linkname: e.symlink });
    else p.entry({ name: e.name }, Buffer.from(e.data ?? ''));
  }
  p.finalize();
  const out: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) out.push(c);
  return Buffer.concat(out);
}

/** `b` as a stream of `size`-byte chunks (entries then straddle reads, as from a pipe). */
export async function* chunks(b: Buffer, size = 7000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}
