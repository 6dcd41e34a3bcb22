import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { checkDirectoryTarget, fileTarget } from './file-target.js';
import { parseOutputs } from './output-targets.js';

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'kiln-file-target-'));
  await mkdir(join(cwd, 'dir'));
  await writeFile(join(cwd, 'file'), 'kept');
  await symlink(join(cwd, 'nowhere'), join(cwd, 'dangling'));
  await symlink('loop', join(cwd, 'loop'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

const io: CliIo = {
  stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
  stdout: { write: () => true },
  stderr: { write: () => true },
  get cwd() {
    return cwd;
  },
};

// These failed only after the whole build, with a bare EISDIR from the atomic rename (archives,
// --metadata-file) or EEXIST from mkdir (type=local onto a file).
test.for([
  ['type=oci,dest=dir', 'cannot write --output dir: it is a directory'],
  ['type=docker,dest=dir', 'cannot write --output dir: it is a directory'],
  ['type=tar,dest=dir', 'cannot write --output dir: it is a directory'],
  ['type=local,dest=file', 'cannot write --output file: it is a file, and this output writes a directory'],
  ['type=oci,tar=false,dest=file', 'cannot write --output file: it is a file, and this output writes a directory'],
] as const)('--output %s is refused before the build, naming the option', async ([spec, message]) => {
  await expect(parseOutputs([spec], io)).rejects.toMatchObject({ code: 'KLN0702', message, hint: expect.stringMatching(/^name a/) });
  expect(await readdir(join(cwd, 'dir'))).toEqual([]);
  expect(existsSync(join(cwd, 'file'))).toBe(true);
});

test('directory outputs take an existing directory, archives an existing file', async () => {
  const r = await parseOutputs(['type=local,dest=dir', 'type=oci,tar=false,dest=dir', 'type=tar,dest=file'], io);
  expect(r.specs.map((s) => ('dest' in s ? s.dest : undefined))).toEqual([join(cwd, 'dir'), join(cwd, 'dir'), join(cwd, 'file')]);
});

test('--metadata-file or --iidfile naming a directory is refused; a new file in it is fine', async () => {
  await expect(fileTarget(io, '--metadata-file', 'dir')).rejects.toMatchObject({ code: 'KLN0702', message: 'cannot write --metadata-file dir: it is a directory' });
  await expect(fileTarget(io, '--iidfile', './dir/')).rejects.toMatchObject({ code: 'KLN0702', message: 'cannot write --iidfile ./dir/: it is a directory' });
  expect(await fileTarget(io, '--metadata-file', 'dir/meta.json')).toEqual({ kind: 'file', given: 'dir/meta.json', path: join(cwd, 'dir', 'meta.json') });
});

// A directory that takes no files (/proc here; a read-only filesystem or another user's directory
// alike) failed only after the build, with a bare ENOENT naming the atomic write's temporary file.
test.for([
  ['--iidfile', '/proc/iid', 'file'],
  ['--metadata-file', '/proc/version', 'file'],
  ['--output', '/proc/newdir', 'directory'],
] as const)('%s %s is refused before the build: its directory takes no new files', async ([flag, given, want]) => {
  await expect(fileTarget(io, flag, given, want)).rejects.toMatchObject({ code: 'KLN0702', message: `cannot write ${flag} ${given}: /proc does not take new files (ENOENT)` });
});

test('the writability probe leaves nothing behind', async () => {
  await fileTarget(io, '--output', 'dir', 'directory');
  await fileTarget(io, '--iidfile', 'file');
  await fileTarget(io, '--iidfile', 'new/iid');
  expect(await readdir(join(cwd, 'dir'))).toEqual([]);
  expect((await readdir(cwd)).filter((n) => n.startsWith('.kiln-probe'))).toEqual([]);
  expect(await readdir(join(cwd, 'new'))).toEqual([]);
});

test('checkDirectoryTarget: a new directory under /proc is refused at once, nothing is made (typo tour 4: --cache-to dest=/proc/x hung at full CPU after the build)', async () => {
  const fail = (why: string): Error => Object.assign(new Error(why), { code: 'X' });
  await expect(checkDirectoryTarget('/proc/kiln-typo-tour/cache', fail)).rejects.toThrow('/proc does not take new directories (ENOENT)');
  await expect(checkDirectoryTarget(join(cwd, 'file', 'sub'), fail)).rejects.toThrow(`${join(cwd, 'file')} is not a directory`);
  // a new or existing directory in a writable place passes, and leaves nothing behind
  await checkDirectoryTarget(join(cwd, 'fresh-typo4', 'deeper'), fail);
  await checkDirectoryTarget(join(cwd, 'dir'), fail);
  expect(existsSync(join(cwd, 'fresh-typo4'))).toBe(false);
  expect(await readdir(join(cwd, 'dir'))).toEqual([]);
});

// BuildKit's local export target is made with os.MkdirAll, which does not follow a symlink to
// nothing (EEXIST); kiln's failed the same way, but after the build and without a code.
test.for([
  ['dangling', `${'CWD'}/dangling is a symbolic link to CWD/nowhere, which does not exist`],
  ['dangling/sub', `${'CWD'}/dangling is a symbolic link to CWD/nowhere, which does not exist`],
  ['loop', 'CWD/loop is a symbolic link to loop, which does not resolve (ELOOP)'],
] as const)('a local directory target through a dangling symlink (%s) is refused before the build, naming the flag and the link', async ([given, why]) => {
  const expected = why.replaceAll('CWD', cwd);
  await expect(fileTarget(io, '--output', given, 'directory')).rejects.toMatchObject({ code: 'KLN0702', message: `cannot write --output ${given}: ${expected}`, hint: expect.stringMatching(/^(make the directory it points to|name a path)/) });
  const fail = (w: string): Error => new Error(`--cache-to: ${w}`);
  await expect(checkDirectoryTarget(join(cwd, given), fail)).rejects.toThrow(`--cache-to: ${expected}`);
  // nothing made, the link left as it was
  expect(existsSync(join(cwd, 'nowhere'))).toBe(false);
  expect(await readlink(join(cwd, 'dangling'))).toBe(join(cwd, 'nowhere'));
});
