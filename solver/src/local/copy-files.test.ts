import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { copySmallFiles, type SmallCopyJob } from './copy-files.js';
import { hashFile } from '../contenthash/tree.js';
import { tarsumHeader } from '../contenthash/tarsum.js';
import { toLocalStat } from './walk.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(n: number): { src: string; dest: string; jobs: SmallCopyJob[] } {
  const src = mkdtempSync(join(tmpdir(), 'kiln-copyfiles-src-'));
  const dest = mkdtempSync(join(tmpdir(), 'kiln-copyfiles-dest-'));
  dirs.push(src, dest);
  const jobs: SmallCopyJob[] = [];
  for (let i = 0; i < n; i++) {
    const abs = join(src, `f${i}`);
    writeFileSync(abs, `content ${i}\n`.repeat(i % 7));
    if (i % 5 === 0) chmodSync(abs, 0o4750);
    const st = toLocalStat(lstatSync(abs), abs);
    jobs.push({ abs, target: join(dest, `f${i}`), size: st.size, mode: st.mode & 0o7777, uid: 1000 + (i % 3), gid: 2000, mtime: 1_600_000_000 + i, header: tarsumHeader(st), unlink: false, chown: true, chmod: true });
  }
  return { src, dest, jobs };
}

describe('copySmallFiles', () => {
  test.for([
    ['this thread only', false],
    ['with the worker thread', true],
  ] as const)('%s: every digest equals hashing the file from disk; bytes, owner, mode and mtime are copied', async ([, parallel]) => {
    const { jobs } = setup(300);
    const digests: string[] = [];
    await copySmallFiles(jobs, (i, d) => void (digests[i] = d), undefined, parallel);
    for (const [i, j] of jobs.entries()) {
      const st = lstatSync(j.abs);
      expect(digests[i]).toBe(await hashFile(j.abs, toLocalStat(st, j.abs)));
      const out = lstatSync(j.target);
      expect(readFileSync(j.target, 'utf8')).toBe(readFileSync(j.abs, 'utf8'));
      expect([out.uid, out.gid, out.mode & 0o7777, out.mtimeMs]).toEqual([j.uid, j.gid, j.mode, j.mtime * 1000]);
    }
  });

  test('an error in either thread stops the copy and is thrown with its code', async () => {
    const { jobs } = setup(300);
    // A target that exists already: the exclusive create fails (EEXIST) in whichever thread gets it.
    writeFileSync(jobs[290]?.target ?? '', 'in the way');
    await expect(copySmallFiles(jobs, () => undefined, undefined, true)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
