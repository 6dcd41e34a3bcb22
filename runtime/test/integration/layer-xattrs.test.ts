import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter, unpackLayer, type Snapshotter } from '@kiln/runtime';
import { TarReader, type TarEntryHeader } from '../../src/layer/tar-reader.js';

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

for (const tool of ['setcap', 'getcap', 'setfattr', 'getfattr', 'python3', 'tar']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`]);
  } catch {
    throw new Error(`${tool} is needed by this test: apt-get install libcap2-bin attr python3 tar`);
  }
}

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    expect(info.split('\n').filter((l) => (l.split(' ')[4] ?? '').startsWith(r))).toEqual([]);
    await rm(r, { recursive: true, force: true });
  }
});

const LONG_DIR = `deep/${'d'.repeat(90)}/${'e'.repeat(40)}`;
const LONG = `${LONG_DIR}/caps-in-a-long-path-\u00e9`;
/** A value with bytes that are not UTF-8: must arrive byte for byte. */
const BINARY = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x0a, 0x3d]);

function setfattr(path: string, name: string, value: Buffer): void {
  execFileSync('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, path]);
}

async function setup(driver: 'overlay' | 'copy'): Promise<{ s: Snapshotter; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-xattr-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver });
  await unpackLayer(s, 'base', undefined, createReadStream(BUSYBOX_LAYER));
  await s.prepare('work', 'base');
  const m = await s.mount('work');
  try {
    await writeFile(join(m.path, 'bin/rawping'), 'not really ping\n');
    execFileSync('setcap', ['cap_net_raw+ep', join(m.path, 'bin/rawping')]);
    // set out of name order: the layer lists them sorted
    setfattr(join(m.path, 'bin/rawping'), 'user.test', Buffer.from('hello'));
    setfattr(join(m.path, 'bin/rawping'), 'user.bin', BINARY);
    setfattr(join(m.path, 'bin/rawping'), 'trusted.kiln', Buffer.from('t'));
    // busybox itself, copied up by overlayfs: a capability on a file of the lower layer
    execFileSync('setcap', ['cap_net_bind_service+ep', join(m.path, 'bin/busybox')]);
    await writeFile(join(m.path, 'etc/plain'), 'no xattrs\n');
    // an attribute-only change of a directory from the base (its mtime stays)
    setfattr(join(m.path, 'sbin'), 'user.only', Buffer.from('attr'));
    // recreated directory: overlayfs marks it opaque with trusted.overlay.opaque in the upper dir
    await rm(join(m.path, 'home'), { recursive: true });
    await mkdir(join(m.path, 'home'));
    setfattr(join(m.path, 'home'), 'user.dir', Buffer.from('d'));
    await mkdir(join(m.path, LONG_DIR), { recursive: true });
    await writeFile(join(m.path, LONG), 'long\n');
    execFileSync('setcap', ['cap_chown+ep', join(m.path, LONG)]);
  } finally {
    await m.release();
  }
  return { s, root };
}

/** Every entry's SCHILY.xattr records, as TarReader (the runtime's own reader) sees them. */
function readWithTarReader(tar: Buffer): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  const reader = new TarReader({
    entry: (h: TarEntryHeader) => {
      if (h.xattrs === undefined) return;
      out.set(h.name, Object.fromEntries([...h.xattrs].map(([k, v]) => [k, v.toString('hex')])));
    },
    data: () => undefined,
    end: () => undefined,
  });
  reader.push(tar);
  reader.finish();
  return out;
}

/** The same, read by Python's tarfile: records in file order, values as raw bytes (hex). */
function readWithPython(tarPath: string): Record<string, [string, string][]> {
  const script = `
import json, sys, tarfile
out = {}
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        recs = [[k[len('SCHILY.xattr.'):], v.encode('utf-8', 'surrogateescape').hex()] for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')]
        if recs: out[m.name] = recs
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, tarPath]).toString()) as Record<string, [string, string][]>;
}

function getcap(path: string): string {
  return execFileSync('getcap', [path]).toString().trim().split(/\s+/).slice(1).join(' ');
}

