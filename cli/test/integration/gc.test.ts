/**
 * Build cache GC through the CLI on real runc: `kiln prune --filter until=…|type=…`,
 * `kiln du --filter`, and the automatic GC after builds (process mode and `kiln daemon`).
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { CacheStore } from '@kiln/solver';
import { runKiln, runKilnInProcess, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const MB = 1024 * 1024;
/** The prune tests decide what goes: no automatic GC in their builds. */
const NO_GC = { KILN_GC_KEEP_STORAGE: 'off' };

async function build(name: string, dockerfile: string, env: Record<string, string> = NO_GC): Promise<{ r: KilnRun; out: string }> {
  const ctx = join(sb.dir, name);
  const out = join(sb.dir, `${name}-out`);
  await writeTree(ctx, { Dockerfile: dockerfile });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`], { env });
  expect(r.stderr).not.toContain('ERROR');
  expect(r.code).toBe(0);
  return { r, out };
}

async function kiln(args: string[]): Promise<string> {
  const r = await runKiln(sb, [...args, '--root', sb.root], { env: NO_GC });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/**
 * `kiln ARGS --root ROOT` through the CLI's main in this process: the same command without a
 * Node start-up, for the until= test, whose new record must stay younger than the filter's
 * duration from its build until prune has read the clock.
 */
async function kilnIn(args: string[]): Promise<string> {
  const r = await runKilnInProcess(sb, [...args, '--root', sb.root], { env: NO_GC });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** The cache's total as `kiln du` counts it (records and snapshots pending removal). */
function cacheTotal(): number {
  const store = CacheStore.open({ path: join(sb.root, 'cache', 'solver.db') });
  try {
    return store.totalSize();
  } finally {
    store.close();
  }
}

describe('kiln prune / du filters', { timeout: 180_000 }, () => {
  test('--filter until=3s removes only records unused for 3 s; du --filter until shows the same', async () => {
    const t = token();
    await build('old', `FROM busybox\nRUN echo old-${t} > /old.txt\n`);
    // The old record is older than the sleep; the new one is younger than 3 s until prune has read
    // the clock: the end of its build, then du and prune in this process (no Node start-ups),
    // well under 3 s also on a loaded machine. Their modules load during the sleep, not after
    // the new build (a first run in this process would import them).
    await Promise.all([sleep(3500), import('../../src/main.js'), import('../../src/commands/du.js'), import('../../src/commands/prune.js')]);
    await build('new', `FROM busybox\nRUN echo new-${t} > /new.txt\n`);
    const du = await kilnIn(['du', '-v', '--filter', 'until=3s']);
    expect(du).toContain(`old-${t}`);
    expect(du).not.toContain(`new-${t}`);
    expect(du).toMatch(/Reclaimable:\t.*\nTotal:\t\t/);
    const removed = await kilnIn(['prune', '-v', '--filter', 'until=3s']);
    expect(removed).toContain(`old-${t}`);
    expect(removed).not.toContain(`new-${t}`);
    const after = await kiln(['du', '-v']);
    expect(after).not.toContain(`old-${t}`);
    expect(after).toContain(`new-${t}`);
    // --keep-duration (buildctl) is the same: the new record is 0 s old, 1h keeps it.
    expect(await kiln(['prune', '-v', '--keep-duration', '1h'])).not.toContain(`new-${t}`);
    expect(await kiln(['du', '-v'])).toContain(`new-${t}`);
  });

  test('--filter type=exec.cachemount removes only cache mounts; the build is still cached after', async () => {
    const t = token();
    const df = `FROM busybox\nRUN --mount=type=cache,id=gc-${t},target=/c sh -c 'echo cached-${t} >> /c/log; cp /c/log /log.txt'\nRUN echo plain-${t} > /plain.txt\n`;
    await build('mounts', df);
    const mounts = await kiln(['du', '-v', '--filter', 'type=exec.cachemount']);
    expect(mounts).toContain(`cache mount /gc-${t}`);
    expect(mounts).not.toContain(`plain-${t}`);
    const removed = (await kiln(['prune', '-v', '--filter', 'type=exec.cachemount'])).split('\n').filter((l) => l.includes('\t') && !l.startsWith('Total:'));
    expect(removed.length).toBeGreaterThan(0);
    // Only cache mounts (content-store blobs nothing refers to may go with any prune).
    for (const line of removed) expect(line).toMatch(/^(cachemount:|content \()/);
    expect(removed.some((l) => l.includes(`cache mount /gc-${t}`))).toBe(true);
    const du = await kiln(['du', '-v']);
    expect(du).not.toContain(`cache mount /gc-${t}`);
    expect(du).toContain(`plain-${t}`);
    expect(du).toContain(`mount=type=cache,id=gc-${t}`); // the RUN's result stays
    // The results were kept: a rebuild runs no container.
    const before = await sb.containersStarted();
    await build('mounts', df);
    expect(await sb.containersStarted()).toBe(before);
  });

  test('prune --all removes the local-context mirrors with the last source.local record (du listed neither); a rebuild sends the context again', async () => {
    const t = token();
    const ctx = join(sb.dir, `mirror-${t}`);
    const out = join(sb.dir, `mirror-${t}-out`);
    await writeTree(ctx, { Dockerfile: 'FROM busybox\nCOPY f /f\n', f: `ctx-${t}\n` });
    const run = (): Promise<KilnRun> => runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=local,dest=${out}`], { env: NO_GC });
    expect((await run()).code).toBe(0);
    const mirrors = async (): Promise<string[]> => (await readdir(join(sb.root, 'solver', 'local')).catch(() => [])).filter((n) => !n.endsWith('.lock'));
    expect((await mirrors()).length).toBeGreaterThan(0);
    expect(await kiln(['prune', '--all', '-v'])).toMatch(/^local context mirrors\t/m);
    expect(await mirrors()).toEqual([]);
    await rm(out, { recursive: true });
    expect((await run()).code).toBe(0);
    expect(await readFile(join(out, 'f'), 'utf8')).toBe(`ctx-${t}\n`);
  });

  test('a bad filter or duration is KLN0707 with a hint', async () => {
    // One as a process (the exit code a user sees), the others through main in this process.
    const first = await runKiln(sb, ['prune', '--filter', 'type=cachemount', '--root', sb.root]);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain('KLN0707');
    expect(first.stderr).toContain('hint: use one of regular, source.local, exec.cachemount');
    for (const args of [['--filter', 'until=2d'], ['--keep-duration', '48']]) {
      const r = await runKilnInProcess(sb, ['prune', ...args, '--root', sb.root]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('KLN0707');
      expect(r.stderr).toContain('hint: a Go duration such as 24h');
    }
  });
});

