import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { fileTarget } from './file-target.js';
import { parseOutputs } from './output-targets.js';

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'kiln-output-targets-'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

const io = (opts: { isTTY?: boolean; remote?: boolean } = {}): CliIo => ({
  stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
  stdout: { write: () => true, isTTY: opts.isTTY === true } as CliIo['stdout'],
  stderr: { write: () => true },
  cwd,
  ...(opts.remote === true ? { remote: true } : {}),
});

test('-o - is type=tar to a private temporary file; other outputs resolve against the caller directory', async () => {
  const r = await parseOutputs(['-', 'type=local,dest=out'], io());
  try {
    expect(r.specs).toEqual([
      { type: 'tar', dest: r.redirects[0]?.file },
      { type: 'local', dest: join(cwd, 'out') },
    ]);
    expect(r.redirects.map((x) => [x.display, x.target.kind])).toEqual([['-', 'stdout']]);
    expect(existsSync(dirname(r.redirects[0]?.file ?? '/nonexistent/x'))).toBe(true);
  } finally {
    await r.remove();
  }
  expect(existsSync(dirname(r.redirects[0]?.file ?? '/'))).toBe(false);
});

test('dest=- keeps the other attributes (type=oci, name=, compression=); dest=/dev/stdout is stdout too', async () => {
  const r = await parseOutputs(['type=oci,dest=-,name=a:1,compression=zstd'], io());
  try {
    expect(r.specs[0]).toMatchObject({ type: 'oci', tar: true, names: ['a:1'], compression: 'zstd', dest: r.redirects[0]?.file });
  } finally {
    await r.remove();
  }
  const dev = await parseOutputs(['type=docker,dest=/dev/stdout'], io());
  await dev.remove();
  expect(dev.redirects.map((x) => [x.display, x.target.kind])).toEqual([['/dev/stdout', 'stdout']]);
});

test.for([
  ['type=local,dest=-', 'cannot write to stdout'],
  ['type=oci,dest=-,tar=false', 'cannot write to stdout'],
  ['type=local,dest=/dev/null', 'not a directory'],
] as const)('%s is refused', async ([spec, message]) => {
  await expect(parseOutputs([spec], io())).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining(message) });
});

test('two outputs to stdout, or an archive to a terminal, are refused', async () => {
  await expect(parseOutputs(['-', 'type=docker,dest=-'], io())).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('only one output') });
  await expect(parseOutputs(['type=tar,dest=-'], io({ isTTY: true }))).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('terminal') });
});

test('file targets: the caller streams, devices in place, regular files by path; a daemon refuses its own /dev/fd', async () => {
  expect(await fileTarget(io(), '--iidfile', '/dev/stdout')).toEqual({ kind: 'stdout', given: '/dev/stdout' });
  expect(await fileTarget(io({ remote: true }), '--iidfile', '/proc/self/fd/2')).toEqual({ kind: 'stderr', given: '/proc/self/fd/2' });
  expect(await fileTarget(io(), '--iidfile', '/dev/null')).toEqual({ kind: 'special', given: '/dev/null', path: '/dev/null' });
  expect(await fileTarget(io(), '--iidfile', 'a/b/iid')).toEqual({ kind: 'file', given: 'a/b/iid', path: join(cwd, 'a/b/iid') });
  expect(existsSync(join(cwd, 'a/b'))).toBe(true);
  await expect(fileTarget(io({ remote: true }), '--iidfile', '/dev/fd/3')).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining("daemon's process") });
});

test('a parent that cannot be made fails at once (Node 20 recursive mkdir loops forever under /proc)', async () => {
  await expect(fileTarget(io(), '--metadata-file', '/proc/kiln-no-such-dir/meta.json')).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('/proc/kiln-no-such-dir') });
  await expect(parseOutputs(['type=oci,dest=/proc/kiln-no-such-dir/x/o.tar'], io())).rejects.toMatchObject({ code: 'KLN0702' });
});

test('-t names an image output given without name= (buildx: --output type=registry -t REPO), before it is checked', async () => {
  const r = await parseOutputs(['type=registry', 'type=image'], io(), ['localhost:5000/app:1']);
  expect(r.specs).toMatchObject([
    { type: 'image', push: true, names: ['localhost:5000/app:1'] },
    { type: 'image', push: false, names: ['localhost:5000/app:1'] },
  ]);
  await expect(parseOutputs(['type=registry'], io())).rejects.toMatchObject({ message: expect.stringContaining('needs name') });
});

test.for([
  ['App:1', 'lowercase'],
  ['app:bad tag', 'bad tag'],
  ['', 'empty'],
] as const)('-t %j is refused before the build (%s)', async ([tag, why]) => {
  await expect(parseOutputs([], io(), [tag])).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringMatching(new RegExp(`^invalid tag "${tag}": .*${why}`)) });
});

test('parents made for new destinations are removed again when the build wrote nothing there (a refused or failed build), kept when it did', async () => {
  const r = await parseOutputs(['type=local,dest=made1/a/out', 'type=tar,dest=made2/b/fs.tar', 'type=oci,dest=made3/img.tar'], io());
  expect(existsSync(join(cwd, 'made1/a')) && existsSync(join(cwd, 'made2/b')) && existsSync(join(cwd, 'made3'))).toBe(true);
  await writeFile(join(cwd, 'made3/img.tar'), 'exported');
  await r.remove();
  expect([existsSync(join(cwd, 'made1')), existsSync(join(cwd, 'made2')), existsSync(join(cwd, 'made3/img.tar'))]).toEqual([false, false, true]);
  expect(existsSync(cwd)).toBe(true);
});
