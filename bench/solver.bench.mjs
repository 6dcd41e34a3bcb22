// Solver benchmarks (run after `npm run build`): local context transfer + content hashing, the
// scheduler's cache-hit path, and real-runc chains through the RuntimeWorker.
// Targets from issue #5 in the last column (whole `kiln build` process targets; these are the
// solver's share measured in-process).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { digestOf, encodeOp } from '@kiln/llb-core';
import { CacheManager, CacheStore, RuntimeWorker, Scheduler, Solver, syncLocalSource } from '@kiln/solver';

function makeContext(root, n) {
  for (let i = 0; i < n; i++) {
    const dir = join(root, `d${i % 50}`, `s${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`.repeat(20 + (i % 100)));
  }
}

async function time(fn) {
  const t0 = performance.now();
  const r = await fn();
  return { ms: performance.now() - t0, r };
}

const rows = [];
const row = (name, ms, target, note = '') => rows.push([name, ms, target, note]);

async function localContext(work) {
  const src = join(work, 'ctx');
  makeContext(src, 5000);
  const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
  const cold = await time(() => syncLocalSource(opts));
  const warm = await time(() => syncLocalSource(opts));
  writeFileSync(join(src, 'd1', 's1', 'f1.txt'), 'changed\n');
  utimesSync(join(src, 'd1', 's1', 'f1.txt'), new Date(), new Date(Date.now() + 5000));
  const one = await time(() => syncLocalSource(opts));
  row('5,000-file context: cold transfer + hash', cold.ms, '< 3000', `hashed ${cold.r.stats.hashed}`);
  row('5,000-file context: unchanged', warm.ms, '< 300', `hashed ${warm.r.stats.hashed}`);
  row('5,000-file context: one file changed', one.ms, '< 1500', `hashed ${one.r.stats.hashed}`);
}

async function schedulerHits(work) {
  const store = CacheStore.open({ path: join(work, 'sched.db') });
  let execs = 0;
  const resolveOp = (v) => ({
    cacheMap: async () => ({ digest: v.digest, deps: v.inputs.map(() => ({})) }),
    exec: async (_ctx, inputs) => {
      execs++;
      if (v.op.sleep) await new Promise((r) => setTimeout(r, v.op.sleep));
      return [{ snapshot: `${v.digest}-${inputs.length}`, size: 1 }];
    },
  });
  const s = new Scheduler({ resolveOp, cache: new CacheManager(store), parallelism: 4 });
  const chain = () => {
    let v = { digest: 'sha256:base', name: 'base', inputs: [], options: {}, op: {} };
    for (let i = 0; i < 50; i++) v = { digest: `sha256:run${i}`, name: `RUN ${i}`, inputs: [{ vertex: v, index: 0 }], options: {}, op: {} };
    return { vertex: v, index: 0 };
  };
  const cold = await time(() => s.build(chain()));
  const hit = await time(() => s.build(chain()));
  row('scheduler: 50-vertex chain, cold (fake ops)', cold.ms, '', `${execs} execs`);
  row('scheduler: 50-vertex chain, all cached', hit.ms, '< 150', `${execs} execs total`);
  const par = () => {
    const leaves = [1, 2, 3, 4].map((i) => ({ digest: `sha256:sleep${i}-${Date.now()}`, name: `sleep ${i}`, inputs: [], options: {}, op: { sleep: 1000 } }));
    return { vertex: { digest: `sha256:join-${Date.now()}`, name: 'join', inputs: leaves.map((l) => ({ vertex: l, index: 0 })), options: {}, op: {} }, index: 0 };
  };
  const p = await time(() => s.build(par()));
  row('scheduler: 4 independent 1 s ops', p.ms, '< 1500', 'parallelism 4');
  store.close();
}

