import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
});

// The cache store passes its stillUnused() as `confirm`: asked after every await of the removal,
// right before the id is given up, so a build that records the snapshot meanwhile keeps it.
test('remove asks confirm after its awaits, right before giving the id up; false keeps the snapshot', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-snap-confirm-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver: 'copy' });
  await s.prepare('w', undefined);
  await s.commit('layer-x', 'w');
  let asked = 0;
  let unused = true;
  const removing = s.remove('layer-x', {
    confirm: () => {
      asked++;
      return unused;
    },
  });
  // A build records it again while the removal is on its way (before its last await returned).
  unused = false;
  await expect(removing).rejects.toMatchObject({ code: 'SNAPSHOT_STATE', message: expect.stringContaining('in use again') });
  expect(asked).toBe(1);
  expect((await s.stat('layer-x')).kind).toBe('committed');
  expect((await readdir(join(root, 'snapshots'), { recursive: true })).some((n) => n.includes('.removing'))).toBe(false);
  // Unused again: removed.
  unused = true;
  await s.remove('layer-x', { confirm: () => unused });
  await expect(s.stat('layer-x')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
  // Without confirm, as before.
  await s.prepare('w2', undefined);
  await s.commit('y', 'w2');
  await s.remove('y');
  await expect(s.stat('y')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
});
