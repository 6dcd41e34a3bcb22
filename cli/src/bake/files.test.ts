import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { readBakeFiles } from './files.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-bake-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const io = (): CliIo => ({ stdin: (async function* (): AsyncGenerator<Uint8Array> {})(), stdout: { write: () => true }, stderr: { write: () => true }, cwd: dir, env: {} });

test('-f naming a directory says so, with the file to name (typo tour 4: was "EISDIR: illegal operation on a directory, read")', async () => {
  await expect(readBakeFiles(['.'], io())).rejects.toMatchObject({ code: 'KLN0850', message: 'cannot read bake file .: it is a directory', hint: expect.stringContaining('-f ./docker-bake.hcl') });
  await expect(readBakeFiles(['nope.hcl'], io())).rejects.toMatchObject({ code: 'KLN0850', message: 'cannot read bake file nope.hcl: no such file' });
});
