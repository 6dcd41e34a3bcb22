// `kiln build` end to end: whole-process wall times of `node cli/bin/kiln.js build …` (run after
// `npm run build`, as root, with runc and busybox-static installed), for the targets of issue #5.
// BuildKit v0.11.6 measured on the same machine with the same runc and overlayfs in brackets.
// Each case uses a fresh kiln root in a temp dir with the busybox base made from busybox-static.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';

const repo = fileURLToPath(new URL('..', import.meta.url));
const kiln = join(repo, 'cli', 'bin', 'kiln.js');
/** The `kiln` command users run (the npm bin): the Perl client of a running daemon, else Node. */
const kilnLauncher = join(repo, 'cli', 'bin', 'kiln');

async function freshRoot(work, name) {
  const root = join(work, `root-${name}`);
  await createBusyboxImage(await ContentStore.open(root), { names: ['docker.io/library/busybox:latest'], images: await ImageStore.open(root) });
  return root;
}

function ctxDir(work, name, files) {
  const dir = join(work, `ctx-${name}`);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  return dir;
}

/**
 * One whole `kiln build` process; returns wall ms (fails loudly on a non-zero exit). Without a
 * daemon: `node cli/bin/kiln.js build …` does all the work. With one: the `kiln` command is a
 * client of that running `kiln daemon`, as buildctl is of buildkitd.
 */
