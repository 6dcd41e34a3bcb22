/**
 * `RUN --mount=type=cache` through the CLI on real runc: persistence across builds (each build
 * is a new process, so this is also a restart), ids, mode/uid/gid, `from`+`source` seeding,
 * readonly, the exported image, `kiln du` / `kiln prune`, and the three sharing modes shown with
 * two `kiln build` processes running at once, by what each container found in the files.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { kilnBin, type KilnSandbox, runKiln, token, useSandbox, writeTree } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const read = (dir: string, p: string): Promise<string> => readFile(join(dir, p), 'utf8');
const lines = (s: string): string[] => s.split('\n').filter(Boolean);

async function build(name: string, dockerfile: string, extra: readonly string[] = []) {
  const ctx = join(sb.dir, `${name}-${token()}`);
  await writeTree(ctx, { Dockerfile: dockerfile });
  const out = `${ctx}-out`;
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra]);
  if (r.code !== 0) throw new Error(`kiln build ${name} failed (${r.code}):\n${r.stderr}`);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return { out, ctx, r };
}

/**
 * A build that waits for its twin at a rendezvous (`/r`, a shared cache) and then enters a cache
 * mount `/c` with `sharing`: it logs `ME-in`/`ME-out` into `/c/log`, marks `/r/ME-in` while inside,
 * and reports whether it saw the other one inside (`saw`) or waited in vain (`alone`). The waits
 * are bounded; the evidence is what the files hold, not how long anything took.
 */
function twinDockerfile(t: string, sharing: string): string {
  const w = 'w() { i=0; while [ ! -e "$1" ] && [ $i -lt $2 ]; do sleep 0.1; i=$((i+1)); done; }';
  return [
    'FROM busybox',
    'ARG ME',
    'ARG OTHER',
    `RUN --mount=type=cache,id=r-${t},target=/r touch /r/$ME-ready`,
    `RUN --mount=type=cache,id=c-${t},target=/c,sharing=${sharing} --mount=type=cache,id=r-${t},target=/r sh -c '${w}; ` +
      'echo $ME-in >> /c/log; touch /r/$ME-in; w /r/$OTHER-ready 600; w /r/$OTHER-in 80; ' +
      '(test -e /r/$OTHER-in && echo saw || echo alone) > /report.txt; echo $ME-out >> /c/log; cp /c/log /log.txt\'',
    '',
  ].join('\n');
}

/** Runs the twin build as two concurrent `kiln build` processes (A and B); then reads `/c` back. */
async function twins(sharing: string) {
  const t = token();
  const ctx = join(sb.dir, `twins-${sharing}-${t}`);
  await writeTree(ctx, { Dockerfile: twinDockerfile(t, sharing) });
  const run = (me: string, other: string) =>
    runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--build-arg', `ME=${me}`, '--build-arg', `OTHER=${other}`, '--output', `type=local,dest=${ctx}-${me}`]);
  const [a, b] = await Promise.all([run('A', 'B'), run('B', 'A')]);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  const after = await build(`twins-after-${sharing}`, `FROM busybox\nRUN --mount=type=cache,id=c-${t},target=/c,sharing=shared cp /c/log /final.txt # ${token()}\n`);
  return {
    A: { report: (await read(`${ctx}-A`, 'report.txt')).trim(), log: lines(await read(`${ctx}-A`, 'log.txt')) },
    B: { report: (await read(`${ctx}-B`, 'report.txt')).trim(), log: lines(await read(`${ctx}-B`, 'log.txt')) },
    final: lines(await read(after.out, 'final.txt')),
  };
}