function getfattr(path: string, name: string): string {
  return execFileSync('getfattr', ['-h', '--only-values', '-n', name, path], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('hex');
}

const hex = (s: string | Buffer): string => Buffer.from(s).toString('hex');

describe.for(['overlay', 'copy'] as const)('%s driver', (driver) => {
  test('file capabilities and user/trusted xattrs are exported as sorted SCHILY.xattr records and survive a round trip', async () => {
    const { s, root } = await setup(driver);
    const out = join(root, 'layer.tar');
    const desc = await s.diff('work', { output: out, compression: 'none', sourceDateEpoch: 1_700_000_000 });
    const tar = await readFile(out);

    const ours = readWithTarReader(tar);
    const py = readWithPython(out);
    const caps = (path: string): string => ours.get(path)?.['security.capability'] ?? '';
    // VFS_CAP_REVISION_2 with the effective bit; permitted CAP_NET_RAW (13) = bit 13 of the low word
    expect(caps('bin/rawping').slice(0, 8)).toBe('01000002');
    expect(caps('bin/rawping').slice(8, 16)).toBe('00200000');
    expect(ours.get('bin/rawping')).toEqual({
      'security.capability': caps('bin/rawping'),
      'trusted.kiln': hex('t'),
      'user.bin': BINARY.toString('hex'),
      'user.test': hex('hello'),
    });
    // Python reads the same bytes, in byte order of the names
    expect(py['bin/rawping']).toEqual([
      ['security.capability', caps('bin/rawping')],
      ['trusted.kiln', hex('t')],
      ['user.bin', BINARY.toString('hex')],
      ['user.test', hex('hello')],
    ]);
    // attribute-only changes of a file and a directory of the base are changes
    expect(Object.keys(ours.get('bin/busybox') ?? {})).toEqual(['security.capability']);
    expect(py['sbin']).toEqual([['user.only', hex('attr')]]);
    expect(py['home']).toEqual([['user.dir', hex('d')]]);
    expect(ours.get('home/')).toEqual({ 'user.dir': hex('d') });
    // a long, non-ASCII name keeps its path (one PAX header carries path and xattrs)
    expect(Object.keys(py)).toContain(LONG);
    expect(Object.keys(ours.get(LONG) ?? {})).toEqual(['security.capability']);
    // overlayfs's private attributes are in the upper dir, never in the layer
    if (driver === 'overlay') {
      const upper = execFileSync('sh', ['-c', `getfattr -R -h -d -m - --absolute-names ${root} 2>/dev/null | grep -c '^trusted.overlay.' || true`]).toString().trim();
      expect(Number(upper)).toBeGreaterThan(0);
    }
    expect(JSON.stringify([...ours])).not.toMatch(/overlay\./);
    expect(JSON.stringify(py)).not.toMatch(/overlay\./);
    // entries without xattrs get no PAX header at all
    expect(ours.has('etc/plain')).toBe(false);
    expect(Object.keys(py).sort()).toEqual(['bin/busybox', 'bin/rawping', 'home', 'sbin', LONG].sort());
    expect(execFileSync('tar', ['-tf', out]).toString().split('\n').filter((n) => n.startsWith('sbin'))).toEqual(['sbin/']);

    // GNU tar applies them too
    const gnu = join(root, 'gnu');
    await mkdir(gnu);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xf', out, '-C', gnu]);
    expect(getcap(join(gnu, 'bin/rawping'))).toBe('cap_net_raw=ep');
    expect(getfattr(join(gnu, 'bin/rawping'), 'user.bin')).toBe(BINARY.toString('hex'));

    // the runtime's own apply, on a fresh snapshotter: the capability works again
    const s2 = new LocalSnapshotter({ root: join(root, 'other'), driver });
    await unpackLayer(s2, 'base', undefined, createReadStream(BUSYBOX_LAYER));
    const applied = await unpackLayer(s2, 'top', 'base', createReadStream(out));
    expect(applied.layer.diffID).toBe(desc.diffID);
    const m = await s2.mount('top');
    try {
      expect(getcap(join(m.path, 'bin/rawping'))).toBe('cap_net_raw=ep');
      expect(getcap(join(m.path, 'bin/busybox'))).toBe('cap_net_bind_service=ep');
      expect(getfattr(join(m.path, 'sbin'), 'user.only')).toBe(hex('attr'));
      expect(getcap(join(m.path, LONG))).toBe('cap_chown=ep');
      expect(getfattr(join(m.path, 'bin/rawping'), 'user.test')).toBe(hex('hello'));
      expect(getfattr(join(m.path, 'bin/rawping'), 'user.bin')).toBe(BINARY.toString('hex'));
      expect(getfattr(join(m.path, 'bin/rawping'), 'trusted.kiln')).toBe(hex('t'));
      expect(getfattr(join(m.path, 'home'), 'user.dir')).toBe(hex('d'));
    } finally {
      await m.release();
    }

    // same tree, same bytes: gzip layers too
    const a = await s.diff('work', { output: join(root, 'a.tar.gz'), sourceDateEpoch: 1_700_000_000 });
    const b = await s.diff('work', { output: join(root, 'b.tar.gz'), sourceDateEpoch: 1_700_000_000 });
    expect(b.digest).toBe(a.digest);
    expect(a.diffID).toBe(desc.diffID);
  });
});

test('a tree without xattrs is written without any PAX header, as before', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-xattr-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver: 'copy' });
  await s.prepare('work', undefined);
  const m = await s.mount('work');
  const t = new Date('2020-01-01T00:00:00Z');
  try {
    await mkdir(join(m.path, 'd'));
    for (let i = 0; i < 600; i++) await writeFile(join(m.path, 'd', `f${i}`), `${i}\n`);
    for (let i = 0; i < 600; i++) await utimes(join(m.path, 'd', `f${i}`), t, t);
    await utimes(join(m.path, 'd'), t, t);
  } finally {
    await m.release();
  }
  const out = join(root, 'l.tar');
  await s.diff('work', { output: out, compression: 'none' });
  const tar = await readFile(out);
  // every header block: typeflag '0' or '5' (no 'x'): ustar blocks only
  const flags = new Set<string>();
  for (let off = 0; off + 512 <= tar.length; ) {
    const block = tar.subarray(off, off + 512);
    if (block.every((b) => b === 0)) break;
    flags.add(String.fromCharCode(block[156] ?? 0));
    const size = parseInt(block.toString('ascii', 124, 136).replace(/\0.*$/, ''), 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  expect([...flags].sort()).toEqual(['0', '5']);
  expect(readWithPython(out)).toEqual({});
  expect(execFileSync('tar', ['-tf', out]).toString().split('\n').length).toBe(602);
});