describe('automatic GC after builds', { timeout: 240_000 }, () => {
  test('process mode: KILN_GC_KEEP_STORAGE=1MB keeps the cache under 1 MB after the build; the output was delivered; a rebuild works', async () => {
    const t = token();
    const df = `FROM busybox\nRUN head -c 3000000 /dev/urandom > /big.bin && echo ${t} > /t.txt\n`;
    // Without the GC the record stays (over 1 MB).
    await build('big-off', `FROM busybox\nRUN head -c 3000000 /dev/urandom > /big.bin && echo off-${t} > /t.txt\n`);
    expect(cacheTotal()).toBeGreaterThan(3_000_000);
    const { out } = await build('big', df, { KILN_GC_KEEP_STORAGE: '1MB' });
    expect((await readFile(join(out, 'big.bin'))).length).toBe(3_000_000);
    expect(cacheTotal()).toBeLessThanOrEqual(MB);
    expect(await kiln(['du', '-v'])).not.toContain(`off-${t}`);
    // The rebuild finds nothing cached (the GC removed it) and runs the RUN again, fine.
    const before = await sb.containersStarted();
    const again = await build('big', df, { KILN_GC_KEEP_STORAGE: '1MB' });
    expect(await sb.containersStarted()).toBe(before + 1);
    expect((await readFile(join(again.out, 't.txt'), 'utf8')).trim()).toBe(t);
    expect(cacheTotal()).toBeLessThanOrEqual(MB);
  });

  test('kiln bake in its own process collects after its builds as kiln build does', async () => {
    const t = token();
    await build('bake-off', `FROM busybox\nRUN head -c 3000000 /dev/urandom > /big.bin && echo bake-off-${t} > /t.txt\n`);
    expect(cacheTotal()).toBeGreaterThan(3_000_000);
    const dir = join(sb.dir, `bake-${t}`);
    await writeTree(dir, { Dockerfile: `FROM busybox\nRUN echo bake-${t} > /b.txt\n`, 'docker-bake.json': JSON.stringify({ target: { default: { output: [`type=local,dest=${join(dir, 'out')}`] } } }) });
    const r = await runKiln(sb, ['bake', '--root', sb.root, '--progress', 'quiet'], { env: { KILN_GC_KEEP_STORAGE: '1MB' }, cwd: dir });
    expect(r.code).toBe(0);
    expect((await readFile(join(dir, 'out', 'b.txt'), 'utf8')).trim()).toBe(`bake-${t}`);
    expect(cacheTotal()).toBeLessThanOrEqual(MB);
    expect(await kiln(['du', '-v'])).not.toContain(`bake-off-${t}`);
  });

  test('under the limit nothing is removed (default policy)', async () => {
    const t = token();
    await build('small', `FROM busybox\nRUN echo small-${t} > /s.txt\n`, {});
    expect(await kiln(['du', '-v'])).toContain(`small-${t}`);
  });

  test('kiln daemon --gc-keep-storage 1MB: collects after the client has its answer', async () => {
    const socket = join(sb.dir, `gc-${token()}`, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`, '--gc-keep-storage', '1MB'], NO_GC);
    try {
      expect(d.log()).toContain('automatic GC keeps the cache under 1.05MB'); // 1MB = 1 MiB, printed in decimal units
      const t = token();
      const ctx = join(sb.dir, `daemon-${t}`);
      await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN head -c 2000000 /dev/urandom > /big.bin && echo ${t} > /t.txt\n` });
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${ctx}-out`], { env: { KILN_HOST: `unix://${socket}` } });
      expect(r.code).toBe(0);
      expect((await readFile(join(`${ctx}-out`, 't.txt'), 'utf8')).trim()).toBe(t);
      for (let i = 0; i < 100 && !d.log().includes('gc: removed'); i++) await sleep(100);
      expect(d.log()).toMatch(/build: client pid \d+ → exit 0[^\n]*\nkiln daemon: gc: removed \d+ records/);
      expect(cacheTotal()).toBeLessThanOrEqual(MB);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });
});