async function runcChain(work) {
  try {
    execFileSync('runc', ['--version']);
  } catch {
    row('runc chain', NaN, '', 'skipped: apt-get install runc busybox-static');
    return;
  }
  const rt = await import('@kiln/runtime');
  const root = join(work, 'kiln');
  const content = await rt.ContentStore.open(join(root, 'content'));
  const images = await rt.ImageStore.open(join(root, 'images'));
  await rt.createBusyboxImage(content, { names: ['localhost:5000/busybox:latest'], images });
  const snapshotter = new rt.LocalSnapshotter({ root });
  const worker = new RuntimeWorker({
    root,
    snapshotter,
    executor: new rt.RuncExecutor({ root }),
    content,
    ensureImage: (ref, o) => rt.ensureImage(ref, { store: content, images, ...o }),
    unpackLayer: rt.unpackLayer,
    applyFileAction: rt.applyFileAction,
    localDirs: {},
  });
  const store = CacheStore.open({ path: join(root, 'solver.db'), releaseSnapshot: (id) => worker.releaseSnapshot(id) });
  const solver = new Solver({ worker, store });
  const def = (n, cmd) => {
    const ops = [encodeOp({ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } })];
    for (let i = 0; i < n; i++) {
      ops.push(
        encodeOp({
          kind: 'exec',
          inputs: [{ digest: digestOf(ops[ops.length - 1]), index: 0 }],
          exec: { meta: { args: ['/bin/sh', '-c', `${cmd} ${i}`], env: ['PATH=/bin'], cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] },
        }),
      );
    }
    ops.push(encodeOp({ kind: 'none', inputs: [{ digest: digestOf(ops[ops.length - 1]), index: 0 }] }));
    return { def: ops, metadata: new Map() };
  };
  const cold = await time(() => solver.solve(def(50, 'true')));
  const warm = await time(() => solver.solve(def(50, 'true')));
  row('runc: 50 chained RUN true, cold', cold.ms, '< 4000', 'solver+runtime, in-process');
  row('runc: 50 chained RUN true, unchanged', warm.ms, '< 150', 'no container started');
  const parDef = (tag = '') => {
    const base = encodeOp({ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } });
    const leaves = [1, 2, 3, 4].map((i) =>
      encodeOp({ kind: 'exec', inputs: [{ digest: digestOf(base), index: 0 }], exec: { meta: { args: ['/bin/sh', '-c', `sleep 1; echo ${tag}${i} > /f`], env: ['PATH=/bin'], cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] } }),
    );
    const merge = encodeOp({ kind: 'merge', inputs: leaves.map((l) => ({ digest: digestOf(l), index: 0 })), merge: { inputs: leaves.map((_, i) => ({ input: i })) } });
    return { def: [base, ...leaves, merge, encodeOp({ kind: 'none', inputs: [{ digest: digestOf(merge), index: 0 }] })], metadata: new Map() };
  };
  const par = await time(() => solver.solve(parDef()));
  row('runc: 4 parallel stages of sleep 1 (+merge)', par.ms, '< 1500', `default parallelism = ${availableParallelism()} cores`);
  const parWarm = await time(() => solver.solve(parDef()));
  row('runc: 4 parallel stages, unchanged', parWarm.ms, '< 150', '');
  const wide = new Solver({ worker, store, parallelism: 4 });
  const par4 = await time(() => wide.solve(parDef('p4-')));
  row('runc: 4 parallel stages of sleep 1 (+merge)', par4.ms, '< 1500', 'parallelism 4');
  store.close();
}

/**
 * The 5,000-file context case of bench/build.bench.mjs in-process (no Node start-up, no
 * frontend): `FROM busybox` / `COPY . /ctx` / `RUN find /ctx -type f | wc -l > /count` as LLB
 * through the Solver and a RuntimeWorker, cold, unchanged and with one file changed. Each build
 * is split into the worker calls it made (local source = sync + snapshot, COPY checksum, COPY,
 * RUN; "solver" is the rest: cache-key lookups and cache-store writes); CPU is user+sys of the
 * whole process, less noisy than wall time on a shared machine.
 */
