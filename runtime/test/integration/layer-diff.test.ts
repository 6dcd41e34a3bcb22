import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, link, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile, lstat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ContentStore, LocalSnapshotter, exportLayerToStore, unpackLayer, type Snapshotter } from '@kiln/runtime';

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    expect(info.split('\n').filter((l) => (l.split(' ')[4] ?? '').startsWith(r))).toEqual([]);
    await rm(r, { recursive: true, force: true });
  }
});

async function setup(driver: 'overlay' | 'copy'): Promise<{ s: Snapshotter; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-diff-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver });
  await unpackLayer(s, 'base', undefined, createReadStream(BUSYBOX_LAYER));
  await s.prepare('work', 'base');
  const m = await s.mount('work');
  try {
    await writeFile(join(m.path, 'etc/motd'), 'hello\n');
    await link(join(m.path, 'etc/motd'), join(m.path, 'etc/motd.hard'));
    await rm(join(m.path, 'etc/group'));
    await rm(join(m.path, 'home'), { recursive: true });
    await mkdir(join(m.path, 'home'));
    await writeFile(join(m.path, 'home/fresh'), 'f');
    await chmod(join(m.path, 'tmp'), 0o1775);
    await symlink('/etc/motd', join(m.path, 'root/link'));
    await mkdir(join(m.path, 'opt/deep/er'), { recursive: true });
    await writeFile(join(m.path, 'opt/deep/er/x.bin'), Buffer.alloc(600_000, 7));
    const future = new Date('2030-01-01T00:00:00Z');
    await utimes(join(m.path, 'home/fresh'), future, future);
  } finally {
    await m.release();
  }
  return { s, root };
}

function sha256File(p: string): string {
  return `sha256:${execFileSync('sha256sum', [p]).toString().split(' ')[0] ?? ''}`;
}

