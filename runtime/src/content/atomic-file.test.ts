import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { writeDirAtomic, writeFileAtomic } from './atomic-file.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-atomic-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function* failing(): AsyncIterable<Uint8Array> {
  yield Buffer.from('half of the ');
  throw new Error('source broke');
}

describe('atomic outputs', () => {
  test('a failing stream leaves the old file untouched and no temp file', async () => {
    const dest = join(root, 'out.tar');
    await writeFile(dest, 'previous');
    await expect(writeFileAtomic(dest, failing())).rejects.toThrow('source broke');
    expect(await readFile(dest, 'utf8')).toBe('previous');
    expect(await readdir(root)).toEqual(['out.tar']);
    await writeFileAtomic(dest, Buffer.from('new'));
    expect(await readFile(dest, 'utf8')).toBe('new');
    expect(await readdir(root)).toEqual(['out.tar']);
  });

  test('a failing directory fill leaves no directory; a successful one replaces the old', async () => {
    const dest = join(root, 'layout');
    await expect(
      writeDirAtomic(dest, async (d) => {
        await writeFile(join(d, 'a'), 'x');
        throw new Error('fill broke');
      }),
    ).rejects.toThrow('fill broke');
    expect(await readdir(root)).toEqual([]);
    await mkdir(dest);
    await writeFile(join(dest, 'stale'), 'old');
    await writeDirAtomic(dest, async (d) => writeFile(join(d, 'fresh'), 'new'));
    expect(await readdir(dest)).toEqual(['fresh']);
    expect(await readdir(root)).toEqual(['layout']);
  });
});