async function contextBuild(work) {
  try {
    execFileSync('runc', ['--version']);
  } catch {
    row('5,000-file build', NaN, '', 'skipped: apt-get install runc busybox-static');
    return;
  }
  const rt = await import('@kiln/runtime');
  const root = join(work, 'kiln-ctx');
  const ctx = join(work, 'ctx-build');
  makeContext(ctx, 5000);
  const content = await rt.ContentStore.open(join(root, 'content'));
  const images = await rt.ImageStore.open(join(root, 'images'));
  await rt.createBusyboxImage(content, { names: ['localhost:5000/busybox:latest'], images });
  const inner = new RuntimeWorker({
    root,
    snapshotter: new rt.LocalSnapshotter({ root }),
    executor: new rt.RuncExecutor({ root }),
    content,
    ensureImage: (ref, o) => rt.ensureImage(ref, { store: content, images, ...o }),
    unpackLayer: rt.unpackLayer,
    applyFileAction: rt.applyFileAction,
    localDirs: { context: ctx },
  });
  let phases = {};
  const phaseOf = (name, args) => (name === 'source' ? (args[0]?.identifier?.startsWith('local://') ? 'local source' : 'image') : { checksum: 'COPY checksum', file: 'COPY', exec: 'RUN' }[name]);
  // Times every worker call by phase (the solver awaits them; overlapping calls add up).
  const worker = new Proxy(inner, {
    get(target, key) {
      const v = Reflect.get(target, key);
      if (typeof v !== 'function') return v;
      return (...args) => {
        const phase = phaseOf(key, args);
        const t0 = performance.now();
        const r = v.apply(target, args);
        if (phase === undefined || !(r instanceof Promise)) return r;
        return r.finally(() => (phases[phase] = (phases[phase] ?? 0) + performance.now() - t0));
      };
    },
  });
  const store = CacheStore.open({ path: join(root, 'solver.db'), releaseSnapshot: (id) => inner.releaseSnapshot(id) });
  const solver = new Solver({ worker, store });
  const ops = [
    encodeOp({ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } }),
    encodeOp({ kind: 'source', inputs: [], source: { identifier: 'local://context' } }),
  ];
  const copy = { src: '/', dest: '/ctx', followSymlink: true, dirCopyContents: true, createDestPath: true, allowWildcard: true, allowEmptyWildcard: true, mode: -1, timestamp: -1n };
  ops.push(
    encodeOp({
      kind: 'file',
      inputs: [{ digest: digestOf(ops[0]), index: 0 }, { digest: digestOf(ops[1]), index: 0 }],
      file: { actions: [{ input: 0, secondaryInput: 1, output: 0, action: { kind: 'copy', copy } }] },
    }),
  );
  ops.push(
    encodeOp({
      kind: 'exec',
      inputs: [{ digest: digestOf(ops[2]), index: 0 }],
      exec: { meta: { args: ['/bin/sh', '-c', 'find /ctx -type f | wc -l > /count'], env: ['PATH=/bin'], cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] },
    }),
  );
  ops.push(encodeOp({ kind: 'none', inputs: [{ digest: digestOf(ops[3]), index: 0 }] }));
  const build = async (name, target) => {
    phases = {};
    const cpu0 = process.cpuUsage();
    const { ms } = await time(() => solver.solve({ def: ops, metadata: new Map() }));
    const cpu = process.cpuUsage(cpu0);
    const named = Object.values(phases).reduce((a, b) => a + b, 0);
    const parts = Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(0)}`);
    row(`5,000-file build in-process: ${name}`, ms, target, `${parts.join(', ')}, solver ${(ms - named).toFixed(0)} ms; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms`);
  };
  await build('cold', '< 2500');
  await build('unchanged', '< 150');
  writeFileSync(join(ctx, 'd7', 's0', 'f7.txt'), 'changed\n');
  await build('one file changed', '< 1000');
  store.close();
}

export async function run() {
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-solver-'));
  try {
    await localContext(work);
    await contextBuild(work);
    await schedulerHits(work);
    await runcChain(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log('| case | ms | target ms | note |\n| --- | ---: | ---: | --- |');
  for (const [name, ms, target, note] of rows) console.log(`| ${name} | ${Number.isNaN(ms) ? '-' : ms.toFixed(0)} | ${target} | ${note} |`);
}
