import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { ensureRootDir } from './root-dir.js';

const dir = await mkdtemp(join(tmpdir(), 'kiln-root-dir-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

test('a missing root is made with its parents; an existing one is left as it is', async () => {
  await ensureRootDir(join(dir, 'a/b/root'));
  expect((await stat(join(dir, 'a/b/root'))).isDirectory()).toBe(true);
  await ensureRootDir(join(dir, 'a/b/root'));
});

// Before: ENOTDIR/EPERM with no code and no hint, and a root under /proc hung the command for ever.
test('a root that cannot be made is KLN0707 naming the root, at once', async () => {
  await writeFile(join(dir, 'file'), 'x');
  await expect(ensureRootDir(join(dir, 'file/root'))).rejects.toMatchObject({ code: 'KLN0707', message: `cannot use the kiln root ${join(dir, 'file/root')}: ${join(dir, 'file')} is not a directory`, hint: expect.stringContaining('--root DIR') as unknown });
  const t0 = Date.now();
  await expect(ensureRootDir('/proc/kiln-no-such/root')).rejects.toMatchObject({ code: 'KLN0707', message: expect.stringContaining('cannot use the kiln root /proc/kiln-no-such/root: cannot create /proc/kiln-no-such') as unknown });
  expect(Date.now() - t0).toBeLessThan(2000);
});
