import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';
import { SnapshotRef } from '../../src/engine/snapshot-ref.js';

// The gateway reads solved results (the Dockerfile, ignore files) through SnapshotRef: paths must
// resolve inside the snapshot whatever its symlinks say, as BuildKit's ReadFile does.
let dir: string;
let ref: SnapshotRef;
let layered: SnapshotRef;
let released = 0;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('mounting snapshots needs root');
  dir = await mkdtemp(join(tmpdir(), 'kiln-snapref-'));
  const s = new LocalSnapshotter({ root: join(dir, 'root') });
  await s.prepare('active');
  const m = await s.mount('active');
  try {
    await writeFile(join(m.path, 'a.txt'), 'inside\n');
    await mkdir(join(m.path, 'sub'));
    await writeFile(join(m.path, 'sub', 'b.txt'), 'bee\n');
    await symlink('/a.txt', join(m.path, 'abs'));
    await symlink('../../../../../../etc/hostname', join(m.path, 'escape'));
    await symlink('sub', join(m.path, 'subdir'));
  } finally {
    await m.release();
  }
  await s.commit('snap', 'active');
  ref = new SnapshotRef(s, 'snap', () => void released++);
  await s.prepare('active2', 'snap');
  const m2 = await s.mount('active2');
  try {
    await writeFile(join(m2.path, 'top.txt'), 'top\n');
  } finally {
    await m2.release();
  }
  await s.commit('snap2', 'active2');
  layered = new SnapshotRef(s, 'snap2', () => undefined);
});

afterAll(async () => {
  await ref?.release();
  await layered?.release();
  await rm(dir, { recursive: true, force: true });
});

describe('SnapshotRef', () => {
  test('readFile follows symlinks inside the snapshot only; byte ranges', async () => {
    expect(new TextDecoder().decode(await ref.readFile('abs'))).toBe('inside\n');
    expect(new TextDecoder().decode(await ref.readFile('/subdir/b.txt'))).toBe('bee\n');
    expect(new TextDecoder().decode(await ref.readFile('a.txt', { offset: 2, length: 3 }))).toBe('sid');
    await expect(ref.readFile('escape')).rejects.toMatchObject({ code: 'KLN0701' });
    await expect(ref.readFile('../../../etc/hostname')).rejects.toMatchObject({ code: 'KLN0701' });
    await expect(ref.readFile('sub')).rejects.toMatchObject({ code: 'KLN0701' });
  });

  test('readDir and statFile report Go FileMode bits and link targets', async () => {
    const entries = await ref.readDir('/');
    expect(entries.map((e) => e.path)).toEqual(['a.txt', 'abs', 'escape', 'sub', 'subdir']);
    const byName = new Map(entries.map((e) => [e.path, e]));
    expect(byName.get('sub')?.mode).toBe(2 ** 31 + 0o755);
    expect(byName.get('abs')?.linkname).toBe('/a.txt');
    expect(byName.get('a.txt')?.size).toBe(7);
    expect((await ref.readDir('/', '*.txt')).map((e) => e.path)).toEqual(['a.txt']);
    const st = await ref.statFile('subdir');
    expect(st.mode & 2 ** 27).toBe(2 ** 27);
    expect(st.linkname).toBe('sub');
  });

  test('a layered snapshot is mounted (both layers visible) and unmounted on release; the lease ends once', async () => {
    expect(new TextDecoder().decode(await layered.readFile('top.txt'))).toBe('top\n');
    expect(new TextDecoder().decode(await layered.readFile('abs'))).toBe('inside\n');
    const path = await layered.path();
    expect(path).toContain(join(dir, 'root', 'mounts'));
    expect(await readFile('/proc/self/mounts', 'utf8')).toContain(path);
    await layered.release();
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(path);
    // A single-layer snapshot is read in place (no mount), inside the kiln root.
    expect(await ref.path()).toContain(join(dir, 'root', 'snapshots'));
    await ref.release();
    await ref.release();
    expect(released).toBe(1);
    await expect(ref.path()).rejects.toThrow(/after release/);
  });
});