function build(root, ctx, extra = [], daemon) {
  const env = daemon === undefined ? { ...process.env, KILN_DAEMON: '0' } : { ...process.env, KILN_HOST: `unix://${daemon.socket}` };
  const t0 = performance.now();
  const argv = ['build', ctx, '--root', root, '--progress', 'quiet', ...extra];
  const r = daemon === undefined ? spawnSync(process.execPath, [kiln, ...argv], { encoding: 'utf8', env }) : spawnSync(kilnLauncher, argv, { encoding: 'utf8', env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`kiln build ${ctx} failed (${r.status}):\n${r.stderr}`);
  return ms;
}

/** Starts `kiln daemon` for `root` and waits until it serves. */
async function startDaemon(work, root) {
  const socket = join(work, `kilnd-${Math.random().toString(36).slice(2)}.sock`);
  const child = spawn(process.execPath, [kiln, 'daemon', '--root', root, '--addr', `unix://${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      log += d.toString();
      if (log.includes('serving ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`kiln daemon exited (${code}):\n${log}`)));
  });
  return {
    socket,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Calibration: the median wall time of a bare `runc run` of `true` (busybox) — 43 ms on the
 * machine the BuildKit figures come from. A loaded machine scales every row by about the same factor.
 */
function bareRunc(work) {
  const bundle = join(work, 'runc-bundle');
  mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
  spawnSync('cp', ['/bin/busybox', join(bundle, 'rootfs', 'bin', 'true')]);
  spawnSync('runc', ['spec', '--bundle', bundle]);
  const cfgPath = join(bundle, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.process.args = ['/bin/true'];
  cfg.process.terminal = false;
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = spawnSync('runc', ['--root', join(work, 'runc-state'), 'run', '--bundle', bundle, `kiln-bench-${process.pid}-${i}`], { stdio: 'ignore' });
    if (r.status !== 0) throw new Error('bare runc run failed');
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[2];
}

/**
 * The floor of the 50-step chain: 50 `runc run`s back to back from a shell loop, no kiln. Each
 * has the config.json kiln writes for such a step (its own spec builder) and runs on an overlay of
 * the previous steps' upper dirs, as a chain of RUNs does; the bundles are made before the clock
 * starts. Returns the total wall ms.
 */
async function bareRuncChain(work, steps) {
  const { buildSpec, specJson } = await import('../runtime/dist/executor/spec.js');
  const dir = join(work, 'runc-chain');
  const base = join(dir, 'base');
  mkdirSync(join(base, 'bin'), { recursive: true });
  for (const d of ['proc', 'dev', 'sys', 'etc']) mkdirSync(join(base, d), { recursive: true });
  spawnSync('cp', ['/bin/busybox', join(base, 'bin', 'busybox')]);
  spawnSync('ln', ['-s', 'busybox', join(base, 'bin', 'sh')]);
  for (const f of ['hosts', 'resolv.conf']) writeFileSync(join(base, 'etc', f), '');
  writeFileSync(join(dir, 'hosts'), '127.0.0.1\tlocalhost buildkitsandbox\n');
  writeFileSync(join(dir, 'resolv.conf'), readFileSync('/etc/resolv.conf'));
  const uppers = [];
  const lines = [];
  for (let i = 0; i < steps; i++) {
    const step = join(dir, `s${i}`);
    mkdirSync(join(step, 'rootfs'), { recursive: true });
    mkdirSync(join(step, 'fs'));
    mkdirSync(join(step, 'work'));
    const spec = buildSpec({
      rootPath: join(step, 'rootfs'),
      readonlyRoot: false,
      rootMount: {
        destination: '/',
        type: 'overlay',
        source: 'overlay',
        options: [`lowerdir=${[...uppers].reverse().concat(base).join(':')}`, `upperdir=${join(step, 'fs')}`, `workdir=${join(step, 'work')}`],
      },
      args: ['/bin/sh', '-c', `echo ${i} > /step-${i}`],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
      hostname: 'buildkitsandbox',
      network: 'host',
      security: 'sandbox',
      insecureCapabilities: [],
      hostsFile: join(dir, 'hosts'),
      resolvConfFile: join(dir, 'resolv.conf'),
      mounts: [],
    });
    writeFileSync(join(step, 'config.json'), specJson(spec));
    uppers.push(join(step, 'fs'));
    lines.push(`runc --root ${join(dir, 'state')} run --bundle ${step} kiln-bench-chain-${process.pid}-${i} >/dev/null || exit 1`);
  }
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', lines.join('\n')], { stdio: 'ignore' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error('bare runc chain failed');
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

const rows = [];

/**
 * `KILN_BENCH_CASES=parallel,chain` runs only those cases (parallel, chain, ctx5k, big, cachemount);
 * `KILN_BENCH_MODES=daemon` only that mode. Default: everything.
 */
const onlyCases = process.env.KILN_BENCH_CASES?.split(',').filter((c) => c !== '');
const onlyModes = process.env.KILN_BENCH_MODES?.split(',').filter((m) => m !== '');
const wanted = (name) => onlyCases === undefined || onlyCases.length === 0 || onlyCases.includes(name);

export async function run() {
  if (process.getuid?.() !== 0) throw new Error('bench/build needs root (runc, overlayfs)');
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-build-'));
  let runcMs = 0;
  let chainMs;
  try {
    runcMs = bareRunc(work);
    if (wanted('chain')) chainMs = await bareRuncChain(work, 50);
    // Every case runs twice on fresh roots: each build its own process (KILN_DAEMON=0), then as
    // clients of a `kiln daemon` started for that root (not timed), as buildctl uses buildkitd.
    // (kept across modes: the last case of one mode is dropped before the first of the next)
    let leftovers = [];
    for (const mode of ['process', 'daemon'].filter((m) => onlyModes === undefined || onlyModes.length === 0 || onlyModes.includes(m))) {
      let daemon;
      const d = () => daemon;
      // Each case's root, context and outputs go before the next case starts: on this VM a case
      // that runs while an earlier one's gigabyte of files is still around is much slower (the
      // 200 MB export took 4.5 s instead of 2.7 s in second place), whichever mode that was.
      const drop = (path) => {
        leftovers.push(path);
        return path;
      };
      const next = async (root) => {
        await daemon?.stop();
        daemon = undefined;
        for (const p of leftovers) if (p !== root) rmSync(p, { recursive: true, force: true });
        leftovers = [root];
        daemon = mode === 'daemon' ? await startDaemon(work, root) : undefined;
        return root;
      };
      const row = (name, ms, target, buildkit) => rows.push({ name, mode, ms, target, buildkit });
      try {
        // 1. Four independent `sleep 1` stages joined by a final stage; then the unchanged rebuild.
        if (wanted('parallel')) {
          const root = await next(await freshRoot(work, mode + '-parallel'));
          const stages = ['a', 'b', 'c', 'd'];
          const df = [...stages.flatMap((s) => [`FROM busybox AS ${s}`, `RUN sleep 1 && echo ${s} > /${s}`]), 'FROM busybox', ...stages.map((s) => `COPY --from=${s} /${s} /${s}`), ''].join('\n');
          const ctx = drop(ctxDir(work, mode + '-parallel', { Dockerfile: df }));
          row('4 parallel stages of `sleep 1`', build(root, ctx, [], d()), 1500, 1670);
          row('unchanged rebuild (same 4 stages)', build(root, ctx, [], d()), 150, 130);
        }
        // 2. 50 chained RUN steps.
        if (wanted('chain')) {
          const root = await next(await freshRoot(work, mode + '-chain'));
          const df = ['FROM busybox', ...Array.from({ length: 50 }, (_, i) => `RUN echo ${i} > /step-${i}`), ''].join('\n');
          row('50 chained RUN steps', build(root, drop(ctxDir(work, mode + '-chain', { Dockerfile: df })), [], d()), 4000, 6000);
        }
        // 3. A 5,000-file context: cold, unchanged, one file changed.
        if (wanted('ctx5k')) {
          const root = await next(await freshRoot(work, mode + '-ctx5k'));
          const files = { Dockerfile: 'FROM busybox\nCOPY . /ctx\nRUN find /ctx -type f | wc -l > /count\n' };
          for (let i = 0; i < 5000; i++) files[`d${i % 50}/s${i % 7}/f${i}.txt`] = `file ${i}\n`.repeat(20 + (i % 100));
          const ctx = drop(ctxDir(work, mode + '-ctx5k', files));
          row('5,000-file context: cold', build(root, ctx, [], d()), 3000, 4000);
          row('5,000-file context: unchanged', build(root, ctx, [], d()), 300, 520);
          writeFileSync(join(ctx, 'd7/s0/f7.txt'), 'changed\n');
          row('5,000-file context: one file changed', build(root, ctx, [], d()), 1500, 2300);
        }
        // 4. A 200 MB incompressible file exported as an OCI tarball (cold).
        if (wanted('big')) {
          const root = await next(await freshRoot(work, mode + '-big'));
          const ctx = drop(ctxDir(work, mode + '-big', { Dockerfile: 'FROM busybox\nCOPY big.bin /big.bin\n' }));
          const big = Buffer.allocUnsafe(200 * 1024 * 1024);
          for (let off = 0; off < big.length; off += 1 << 20) randomBytes(1 << 20).copy(big, off);
          writeFileSync(join(ctx, 'big.bin'), big);
          row('200 MB incompressible file → OCI tarball (cold)', build(root, ctx, ['--output', `type=oci,dest=${drop(join(work, `${mode}-big.oci.tar`))}`], d()), 9000, 17500);
        }
        // 5. A 50 MB cache mount re-used after a change that re-runs the step.
        if (wanted('cachemount')) {
          const root = await next(await freshRoot(work, mode + '-cachemount'));
          const ctx = drop(ctxDir(work, mode + '-cachemount', {
            'trigger.txt': '0\n',
            Dockerfile: [
              'FROM busybox',
              'COPY trigger.txt /trigger.txt',
              'RUN --mount=type=cache,id=bench50,target=/cache sh -c "test -f /cache/blob || dd if=/dev/urandom of=/cache/blob bs=1M count=50 2>/dev/null; wc -c < /cache/blob > /size"',
              '',
            ].join('\n'),
          }));
          build(root, ctx, [], d());
          writeFileSync(join(ctx, 'trigger.txt'), '1\n');
          row('50 MB cache mount re-used after a change', build(root, ctx, [], d()), 600, 760);
        }
      } finally {
        await daemon?.stop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const names = [...new Set(rows.map((r) => r.name))];
  const w = Math.max(...names.map((n) => n.length));
  const sec = (ms) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
  console.log(`bare \`runc run true\`: ${runcMs.toFixed(0)} ms (43 ms where the BuildKit figures were taken); load average ${loadavg()[0].toFixed(1)}`);
  if (chainMs !== undefined) console.log(`50 \`runc run\`s back to back, no kiln (kiln's config, chained overlays): ${sec(chainMs)}`);
  console.log(`${'case'.padEnd(w)}  ${'process'.padStart(9)}  ${'daemon'.padStart(9)}  ${'target'.padStart(9)}  ${'BuildKit'.padStart(9)}`);
  for (const name of names) {
    const p = rows.find((r) => r.name === name && r.mode === 'process');
    const dm = rows.find((r) => r.name === name && r.mode === 'daemon');
    const ref = p ?? dm;
    const best = Math.min(p?.ms ?? Infinity, dm?.ms ?? Infinity);
    console.log(`${name.padEnd(w)}  ${sec(p?.ms).padStart(9)}  ${sec(dm?.ms).padStart(9)}  ${`< ${sec(ref.target)}`.padStart(9)}  ${sec(ref.buildkit).padStart(9)}  ${best < ref.target ? 'ok' : 'MISS'}`);
  }
  return rows;
}
