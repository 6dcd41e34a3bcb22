import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { applyLayer, fileCopy } from '@kiln/runtime';
import { copyAction } from './fileop-helpers.js';

// Which setxattr failures a layer may skip, as containerd's applier (pkg/archive/tar.go
// createTarFile): ENOTSUP for any name, EPERM only for user.* on an entry that is neither a regular
// file nor a directory; anything else fails the layer. ADD's archive extraction keeps BuildKit's
// (moby archive.Untar with BestEffortXattrs): ENOTSUP and EPERM skipped for every name.
// Real files on the test directory's filesystem; EPERM for trusted.* / security.capability comes
// from the kernel for a setfattr run without CAP_SYS_ADMIN / CAP_SETFCAP (setpriv), as in a
// rootless or unprivileged unpacker.

beforeAll(() => {
  for (const tool of ['setfattr', 'getfattr', 'setpriv']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is needed by this test: apt-get install attr util-linux`);
    }
  }
  if (process.getuid?.() !== 0) throw new Error('this test sets trusted.* attributes: run it as root');
});

const dirs: string[] = [];
const savedPath = process.env['PATH'];
afterEach(async () => {
  process.env['PATH'] = savedPath;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `kiln-xattr-refusal-${tag}-`));
  dirs.push(d);
  return d;
}

interface Entry {
  readonly name: string;
  readonly type?: 'file' | 'directory' | 'symlink' | 'fifo';
  readonly linkname?: string;
  readonly body?: string;
  readonly xattrs?: Record<string, string>;
}
async function layer(entries: Entry[]): Promise<Readable> {
  const p = pack();
  for (const e of entries) {
    const pax = e.xattrs === undefined ? undefined : Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v]));
    const header = { name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, mtime: new Date(1_000_000_000_000), ...(e.linkname === undefined ? {} : { linkname: e.linkname }), ...(pax === undefined ? {} : { pax }) };
    if ((e.type ?? 'file') === 'file') p.entry(header, e.body ?? '');
    else p.entry(header);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

/** setfattr as an unprivileged unpacker runs it: without CAP_SYS_ADMIN and CAP_SETFCAP. */
async function setfattrWithout(): Promise<void> {
  const bin = await tempDir('bin');
  const real = execFileSync('sh', ['-c', 'command -v setfattr']).toString().trim();
  await writeFile(join(bin, 'setfattr'), `#!/bin/sh\nexec setpriv --inh-caps=-sys_admin,-setfcap --bounding-set=-sys_admin,-setfcap ${real} "$@"\n`);
  await chmod(join(bin, 'setfattr'), 0o755);
  process.env['PATH'] = `${bin}:${savedPath ?? ''}`;
}

function attr(path: string, name: string): string | undefined {
  try {
    return execFileSync('getfattr', ['-h', '--only-values', '-n', name, path], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return undefined;
  }
}

const CAP = `0x${'01000002' + '00200000' + '00000000' + '00000000' + '00000000'}`; // cap_net_raw+ep, VFS_CAP_REVISION_2

describe('applyLayer: setxattr refusals (containerd rules)', () => {
  test('the test directory is on a filesystem with user.* and trusted.* xattrs', async () => {
    const d = await tempDir('fs');
    const fs = execFileSync('stat', ['-f', '-c', '%T', d]).toString().trim();
    expect(['ext2/ext3', 'xfs', 'btrfs', 'tmpfs']).toContain(fs);
  });

  test('user.* on a symlink or fifo (EPERM from the kernel) is skipped; on files and directories it is set', async () => {
    const dir = await tempDir('user');
    await applyLayer(
      dir,
      await layer([
        { name: 'd', type: 'directory', xattrs: { 'user.dir': 'D' } },
        { name: 'd/f', body: 'f', xattrs: { 'user.file': 'F' } },
        { name: 'd/l', type: 'symlink', linkname: 'f', xattrs: { 'user.link': 'L', 'trusted.link': 'T' } },
        { name: 'd/p', type: 'fifo', xattrs: { 'user.fifo': 'P' } },
      ]),
    );
    expect(attr(join(dir, 'd'), 'user.dir')).toBe('D');
    expect(attr(join(dir, 'd/f'), 'user.file')).toBe('F');
    expect(attr(join(dir, 'd/l'), 'user.link')).toBeUndefined();
    // trusted.* on a symlink is allowed (root): set, not skipped along with user.*
    expect(attr(join(dir, 'd/l'), 'trusted.link')).toBe('T');
    expect(attr(join(dir, 'd/p'), 'user.fifo')).toBeUndefined();
    expect(await readFile(join(dir, 'd/f'), 'utf8')).toBe('f');
  });

  test('a name the kernel does not support (ENOTSUP) is skipped, as containerd does', async () => {
    const dir = await tempDir('notsup');
    await applyLayer(dir, await layer([{ name: 'f', body: 'x', xattrs: { 'kiln.unknown': 'u', 'user.ok': 'ok' } }]));
    expect(attr(join(dir, 'f'), 'user.ok')).toBe('ok');
  });

  test('trusted.* refused (EPERM, no CAP_SYS_ADMIN) fails the layer, naming the entry and the attribute', async () => {
    const dir = await tempDir('trusted');
    await setfattrWithout();
    const err = await applyLayer(dir, await layer([{ name: 'etc/app.conf', body: 'x', xattrs: { 'trusted.kiln': 't' } }])).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'WorkerError', code: 'LAYER_UNSUPPORTED' });
    expect((err as Error).message).toBe('cannot set extended attribute trusted.kiln on layer entry "etc/app.conf": Operation not permitted');
    expect((err as { hint?: string }).hint).toMatch(/CAP_SYS_ADMIN/);
  });

  test('security.capability refused (EPERM, no CAP_SETFCAP) fails the layer', async () => {
    const dir = await tempDir('security');
    await setfattrWithout();
    const err = await applyLayer(dir, await layer([{ name: 'bin/ping', body: 'ping', xattrs: { 'security.capability': Buffer.from(CAP.slice(2), 'hex').toString('latin1') } }])).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LAYER_UNSUPPORTED', message: expect.stringContaining('security.capability on layer entry "bin/ping": Operation not permitted') });
  });

  test('the same privileges as root: trusted.* and security.capability are set', async () => {
    const dir = await tempDir('root');
    await applyLayer(dir, await layer([{ name: 'bin/ping', body: 'ping', xattrs: { 'trusted.kiln': 't', 'security.capability': Buffer.from(CAP.slice(2), 'hex').toString('latin1') } }]));
    expect(attr(join(dir, 'bin/ping'), 'trusted.kiln')).toBe('t');
    expect(execFileSync('getfattr', ['-h', '-e', 'hex', '--only-values', '-n', 'security.capability', join(dir, 'bin/ping')]).toString('hex')).toBe(CAP.slice(2));
  });
});

describe('ADD archive extraction: BuildKit (moby archive.Untar, BestEffortXattrs) skips EPERM for every name', () => {
  test('trusted.* refused (no CAP_SYS_ADMIN) is skipped; the file is extracted', async () => {
    const src = await tempDir('add-src');
    const dest = await tempDir('add-dest');
    const tar = await layer([{ name: 'pkg/app.conf', body: 'conf', xattrs: { 'trusted.kiln': 't', 'user.ok': 'ok' } }]);
    const chunks: Buffer[] = [];
    for await (const c of tar) chunks.push(c as Buffer);
    await writeFile(join(src, 'a.tar'), Buffer.concat(chunks));
    await setfattrWithout();
    await fileCopy(src, dest, copyAction('/a.tar', '/opt/', { attemptUnpackDockerCompatibility: true, createDestPath: true }));
    expect(await readFile(join(dest, 'opt/pkg/app.conf'), 'utf8')).toBe('conf');
    expect(attr(join(dest, 'opt/pkg/app.conf'), 'user.ok')).toBe('ok');
    expect(attr(join(dest, 'opt/pkg/app.conf'), 'trusted.kiln')).toBeUndefined();
  });
});