describe.for(['overlay', 'copy'] as const)('%s driver', (driver) => {
  test('diff writes an OCI layer that real tools read and that reproduces the snapshot', async () => {
    const { s, root } = await setup(driver);
    const out = join(root, 'layer.tar.gz');
    const desc = await s.diff('work', { output: out, sourceDateEpoch: 1_700_000_000 });
    expect(desc.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(desc.digest).toBe(sha256File(out));
    expect(desc.size).toBe((await lstat(out)).size);
    const tarPath = join(root, 'layer.tar');
    execFileSync('sh', ['-c', `gzip -dc ${out} > ${tarPath}`]);
    expect(desc.diffID).toBe(sha256File(tarPath));
    const listing = execFileSync('tar', ['-tvf', tarPath, '--numeric-owner']).toString();
    const names = execFileSync('tar', ['-tf', tarPath]).toString().trim().split('\n');
    expect(names).toEqual([
      'etc/',
      'etc/.wh.group',
      'etc/motd',
      'etc/motd.hard',
      'home/',
      // overlay marks the recreated directory opaque; the copy driver sees a deleted child
      ...(driver === 'overlay' ? ['home/.wh..wh..opq'] : ['home/.wh.app']),
      'home/fresh',
      'opt/',
      'opt/deep/',
      'opt/deep/er/',
      'opt/deep/er/x.bin',
      'root/',
      'root/link',
      'tmp/',
    ]);
    expect(listing).toMatch(/hrw-r--r-- 0\/0 .* etc\/motd.hard link to etc\/motd/);
    expect(listing).toMatch(/drwxrwxr-t 0\/0 .* tmp\//);
    // SOURCE_DATE_EPOCH clamps the 2030 mtime
    expect(listing).toMatch(/2023-11-1[45] \d\d:\d\d home\/fresh/);
    // deterministic
    const again = await s.diff('work', { output: join(root, 'again.tar.gz'), sourceDateEpoch: 1_700_000_000 });
    expect(again.digest).toBe(desc.digest);

    // Apply base + diff with our apply on a fresh snapshotter: same tree as the mounted snapshot.
    const s2 = new LocalSnapshotter({ root: join(root, 'other'), driver });
    await unpackLayer(s2, 'base', undefined, createReadStream(BUSYBOX_LAYER));
    const applied = await unpackLayer(s2, 'top', 'base', createReadStream(out));
    expect(applied.layer.diffID).toBe(desc.diffID);
    const a = await s.mount('work');
    const b = await s2.mount('top');
    try {
      expect(await readdir(join(b.path, 'etc'))).toEqual(await readdir(join(a.path, 'etc')));
      expect(await readdir(join(b.path, 'home'))).toEqual(['fresh']);
      expect(await readFile(join(b.path, 'opt/deep/er/x.bin'))).toEqual(Buffer.alloc(600_000, 7));
      expect((await lstat(join(b.path, 'etc/motd'))).nlink).toBe(2);
    } finally {
      await a.release();
      await b.release();
    }
  });

  test('owners above 262143 survive in the layer (PAX uid/gid records), and apply back', async () => {
    const { s, root } = await setup(driver);
    await s.prepare('owners', 'base');
    const m = await s.mount('owners');
    try {
      await writeFile(join(m.path, 'big-owner'), 'b');
      execFileSync('chown', ['3000000:4000000', join(m.path, 'big-owner')]);
      await writeFile(join(m.path, 'mid-owner'), 'm');
      execFileSync('chown', ['300000:5', join(m.path, 'mid-owner')]);
      await writeFile(join(m.path, 'big-owner-xattr'), 'x');
      execFileSync('chown', ['3000001:3000002', join(m.path, 'big-owner-xattr')]);
      execFileSync('setfattr', ['-n', 'user.kiln', '-v', 'v1', join(m.path, 'big-owner-xattr')]);
    } finally {
      await m.release();
    }
    const out = join(root, 'owners.tar');
    const layer = await s.diff('owners', { output: out, compression: 'none' });
    // A plain tar (tar -t below would gunzip a compressed one unasked): ustar magic at 257.
    expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(layer.digest).toBe(layer.diffID);
    expect((await readFile(out)).subarray(257, 262).toString()).toBe('ustar');
    const listing = execFileSync('tar', ['-tvf', out, '--numeric-owner']).toString();
    expect(listing).toMatch(/ 3000000\/4000000 .* big-owner\n/);
    expect(listing).toMatch(/ 300000\/5 .* mid-owner\n/);
    expect(listing).toMatch(/ 3000001\/3000002 .* big-owner-xattr\n/);
    const s2 = new LocalSnapshotter({ root: join(root, 'owners-other'), driver });
    await unpackLayer(s2, 'base', undefined, createReadStream(BUSYBOX_LAYER));
    await unpackLayer(s2, 'top', 'base', createReadStream(out));
    const b = await s2.mount('top');
    try {
      expect(await lstat(join(b.path, 'big-owner'))).toMatchObject({ uid: 3000000, gid: 4000000 });
      expect(await lstat(join(b.path, 'mid-owner'))).toMatchObject({ uid: 300000, gid: 5 });
      expect(await lstat(join(b.path, 'big-owner-xattr'))).toMatchObject({ uid: 3000001, gid: 3000002 });
      expect(execFileSync('getfattr', ['--only-values', '-n', 'user.kiln', join(b.path, 'big-owner-xattr')]).toString()).toBe('v1');
    } finally {
      await b.release();
    }
  });

  test('a committed snapshot diffs the same as while active, and zstd/none work', async () => {
    const { s, root } = await setup(driver);
    const active = await s.diff('work', { output: join(root, 'a.tar'), compression: 'none' });
    await s.commit('done', 'work');
    const committed = await s.diff('done', { output: join(root, 'c.tar'), compression: 'none' });
    expect(committed.diffID).toBe(active.diffID);
    expect(committed.digest).toBe(committed.diffID);
    const z = await s.diff('done', { output: join(root, 'c.tar.zst'), compression: 'zstd' });
    expect(z.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(z.diffID).toBe(active.diffID);
    expect(z.digest).toBe(sha256File(join(root, 'c.tar.zst')));
  });

  test('exportLayerToStore writes the blob into the content store in one pass', async () => {
    const { s, root } = await setup(driver);
    const store = await ContentStore.open(root);
    const ref = await exportLayerToStore(s, 'work', store, { sourceDateEpoch: 1_700_000_000 });
    const file = store.blobPath(ref.descriptor.digest);
    expect(ref.descriptor.digest).toBe(sha256File(file));
    expect(ref.descriptor.size).toBe((await lstat(file)).size);
    execFileSync('sh', ['-c', `gzip -dc ${file} > ${root}/x.tar`]);
    expect(ref.diffID).toBe(sha256File(`${root}/x.tar`));
    expect(await readdir(join(root, 'content/ingest'))).toEqual([]);
  });

  test('a cancelled diff leaves no file and no mount', async () => {
    const { s, root } = await setup(driver);
    const ac = new AbortController();
    const p = s.diff('work', { output: join(root, 'x.tar.gz'), signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(Error);
    expect((await readdir(root)).filter((n) => n.startsWith('x.tar.gz'))).toEqual([]);
  });
});
