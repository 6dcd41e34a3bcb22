import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copy, encodeDefinition, image, local } from '@kiln/llb-core';
import type { CliIo } from '../io.js';
import { solveCommand, type SolveFlags } from './solve.js';

// kiln solve's --local NAME=DIR, checked against the definition before anything runs (no engine
// is opened for these refusals: no root is given).
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-solve-locals-'));
  await mkdir(join(dir, 'ctx'));
  await writeFile(join(dir, 'def.pb'), encodeDefinition(await image('busybox').file(copy(local('context'), '/a', '/a')).marshal()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bufferIo(): CliIo & { err: () => string } {
  const err: string[] = [];
  return {
    stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
    stdout: { write: () => true },
    stderr: { write: (c: string | Uint8Array) => err.push(Buffer.from(c).toString()) },
    get cwd() {
      return dir;
    },
    err: () => err.join(''),
  };
}

const flags = (local: string[]): SolveFlags => ({ output: [], local, secret: [], ssh: [], allow: [], tag: [], progress: 'plain', cache: true });

describe('kiln solve --local', () => {
  test('a local source of the definition without a directory is refused up front, naming the flag to pass', async () => {
    const io = bufferIo();
    await expect(solveCommand('def.pb', flags([]), io)).rejects.toMatchObject({ exitCode: 1 });
    expect(io.err()).toContain('the definition reads local source "context", and no directory was given for it');
    expect(io.err()).toContain('hint: --local context=DIR');
  });

  test('a name the definition does not read is a warning with the nearest name (here before the refusal of the missing one)', async () => {
    const io = bufferIo();
    await expect(solveCommand('def.pb', flags(['contxt=ctx']), io)).rejects.toMatchObject({ exitCode: 1 });
    expect(io.err()).toContain('WARNING: --local contxt: the definition has no local source "contxt" (did you mean context?)');
  });

  test('a directory that does not exist is refused (BuildKit\'s client: could not find DIR)', async () => {
    const io = bufferIo();
    await expect(solveCommand('def.pb', flags(['context=nosuch']), io)).rejects.toMatchObject({ exitCode: 1 });
    expect(io.err()).toContain('--local context: cannot use nosuch: no such directory');
  });
});
