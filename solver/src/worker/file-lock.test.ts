import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { withFileLock } from './file-lock.js';

const dir = await mkdtemp(join(tmpdir(), 'kiln-solver-lock-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

// The lock itself is the runtime's (runtime/src/api/file-lock.test.ts); this is the solver's face of it.
test('a wait the build cancels fails with SOLVER_CANCELLED; an error of fn itself stays as it is', async () => {
  const lock = join(dir, 'held');
  await writeFile(lock, '1'); // pid 1 is alive
  await expect(withFileLock(lock, AbortSignal.timeout(50), async () => 'held')).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
  expect(await readFile(lock, 'utf8')).toBe('1');
  const boom = new Error('boom');
  await expect(withFileLock(join(dir, 'free'), AbortSignal.timeout(5_000), async () => Promise.reject(boom))).rejects.toBe(boom);
});
