import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { readDockerignore } from './dockerignore.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-dockerignore-'));
  await mkdir(join(dir, 'build'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the Dockerfile-specific ignore file wins over .dockerignore', async () => {
  await writeFile(join(dir, '.dockerignore'), 'a\n');
  await writeFile(join(dir, 'build', 'app.Dockerfile.dockerignore'), '# only b\nb\n');
  expect(await readDockerignore(dir, join(dir, 'build', 'app.Dockerfile'))).toEqual({ patterns: ['b'], file: join(dir, 'build', 'app.Dockerfile.dockerignore') });
  expect(await readDockerignore(dir)).toEqual({ patterns: ['a'], file: join(dir, '.dockerignore') });
});

// Before: the build failed as "syntax error in pattern "["  in [internal] load build context".
test('a malformed pattern fails at once, naming the ignore file and line', async () => {
  await writeFile(join(dir, '.dockerignore'), '# deps\nnode_modules\n\n!keep/[abc\n*.log\n');
  await expect(readDockerignore(dir)).rejects.toMatchObject({ code: 'SOLVER_BAD_PATTERN', message: '.dockerignore:4: syntax error in pattern "keep/[abc"', hint: expect.stringContaining('escape') });
  await writeFile(join(dir, 'build', 'app.Dockerfile.dockerignore'), '[\n');
  await expect(readDockerignore(dir, join(dir, 'build', 'app.Dockerfile'))).rejects.toMatchObject({ message: 'build/app.Dockerfile.dockerignore:1: syntax error in pattern "["' });
});
