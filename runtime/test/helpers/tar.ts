import { pack, type Pack } from 'tar-stream';

/** One tar-stream entry header, with its body text. */
export type TarEntry = Parameters<Pack['entry']>[0] & { body?: string };

/** A tar archive of `entries`, made by tar-stream (a second implementation to check ours against). */
export async function tarOf(entries: readonly TarEntry[]): Promise<Buffer> {
  const p = pack();
  for (const { body, ...h } of entries) p.entry({ ...h, mtime: h.mtime ?? new Date('2024-01-01T00:00:00Z') }, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
