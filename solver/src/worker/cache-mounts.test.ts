import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CacheSharingOpt } from '@kiln/llb-core';
import { CacheMounts } from './cache-mounts.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-cachemounts-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('CacheMounts ids', () => {
  test('ids from a raw LLB never leave the cache mounts root or collide with lock/marker names', async () => {
    const cm = new CacheMounts(root);
    const base = join(root, 'solver', 'cachemounts');
    const ids = ['.', '..', '../..', 'a/../..', '/root/.npm', 'x', 'x.lock', 'x.users', 'x.private-1'];
    const dirs = ids.map((id) => cm.dirOf(id));
    for (const d of dirs) expect(dirname(d)).toBe(base);
    expect(new Set(dirs).size).toBe(ids.length);
    for (const id of ids) {
      const c = await cm.acquire(id, CacheSharingOpt.SHARED);
      expect(dirname(c.dir)).toBe(base);
      await c.release();
    }
    // Each id got its own directory, plus one `.users` marker dir and one `.lock` at most per id.
    const names = await readdir(base);
    expect(names.filter((n) => !n.endsWith('.users') && !n.endsWith('.lock')).length).toBe(ids.length);
    expect(names).not.toContain('solver');
  });

  test('a new cache is seeded under the lock: a concurrent user never sees it half-seeded; a failed seed leaves nothing', async () => {
    const cm = new CacheMounts(root, { pollMs: 5 });
    const seed = async (dir: string): Promise<void> => {
      await writeFile(join(dir, 'a'), 'a');
      await new Promise((r) => setTimeout(r, 200));
      await writeFile(join(dir, 'b'), 'b');
    };
    const [one, two] = await Promise.all([cm.acquire('seeded', CacheSharingOpt.SHARED, undefined, seed), cm.acquire('seeded', CacheSharingOpt.SHARED, undefined, seed)]);
    expect([one.created, two.created].sort()).toEqual([false, true]);
    expect((await readdir(two.dir)).sort()).toEqual(['a', 'b']);
    expect((await readdir(one.dir)).sort()).toEqual(['a', 'b']);
    await one.release();
    await two.release();
    await expect(cm.acquire('broken', CacheSharingOpt.SHARED, undefined, async () => { throw new Error('seed failed'); })).rejects.toThrow('seed failed');
    expect((await readdir(join(root, 'solver', 'cachemounts'))).filter((n) => n === 'broken')).toEqual([]);
  });

  test('prune(id) empties every directory of that id (seeded ones too) that no running build uses', async () => {
    const cm = new CacheMounts(root);
    const base = join(root, 'solver', 'cachemounts');
    for (const id of ['npm', 'npm:snap-1', 'npmx']) {
      const c = await cm.acquire(id, CacheSharingOpt.SHARED);
      await writeFile(join(c.dir, 'f'), id);
      await c.release();
    }
    const busy = await cm.acquire('npm:snap-2', CacheSharingOpt.SHARED);
    await writeFile(join(busy.dir, 'f'), 'busy');
    await cm.prune('npm');
    const left = (await readdir(base)).filter((n) => !n.endsWith('.users') && !n.endsWith('.lock'));
    expect(left.filter((n) => n.startsWith('npm')).sort()).toEqual([cm.dirOf('npm:snap-2'), cm.dirOf('npmx')].map((d) => d.slice(base.length + 1)).sort());
    const again = await cm.acquire('npm', CacheSharingOpt.SHARED);
    expect(again.created).toBe(true);
    expect(await readdir(again.dir)).toEqual([]);
    await again.release();
    await busy.release();
  });
});
