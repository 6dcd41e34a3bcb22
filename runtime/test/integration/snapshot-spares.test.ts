import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';

// Prepare takes a snapshot directory made ahead (while the previous step ran) instead of making
// three directories on its way; spares are never a snapshot, survive recover(), and go when the
// process exits.

const runtimeDist = new URL('../../dist/index.js', import.meta.url).pathname;

/** Snapshot directories (8 hex chars) under the root, and which of them have a meta.json. */
function dirs(root: string): { all: string[]; withMeta: string[] } {
  const all = readdirSync(join(root, 'snapshots')).filter((d) => /^[0-9a-f]{8}$/.test(d));
  return { all: all.sort(), withMeta: all.filter((d) => existsSync(join(root, 'snapshots', d, 'meta.json'))).sort() };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

test('prepare uses a spare directory made after the previous prepare; spares are no snapshots and survive recover()', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-spares-'));
  try {
    const s = new LocalSnapshotter({ root, driver: 'overlay' });
    await s.prepare('a-active');
    expect(dirs(root).all).toHaveLength(1); // nothing made ahead yet: made on the way
    await settle();
    const before = dirs(root);
    expect(before.all).toHaveLength(3); // two spares, made after the prepare returned
    expect(before.withMeta).toHaveLength(1);
    const spares = before.all.filter((d) => !before.withMeta.includes(d));
    for (const d of spares) expect(readdirSync(join(root, 'snapshots', d)).sort()).toEqual(['fs', 'work']);

    await s.commit('a', 'a-active');
    await s.prepare('b-active', 'a');
    const after = dirs(root);
    // b-active lives in one of the spares: no directory was made on the way.
    expect(after.all).toEqual(before.all);
    expect(after.withMeta).toHaveLength(2);
    expect(spares).toContain(after.withMeta.find((d) => !before.withMeta.includes(d)));
    expect((await s.list()).map((i) => i.id).sort()).toEqual(['a', 'b-active']);

    await settle();
    const refilled = dirs(root);
    expect(refilled.all).toHaveLength(4);
    // recover() keeps this process's spares (and every snapshot).
    await s.recover({ olderThanMs: 0 });
    expect(dirs(root).all).toEqual(refilled.all);
    await s.prepare('c-active', 'a');
    expect(dirs(root).withMeta).toHaveLength(3);
    expect(dirs(root).all).toEqual(refilled.all);
    s.dropSpares();
    expect(dirs(root).all).toHaveLength(3);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('spare directories are removed when the process exits', async () => {
  if (!existsSync(runtimeDist)) throw new Error('build first: npm run build (the child process runs runtime/dist)');
  const root = await mkdtemp(join(tmpdir(), 'kiln-spares-exit-'));
  try {
    const script = `import { LocalSnapshotter } from ${JSON.stringify(runtimeDist)};
      const s = new LocalSnapshotter({ root: ${JSON.stringify(root)}, driver: 'overlay' });
      await s.prepare('x-active');
      await new Promise((r) => setTimeout(r, 50));
      const n = (await import('node:fs')).readdirSync(${JSON.stringify(join(root, 'snapshots'))}).filter((d) => /^[0-9a-f]{8}$/.test(d)).length;
      console.log(n);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(Number(out.trim())).toBe(3); // the snapshot and two spares while it ran
    const left = dirs(root);
    expect(left.all).toEqual(left.withMeta); // only the snapshot is left
    expect(left.all).toHaveLength(1);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('writable overlays are mounted volatile once the probe accepted it; a second mount of the same active works; data survives commit', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-volatile-'));
  try {
    const s = new LocalSnapshotter({ root, driver: 'overlay' });
    expect(await s.volatileMounts()).toBe(true); // Linux 5.10+ (this machine's kernel)
    const { writeFile, readFile } = await import('node:fs/promises');
    await s.prepare('base-a');
    await writeFile(join((await s.mounts('base-a'))[0]?.source ?? '', 'base.txt'), 'base');
    await s.commit('base', 'base-a');
    await s.prepare('child-a', 'base');
    const [m] = await s.mounts('child-a');
    expect(m?.options).toContain('volatile');
    for (const round of [1, 2]) {
      const mounted = await s.mount('child-a');
      await writeFile(join(mounted.path, `f${round}.txt`), `round ${round}`);
      await mounted.release();
    }
    await s.commit('child', 'child-a');
    const ro = await s.mount('child');
    try {
      expect(await readFile(join(ro.path, 'f1.txt'), 'utf8')).toBe('round 1');
      expect(await readFile(join(ro.path, 'f2.txt'), 'utf8')).toBe('round 2');
      expect(await readFile(join(ro.path, 'base.txt'), 'utf8')).toBe('base');
    } finally {
      await ro.release();
    }
    // Forced off: plain mounts.
    const plain = new LocalSnapshotter({ root, driver: 'overlay', volatile: false });
    await plain.prepare('other-a', 'base');
    expect((await plain.mounts('other-a'))[0]?.options).not.toContain('volatile');
    expect(await plain.volatileMounts()).toBe(false);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
