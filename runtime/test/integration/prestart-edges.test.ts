import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalSnapshotter, RuncExecutor, unpackLayer, type ExecPreparation } from '@kiln/runtime';
import { buildCliOnce } from '../../../scripts/test-cli-build.js';

// Pre-started runc processes (see prestart.test.ts) at bad moments. In this process: aborts,
// concurrent runs, withdrawn and unannounced runs, with no runc, bundle or FIFO fd left behind.
// In kiln processes of their own (the helper is one per process and is not restarted once
// dead), run from the built runtime (`npx tsc -b` first): runc missing, the helper or kiln
// going away.

const RUNTIME = new URL('../../', import.meta.url).pathname;
const DIST = join(RUNTIME, 'dist');

let dir = '';
let root = '';
let log = '';
let wrapper = '';
let slowWrapper = '';
const children: ChildProcess[] = [];

beforeAll(async () => {
  const real = execFileSync('sh', ['-c', 'command -v runc || true'], { encoding: 'utf8' }).trim();
  if (real === '') throw new Error('runc is required for these tests: apt-get install runc');
  // The children run the compiled runtime: built from the sources under test (once per test run).
  buildCliOnce();
  dir = await mkdtemp(join(tmpdir(), 'kiln-prestart-edges-'));
  root = join(dir, 'root');
  log = join(dir, 'runc.log');
  wrapper = join(dir, 'runc');
  slowWrapper = join(dir, 'runc-slow');
  // Logs each invocation; exec keeps the pid runc's. The slow one stands for a loaded machine:
  // runc reaches its config.json 1.5 s after it was started.
  await writeFile(wrapper, `#!/bin/sh\necho "$*" >> ${log}\nexec ${real} "$@"\n`);
  await writeFile(slowWrapper, `#!/bin/sh\necho "$*" >> ${log}\nsleep 1.5\nexec ${real} "$@"\n`);
  await chmod(wrapper, 0o755);
  await chmod(slowWrapper, 0o755);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // Whatever a failing case left waiting must not outlive the test run.
  for (const c of children) for (const pid of runcsOf(c)) spawnSync('kill', ['-KILL', String(pid)]);
  await rm(dir, { recursive: true, force: true });
  await rm(join('/dev/shm', `kiln-${createHash('sha256').update(root).digest('hex').slice(0, 12)}`), { recursive: true, force: true });
});

/** Starts a kiln process running `body` (ESM, top-level await) with `e` a RuncExecutor on `runc`. */
function kiln(body: string, runc: string, detached = false): ChildProcess {
  const script = `const { RuncExecutor } = await import(${JSON.stringify(join(DIST, 'index.js'))});
    const { spawnViaHelper } = await import(${JSON.stringify(join(DIST, 'executor/process-helper.js'))});
    const e = new RuncExecutor({ root: ${JSON.stringify(root)}, runc: ${JSON.stringify(runc)} });
    ${body}`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], detached });
  children.push(c);
  return c;
}

function output(c: ChildProcess): { out: () => string; exit: Promise<number | null> } {
  let text = '';
  c.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  c.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return { out: () => text, exit: new Promise((r) => c.once('exit', (code) => r(code))) };
}

/** Container ids of the runc invocations of kiln process `c`. */
async function ids(c: ChildProcess): Promise<string[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => / run --bundle /.test(l))
    .map((l) => l.split(' ').at(-1) ?? '')
    .filter((id) => id.startsWith(`kiln-${c.pid}-`));
}