describe('RUN --mount=type=cache', { timeout: 180_000 }, () => {
  test('persists across builds (new processes) by id, default id = target; mode/uid/gid; from+source seeding; readonly; never in the image', async () => {
    const t = token();
    const first = await build(
      'cache1',
      [
        'FROM busybox AS seed',
        `RUN mkdir -p /s && echo seeded-${t} > /s/f`,
        'FROM busybox',
        `RUN --mount=type=cache,target=/c-${t} sh -c 'echo one >> /c-${t}/log'`,
        `RUN --mount=type=cache,id=byid-${t},target=/x sh -c 'echo by-id >> /x/log'`,
        `RUN --mount=type=cache,target=/m-${t},mode=0750,uid=123,gid=456 stat -c '%a %u %g' /m-${t} > /m.stat`,
        `RUN --mount=type=cache,target=/seeded-${t},from=seed,source=/s sh -c 'cat /seeded-${t}/f > /seeded1.txt; echo added >> /seeded-${t}/f'`,
        `RUN --mount=type=cache,target=/c-${t},readonly sh -c '(touch /c-${t}/ro 2>/dev/null && echo writable || echo read-only) > /ro.txt; cat /c-${t}/log > /ro-saw.txt'`,
        '',
      ].join('\n'),
      [],
    );
    expect(await read(first.out, 'm.stat')).toBe('750 123 456\n');
    expect(await read(first.out, 'seeded1.txt')).toBe(`seeded-${t}\n`);
    expect(await read(first.out, 'ro.txt')).toBe('read-only\n');
    expect(await read(first.out, 'ro-saw.txt')).toBe('one\n');

    // A second build in a new process: same target → same cache; the id is what counts, not the
    // target; another target starts empty; a seeded cache is not re-seeded.
    const second = await build(
      'cache2',
      [
        'FROM busybox AS seed',
        `RUN mkdir -p /s && echo seeded-${t} > /s/f`,
        'FROM busybox',
        `RUN --mount=type=cache,target=/c-${t} sh -c 'echo two >> /c-${t}/log; cp /c-${t}/log /c.txt'`,
        `RUN --mount=type=cache,id=byid-${t},target=/elsewhere cp /elsewhere/log /byid.txt`,
        `RUN --mount=type=cache,target=/other-${t} sh -c 'ls -A /other-${t} > /other.txt'`,
        `RUN --mount=type=cache,target=/seeded-${t},from=seed,source=/s cp /seeded-${t}/f /seeded2.txt`,
        `RUN --mount=type=cache,target=/m-${t},mode=0750,uid=123,gid=456 stat -c '%a %u %g' /m-${t} > /m.stat`,
        '',
      ].join('\n'),
    );
    expect(await read(second.out, 'c.txt')).toBe('one\ntwo\n');
    expect(await read(second.out, 'byid.txt')).toBe('by-id\n');
    expect(await read(second.out, 'other.txt')).toBe('');
    expect(await read(second.out, 'seeded2.txt')).toBe(`seeded-${t}\nadded\n`);
    expect(await read(second.out, 'm.stat')).toBe('750 123 456\n');

    // Never in the image: export the first build as an OCI tarball and unpack it with umoci.
    const tar = join(sb.dir, `cache-${t}.tar`);
    const exp = await runKiln(sb, ['build', first.ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${tar},name=cache:${t}`]);
    expect(exp.code, exp.stderr).toBe(0);
    const layout = join(sb.dir, `cache-layout-${t}`);
    await mkdir(layout);
    execFileSync('tar', ['-xf', tar, '-C', layout]);
    const bundle = join(sb.dir, `cache-bundle-${t}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:${t}`, bundle], { stdio: 'pipe' });
    expect(await read(join(bundle, 'rootfs'), 'm.stat')).toBe('750 123 456\n');
    for (const p of [`c-${t}/log`, 'x/log', `seeded-${t}/f`, `m-${t}`]) expect(existsSync(join(bundle, 'rootfs', p)), p).toBe(false);
    const found = execFileSync('sh', ['-c', `grep -r -l -a -e "^by-id$" -e "^added$" ${join(bundle, 'rootfs')} || true`], { encoding: 'utf8' });
    expect(found).toBe('');
  });

  test('a cache seeded from= is keyed by id and seed: a changed seed starts a new cache, the old one comes back with the old seed', async () => {
    const t = token();
    const df = (seed: string): string =>
      [
        'FROM busybox AS seed',
        `RUN mkdir /s && echo ${seed} > /s/f`,
        'FROM busybox',
        `RUN --mount=type=cache,id=seeded-${t},target=/c,from=seed,source=/s sh -c 'echo used >> /c/f; cp /c/f /f.txt' # ${token()}`,
        '',
      ].join('\n');
    const v1 = await build('seed-v1', df(`v1-${t}`));
    expect(lines(await read(v1.out, 'f.txt'))).toEqual([`v1-${t}`, 'used']);
    const v2 = await build('seed-v2', df(`v2-${t}`));
    expect(lines(await read(v2.out, 'f.txt'))).toEqual([`v2-${t}`, 'used']);
    const v1again = await build('seed-v1-again', df(`v1-${t}`));
    expect(lines(await read(v1again.out, 'f.txt'))).toEqual([`v1-${t}`, 'used', 'used']);
  });

  test('sharing=shared: two concurrent builds use the same directory at the same time', async () => {
    const r = await twins('shared');
    expect(r.A.report).toBe('saw');
    expect(r.B.report).toBe('saw');
    // One directory: both logs end up in it, interleaved (both were in before either left).
    expect(r.final.slice(0, 2).sort()).toEqual(['A-in', 'B-in']);
    expect([...r.final].sort()).toEqual(['A-in', 'A-out', 'B-in', 'B-out']);
    const longest = r.A.log.length >= r.B.log.length ? r.A.log : r.B.log;
    expect(longest.slice(0, 2).sort()).toEqual(['A-in', 'B-in']);
  });

  test('sharing=locked: the second build waits until the first leaves (the first never sees it inside)', async () => {
    const r = await twins('locked');
    const [first, second] = r.final[0] === 'A-in' ? (['A', 'B'] as const) : (['B', 'A'] as const);
    // Serialised: first in, first out, then the other — although the other was ready and waiting.
    expect(r.final).toEqual([`${first}-in`, `${first}-out`, `${second}-in`, `${second}-out`]);
    expect(r[first].report).toBe('alone');
    expect(r[second].log).toEqual(r.final);
  });

  test('sharing=private: a concurrent second user gets its own throw-away directory', async () => {
    const r = await twins('private');
    // Both were inside at the same time, yet neither saw the other's log lines.
    expect(r.A.report).toBe('saw');
    expect(r.B.report).toBe('saw');
    expect(r.A.log).toEqual(['A-in', 'A-out']);
    expect(r.B.log).toEqual(['B-in', 'B-out']);
    // Only the user that got the persistent directory left its lines there.
    expect([['A-in', 'A-out'], ['B-in', 'B-out']]).toContainEqual(r.final);
  });

  test('a kiln process killed (SIGKILL) inside a locked cache step: the next build cleans up its container and gets the cache', async () => {
    const t = token();
    const ctx = join(sb.dir, `killed-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=k-${t},target=/c,sharing=locked sh -c 'echo in > /c/started; echo inside-${t}; sleep 20; echo done > /c/finished'\n` });
    // The victim writes to a file, as on a terminal.
    const logFile = join(sb.dir, `killed-${t}.log`);
    const fd = openSync(logFile, 'w');
    const victim = spawn(process.execPath, [kilnBin, 'build', ctx, '--root', sb.root, '--progress', 'plain'], { stdio: ['ignore', fd, fd], env: { ...process.env, PATH: sb.path } });
    closeSync(fd);
    // Wait for the container's own output line (`#N 0.123 inside-…`), not the step's name.
    const inside = new RegExp(`#\\d+ \\d+\\.\\d+ inside-${t}`);
    for (let i = 0; i < 300 && !inside.test(readFileSync(logFile, 'utf8')); i++) await new Promise((r) => setTimeout(r, 100));
    const pid = victim.pid ?? 0;
    const runtimeDir = `/dev/shm/kiln-${createHash('sha256').update(sb.root).digest('hex').slice(0, 12)}`;
    victim.kill('SIGKILL');
    await new Promise((r) => victim.once('exit', r));
    // The container does not run on for nobody: the process helper stops it once kiln is gone.
    // Its bundle and the cache lock are left for the next kiln process to clean up.
    const orphan = (): boolean => execFileSync('ps', ['-ww', '-eo', 'args'], { encoding: 'utf8' }).split('\n').some((l) => l.startsWith('sh -c echo in') && l.includes(`inside-${t}`));
    await expect.poll(orphan, { timeout: 10_000 }).toBe(false);
    expect(readdirSync(join(runtimeDir, 'bundles')).filter((b) => b.startsWith(`kiln-${pid}-`))).not.toEqual([]);
    const next = await build('killed-next', `FROM busybox\nRUN --mount=type=cache,id=k-${t},target=/c,sharing=locked sh -c 'ls /c > /ls.txt' # ${token()}\n`);
    expect(await read(next.out, 'ls.txt')).toBe('started\n');
    expect(orphan()).toBe(false);
    expect(readdirSync(join(runtimeDir, 'bundles')).filter((b) => b.startsWith(`kiln-${pid}-`))).toEqual([]);
  });

  test('kiln prune while another build runs refuses (KLN0708) and leaves its cache alone; it runs once the build ends', async () => {
    const t = token();
    const ctx = join(sb.dir, `prune-busy-${t}`);
    const run = `RUN --mount=type=cache,id=busy-${t},target=/c sh -c 'echo keep > /c/keep; touch /c/ready; i=0; while [ ! -e /c/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; cat /c/keep > /kept.txt'`;
    // A first build records the cache mount in the store (as prune candidate); the host dir is where the test signals.
    await build('prune-busy-first', `FROM busybox\n${run} # first\n`.replace('while [ ! -e /c/go ]', 'while false'));
    const host = join(sb.root, 'solver', 'cachemounts', `%2fbusy-${t}`);
    expect(existsSync(join(host, 'keep'))).toBe(true);
    await rm(join(host, 'ready'));
    await writeTree(ctx, { Dockerfile: `FROM busybox\n${run} # second\n` });
    const busy = runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${ctx}-out`]);
    for (let i = 0; i < 300 && !existsSync(join(host, 'ready')); i++) await new Promise((r) => setTimeout(r, 100));
    const refused = await runKiln(sb, ['prune', '--root', sb.root, '--verbose']);
    await writeFile(join(host, 'go'), '');
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain('KLN0708');
    expect(existsSync(join(host, 'keep'))).toBe(true);
    const r = await busy;
    expect(r.code, r.stderr).toBe(0);
    expect(await read(`${ctx}-out`, 'kept.txt')).toBe('keep\n');
    const pruned = await runKiln(sb, ['prune', '--root', sb.root, '--verbose']);
    expect(pruned.code, pruned.stderr).toBe(0);
  });

  test('kiln du lists cache mounts; kiln prune removes them (the next build starts empty)', async () => {
    const t = token();
    await build('du', `FROM busybox\nRUN --mount=type=cache,id=du-${t},target=/c sh -c 'head -c 300000 /dev/zero > /c/blob; echo kept > /c/note'\n`);
    // The size is measured in the background after the build: poll `kiln du` briefly.
    let du = '';
    for (let i = 0; i < 50; i++) {
      const r = await runKiln(sb, ['du', '--root', sb.root, '--verbose']);
      expect(r.code).toBe(0);
      du = r.stdout;
      if (/du-/.test(du) && !/du-\S*\s+exec\.cachemount\s+\S+\s+0B/.test(du)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const row = du.split('\n').find((l) => l.startsWith(`cachemount:/du-${t}`));
    expect(row, du).toBeDefined();
    expect(row).toMatch(/exec\.cachemount/);
    expect(row).toMatch(/\s30\d(\.\d+)?kB\s/); // 300,005 bytes
    const dirs = await readdir(join(sb.root, 'solver', 'cachemounts'));
    expect(dirs.some((d) => d.includes(`du-${t}`))).toBe(true);

    const pruned = await runKiln(sb, ['prune', '--root', sb.root, '--verbose']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain(`du-${t}`);
    const after = await runKiln(sb, ['du', '--root', sb.root, '--verbose']);
    expect(after.stdout).not.toContain(`du-${t}`);
    expect((await readdir(join(sb.root, 'solver', 'cachemounts'))).some((d) => d.includes(`du-${t}`) && !d.endsWith('.lock') && !d.endsWith('.users'))).toBe(false);
    const again = await build('du-again', `FROM busybox\nRUN --mount=type=cache,id=du-${t},target=/c sh -c 'ls -A /c > /ls.txt' # ${token()}\n`);
    expect(await read(again.out, 'ls.txt')).toBe('');
  });
});
