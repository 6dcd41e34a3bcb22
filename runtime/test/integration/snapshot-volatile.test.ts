import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';

// With KILN_OVERLAY_VOLATILE=1, writable overlays are mounted volatile (no sync of the whole upper
// filesystem at unmount) when the kernel accepts it; an active snapshot can still be mounted
// twice. Without it (the default) they are plain: that sync makes committed data durable.

test('KILN_OVERLAY_VOLATILE=1: writable overlays are mounted volatile once the probe accepted it; a second mount of the same active works; data survives commit; plain by default', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-volatile-'));
  const saved = process.env['KILN_OVERLAY_VOLATILE'];
  try {
    process.env['KILN_OVERLAY_VOLATILE'] = '1';
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
    // Looked at on the host, then mounted by someone else from mounts() (as runc does).
    const { mountAt, unmount } = await import('../../src/snapshot/mount.js');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(root, 'runc-like'));
    for (const round of [3, 4]) {
      const [again] = await s.mounts('child-a');
      if (again === undefined) throw new Error('no mount');
      await mountAt(again, join(root, 'runc-like'));
      await writeFile(join(root, 'runc-like', `f${round}.txt`), `round ${round}`);
      await unmount(join(root, 'runc-like'));
    }
    await s.commit('child', 'child-a');
    const ro = await s.mount('child');
    try {
      expect(await readFile(join(ro.path, 'f1.txt'), 'utf8')).toBe('round 1');
      expect(await readFile(join(ro.path, 'f2.txt'), 'utf8')).toBe('round 2');
      expect(await readFile(join(ro.path, 'f4.txt'), 'utf8')).toBe('round 4');
      expect(await readFile(join(ro.path, 'base.txt'), 'utf8')).toBe('base');
    } finally {
      await ro.release();
    }
    // The default (no option, no environment): plain mounts.
    delete process.env['KILN_OVERLAY_VOLATILE'];
    const plain = new LocalSnapshotter({ root, driver: 'overlay' });
    await plain.prepare('other-a', 'base');
    expect((await plain.mounts('other-a'))[0]?.options).not.toContain('volatile');
    expect(await plain.volatileMounts()).toBe(false);
  } finally {
    if (saved === undefined) delete process.env['KILN_OVERLAY_VOLATILE'];
    else process.env['KILN_OVERLAY_VOLATILE'] = saved;
    await rm(root, { recursive: true, force: true });
  }
});