/** Pids of the runc processes (or their wrappers) of kiln process `c`. */
function runcsOf(c: ChildProcess): number[] {
  const r = spawnSync('pgrep', ['-f', `run --bundle .*kiln-${c.pid}-[0-9a-f]+$`], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

describe('pre-started runc in this process', () => {
  let snapshotter: LocalSnapshotter;
  let executor: RuncExecutor;
  let counter = 0;

  beforeAll(async () => {
    const inProcess = join(dir, 'in-process');
    snapshotter = new LocalSnapshotter({ root: inProcess });
    executor = new RuncExecutor({ root: inProcess });
    await unpackLayer(snapshotter, 'busybox', undefined, createReadStream(BUSYBOX_LAYER));
  });

  afterAll(async () => {
    await rm(executor.runtimeDir, { recursive: true, force: true });
  });

  /** runc processes of this executor (waiting or running). */
  const runcs = (): string[] =>
    spawnSync('pgrep', ['-af', `run --bundle ${executor.runtimeDir}/`], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '');

  /** This process's open fds on a bundle's config.json (the FIFOs of waiting runc processes). */
  const fifoFds = (): string[] =>
    readdirSync('/proc/self/fd')
      .map((f) => {
        try {
          return readlinkSync(`/proc/self/fd/${f}`);
        } catch {
          return '';
        }
      })
      .filter((l) => l.includes('config.json'));

  /** Waits for withdrawn runc processes to exit, and a moment for their cleanup. */
  async function settled(): Promise<void> {
    await until('the runc processes to exit', () => runcs().length === 0);
    await new Promise((r) => setTimeout(r, 200));
  }

  async function left(): Promise<{ runcs: string[]; bundles: string[]; containers: string[]; fifos: string[] }> {
    return {
      runcs: runcs(),
      bundles: await readdir(join(executor.runtimeDir, 'bundles')),
      containers: await readdir(join(executor.runtimeDir, 'runc')),
      fifos: fifoFds(),
    };
  }
  const nothing = { runcs: [], bundles: [], containers: [], fifos: [] };

  async function run(args: string[], prepared?: ExecPreparation, signal?: AbortSignal): Promise<number> {
    const snapshot = `s${++counter}`;
    await snapshotter.prepare(snapshot, 'busybox');
    const r = await executor.run({
      rootfs: await snapshotter.mounts(snapshot),
      process: { args, env: [] },
      ...(prepared === undefined ? {} : { prepared }),
      ...(signal === undefined ? {} : { signal }),
    });
    return r.exitCode;
  }

  test('runs aborted at once or while their runc starts are cancelled and leave no runc, bundle, container or FIFO fd', async () => {
    for (const ms of [0, 1, 3, 10, 30]) {
      const ac = new AbortController();
      const prep = executor.prepare();
      setTimeout(() => ac.abort(new Error('interrupted')), ms);
      await expect(run(['sleep', '2'], prep, ac.signal)).rejects.toMatchObject({ code: 'CANCELLED' });
      prep.release();
    }
    await settled();
    expect(await left()).toEqual(nothing);
  });

  test('five announced runs at once, one failing in runc: exit codes and the runc error pass, nothing is left', async () => {
    const preps = [0, 1, 2, 3, 4].map(() => executor.prepare());
    const rs = await Promise.allSettled(preps.map((p, i) => run(i === 2 ? ['/no/such/bin'] : ['sh', '-c', `exit ${i}`], p)));
    expect(rs.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as { code?: string }).code))).toEqual([0, 1, 'EXEC_FAILED', 3, 4]);
    await settled();
    expect(await left()).toEqual(nothing);
  });

  test('runs announced and withdrawn at once, and after their runc started, leave nothing', async () => {
    for (let i = 0; i < 20; i++) executor.prepare().release();
    const preps = [1, 2, 3].map(() => executor.prepare());
    await until('two waiting runc processes', () => runcs().length === 2 && fifoFds().length === 2);
    for (const p of preps) p.release();
    await settled();
    expect(await left()).toEqual(nothing);
  });

  test('a run whose announcement was withdrawn, and an unannounced run while an announced one waits, all run', async () => {
    const a = executor.prepare();
    a.release();
    expect(await run(['true'], a)).toBe(0);
    const b = executor.prepare();
    await until('a waiting runc', () => runcs().length === 1);
    expect(await run(['sh', '-c', 'exit 5'])).toBe(5);
    expect(await run(['sh', '-c', 'exit 6'], b)).toBe(6);
    await settled();
    expect(await left()).toEqual(nothing);
  });
});

