import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { parseFlags, type BuildFlags } from './build.js';
import { main } from '../main.js';

// kiln build's flags as parseFlags turns them into a BuildRequest (nothing is built).
let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'kiln-build-flags-'));
  await writeFile(join(cwd, 'Dockerfile'), 'FROM busybox\n');
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

const io = (): CliIo => ({
  stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
  stdout: { write: () => true },
  stderr: { write: () => true },
  cwd,
  env: {},
});

const flags = (over: Partial<BuildFlags>): BuildFlags => ({
  buildArg: [], secret: [], ssh: [], output: [], tag: [], progress: 'auto', cache: true, cacheFilter: [], buildContext: [],
  allow: [], label: [], addHost: [], ulimit: [], ...over,
});

async function parse(over: Partial<BuildFlags>): Promise<Awaited<ReturnType<typeof parseFlags>>['req']> {
  const cleanup: (() => Promise<void>)[] = [];
  try {
    return (await parseFlags('.', flags(over), io(), cleanup)).req;
  } finally {
    for (const c of cleanup) await c();
  }
}

describe('--label', () => {
  test('KEY alone is an empty label, as buildx (listToMap) and docker build take it', async () => {
    const req = await parse({ label: ['a=1', 'flag', 'b=x=y'] });
    expect([...(req.labels ?? new Map())]).toEqual([['a', '1'], ['flag', ''], ['b', 'x=y']]);
  });
  test('an empty key is refused', async () => {
    await expect(parse({ label: ['=x'] })).rejects.toMatchObject({ code: 'KLN0702', message: 'invalid --label "=x": empty key' });
  });
});

describe('--push', () => {
  test('pushes the image output given with --output (buildx sets push=true on it) instead of asking for -t', async () => {
    const req = await parse({ push: true, output: ['type=image,name=localhost:5000/a:1'] });
    expect(req.outputs).toMatchObject([{ type: 'image', push: true, names: ['localhost:5000/a:1'] }]);
  });
  test('pushes every image output, and -t names them (buildx replaces name= with the tags)', async () => {
    const req = await parse({ push: true, tag: ['localhost:5000/t:1'], output: ['type=image,name=localhost:5000/a:1', 'type=image,name=localhost:5000/b:1'] });
    expect(req.outputs).toMatchObject([
      { type: 'image', push: true, names: ['localhost:5000/t:1'] },
      { type: 'image', push: true, names: ['localhost:5000/t:1'] },
    ]);
  });
  test('with -t and no image output it is type=registry of the tags; with neither it is refused', async () => {
    expect((await parse({ push: true, tag: ['localhost:5000/b:1'] })).outputs).toMatchObject([{ type: 'image', push: true, names: ['localhost:5000/b:1'] }]);
    await expect(parse({ push: true })).rejects.toMatchObject({ code: 'KLN0702', message: '--push needs at least one -t NAME' });
  });
});

test('--iidfile and --metadata-file parents made while parsing go again when nothing was written there (a refused or failed build)', async () => {
  await parse({ tag: ['x:1'], iidfile: 'made-i/a/iid', metadataFile: 'made-m/meta.json' });
  expect([existsSync(join(cwd, 'made-i')), existsSync(join(cwd, 'made-m'))]).toEqual([false, false]);
});

test('-f naming a directory says so (it said "no such file"), with the Dockerfile inside it when there is one', async () => {
  await mkdir(join(cwd, 'svc'), { recursive: true });
  await writeFile(join(cwd, 'svc', 'Dockerfile'), 'FROM busybox\n');
  await expect(parse({ file: 'svc' })).rejects.toMatchObject({ code: 'KLN0702', message: 'cannot read Dockerfile svc: it is a directory', hint: '-f names the file itself: -f svc/Dockerfile' });
});

describe('--platform', () => {
  // buildx's --platform is a string array: each flag adds its platforms (platformutil.Parse of all of them)
  test('is repeatable, as buildx: the values of every --platform make one list', async () => {
    let stderr = '';
    const cliIo: CliIo = { ...io(), stderr: { write: (c: string | Uint8Array) => (stderr += String(c)) }, env: { KILN_ROOT: join(cwd, 'root') } };
    // an empty last entry fails before anything is built, and the message shows the joined list
    const code = await main(['node', 'kiln', 'build', '--platform', 'linux/amd64', '--platform', 'linux/arm64,', cwd], cliIo);
    expect(code).toBe(1);
    expect(stderr).toContain('--platform "linux/amd64,linux/arm64,": an empty platform in the list');
  });
});
