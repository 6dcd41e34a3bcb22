import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { unpackArchive } from './unpack.js';

// ADD's extraction of hardlinks, as Docker's untar (BuildKit's) makes them: os.Link to the target
// as it is on disk then, so a target earlier in the archive or already in the destination works
// and one the archive holds only later fails (the error names the entry and the target).

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Entry = { name: string; body: string } | { name: string; link: string };

/** A plain tar of `entries`, in this order, under `src/` of a fresh source root. */
async function archive(entries: readonly Entry[]): Promise<string> {
  const root = await mkdtemp(join(dir, 'src-'));
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    if ('body' in e) p.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.body);
    else p.entry({ name: e.name, type: 'link', linkname: e.link, mode: 0o644, mtime: new Date(0) });
  }
  p.finalize();
  await ended;
  await writeFile(join(root, 'a.tar'), Buffer.concat(chunks));
  return root;
}

async function unpackInto(src: string, setup?: (dest: string) => Promise<void>): Promise<string> {
  const dest = await mkdtemp(join(dir, 'dest-'));
  await setup?.(dest);
  expect(await unpackArchive(src, '/a.tar', dest, '/out', undefined, undefined)).toBe(true);
  return join(dest, 'out');
}

test('a target earlier in the archive: one inode for both names', async () => {
  const out = await unpackInto(await archive([{ name: 'app/a.txt', body: 'a\n' }, { name: 'app/b.txt', link: 'app/a.txt' }]));
  expect((await stat(join(out, 'app/b.txt'))).ino).toBe((await stat(join(out, 'app/a.txt'))).ino);
  expect(await readFile(join(out, 'app/b.txt'), 'utf8')).toBe('a\n');
});

test('a target already in the destination (not in the archive) is linked to', async () => {
  const out = await unpackInto(await archive([{ name: 'b.txt', link: 'old.txt' }]), async (dest) => {
    await mkdir(join(dest, 'out'));
    await writeFile(join(dest, 'out', 'old.txt'), 'there\n');
  });
  expect((await stat(join(out, 'b.txt'))).ino).toBe((await stat(join(out, 'old.txt'))).ino);
});

test('a target only later in the archive fails, naming the archive, the entry and the target', async () => {
  const src = await archive([{ name: 'app/copy.txt', link: 'app/late.txt' }, { name: 'app/late.txt', body: 'late\n' }]);
  await expect(unpackInto(src)).rejects.toMatchObject({
    code: 'FILEOP_ARCHIVE_INVALID',
    message: 'archive "/a.tar": hardlink "app/copy.txt" points to "app/late.txt", which is not in the archive before it (nor in the destination)',
  });
});