describe('pre-started runc when runc is missing', () => {
  test('an announced run and a run with runc missing: the run rejects PREREQUISITE_MISSING and kiln lives on (no unhandled rejection of the failed spawn)', async () => {
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs, { recursive: true });
    const c = kiln(
      `const prep = e.prepare();
       await new Promise((r) => setTimeout(r, 300));
       const req = { rootfs: [{ type: 'bind', source: ${JSON.stringify(rootfs)}, options: ['rbind', 'ro'] }], process: { args: ['true'], env: [] }, prepared: prep };
       await e.run(req).catch((err) => console.log(err.code));
       await new Promise((r) => setTimeout(r, 300));
       console.log('alive');`,
      join(dir, 'no-such-runc'),
    );
    const o = output(c);
    expect(await o.exit, o.out()).toBe(0);
    expect(o.out()).toBe('PREREQUISITE_MISSING\nalive\n');
  });
});

describe('pre-started runc when the process helper or kiln goes away', () => {
  test('Ctrl-C (SIGINT to the process group: the helper dies with it) while runc processes wait: kiln cancels cleanly instead of crashing on an unhandled rejection', async () => {
    const c = kiln(
      `const preps = [e.prepare(), e.prepare()];
       process.on('SIGINT', () => setTimeout(() => { for (const p of preps) p.release(); console.log('cancelled cleanly'); process.exit(0); }, 500));
       setInterval(() => undefined, 1000);`,
      wrapper,
      true,
    );
    const o = output(c);
    await until('two waiting runc processes', async () => (await ids(c)).length === 2 && runcsOf(c).length === 2);
    await new Promise((r) => setTimeout(r, 200));
    process.kill(-(c.pid ?? 0), 'SIGINT');
    expect(await o.exit, o.out()).toBe(0);
    expect(o.out()).toBe('cancelled cleanly\n');
    await until('no runc of that process left', () => runcsOf(c).length === 0);
  });

  test('the helper killed alone (OOM killer, kill) while runc processes wait: kiln keeps running and the orphaned runc processes are killed, not left waiting for a config', async () => {
    const c = kiln(
      `const preps = [e.prepare(), e.prepare()];
       process.on('SIGTERM', () => { for (const p of preps) p.release(); console.log('done'); process.exit(0); });
       setInterval(() => undefined, 1000);`,
      wrapper,
    );
    const o = output(c);
    await until('two waiting runc processes', async () => (await ids(c)).length === 2 && runcsOf(c).length === 2);
    const helper = Number(execFileSync('pgrep', ['-P', String(c.pid), 'perl'], { encoding: 'utf8' }).trim());
    process.kill(helper, 'SIGKILL');
    // kiln still runs and holds the FIFOs: nobody but kiln can end these runc processes now.
    await until('the orphaned runc processes to be killed', () => runcsOf(c).length === 0, 3000);
    expect(c.exitCode).toBe(null);
    c.kill('SIGTERM');
    expect(await o.exit, o.out()).toBe(0);
    expect(o.out()).toBe('done\n');
  });

  test('kiln killed while the helper is blocked writing output to it: the helper still kills the runc waiting for its config', async () => {
    // A chatty held process fills the helper's pipe to kiln while kiln's event loop is blocked,
    // so the helper sits in a write when kiln dies and learns of it from EPIPE, not from stdin.
    const c = kiln(
      `const { readFileSync } = await import('node:fs');
       spawnViaHelper('yes', ['kiln']);
       e.prepare();
       // Blocked for good once the runc has been started.
       const t = setInterval(() => {
         if (readFileSync(${JSON.stringify(log)}, 'utf8').includes('kiln-' + process.pid + '-')) { clearInterval(t); for (;;); }
       }, 5);`,
      slowWrapper,
    );
    await until('the pre-started (slow) runc', async () => (await ids(c)).length === 1);
    const [id] = await ids(c);
    await new Promise((r) => setTimeout(r, 300));
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
    // Without a kill it would exec runc a moment later and wait forever for a writer on its FIFO.
    await new Promise((r) => setTimeout(r, 2000));
    expect(runcsOf(c), `runc ${id ?? ''} still waiting`).toEqual([]);
    expect(spawnSync('pgrep', ['-x', '-f', 'yes kiln']).status).toBe(1);
  });
});
