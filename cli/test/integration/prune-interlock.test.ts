import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KilnEngine } from '../../src/engine/engine.js';
import { compileCli, kilnBin, requireTools } from './build-helpers.js';

const run = promisify(execFile);
let root: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  root = await mkdtemp(join(tmpdir(), 'kiln-prune-'));
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `kiln prune --root ROOT`: exit code and stderr. */
async function prune(): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run(process.execPath, [kilnBin, 'prune', '--root', root]);
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

test('kiln prune refuses while a build of another process is marked in the root, and runs once it ends', async () => {
  const engine = await KilnEngine.open({ root });
  await engine.activity.begin();
  const refused = await prune();
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`a build is running in this kiln root (pid ${process.pid})`);
  expect(refused.stderr).toContain('KLN0708');
  engine.close();
  expect((await prune()).code).toBe(0);
});

test('the mark of a process that died (SIGKILL) does not block prune', async () => {
  const dead = 2 ** 22 + 17; // above the default pid_max of 4194304: never a live process
  await mkdir(join(root, 'engine', 'active'), { recursive: true });
  await writeFile(join(root, 'engine', 'active', String(dead)), '');
  expect((await prune()).code).toBe(0);
});

test('a snapshot an earlier prune could not remove is shown by kiln du as pending removal, and removed when an engine opens', async () => {
  const { CacheStore } = await import('@kiln/solver');
  const { diskUsage, renderUsage } = await import('../../src/commands/du.js');
  const pendingRoot = await mkdtemp(join(tmpdir(), 'kiln-pending-'));
  try {
    // A prune whose removal failed (the snapshot was busy) leaves the record pending.
    const store = CacheStore.open({ path: join(pendingRoot, 'cache', 'solver.db'), releaseSnapshot: () => Promise.reject(new Error('EBUSY')) });
    store.upsertRecord({ snapshot: 'snap-busy', description: 'RUN make', kind: 'regular' });
    expect(await store.prune({ all: true })).toEqual([]);
    store.close();
    const rows = await diskUsage(pendingRoot);
    expect(rows).toEqual([expect.objectContaining({ id: 'snap-busy', pendingRemoval: true })]);
    expect(renderUsage(rows, false)).toMatch(/snap-busy\s+pending removal/);
    // While another live process builds in the root, opening an engine leaves it alone: that
    // build may be recording the same snapshot id again.
    const builder = spawn('sleep', ['30'], { stdio: 'ignore' });
    const mark = join(pendingRoot, 'engine', 'active', String(builder.pid));
    await mkdir(dirname(mark), { recursive: true });
    await writeFile(mark, '');
    try {
      (await KilnEngine.open({ root: pendingRoot })).close();
      expect(await diskUsage(pendingRoot)).toEqual([expect.objectContaining({ id: 'snap-busy', pendingRemoval: true })]);
    } finally {
      builder.kill();
    }
    await rm(mark);
    // The next engine to open the root retries it (here the snapshot is already gone: done).
    const engine = await KilnEngine.open({ root: pendingRoot });
    engine.close();
    expect(await diskUsage(pendingRoot)).toEqual([]);
  } finally {
    await rm(pendingRoot, { recursive: true, force: true });
  }
});
