import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

// Pre-started runc processes (see prestart.test.ts) when the process helper or kiln goes away at
// a bad moment. Each case runs a kiln process of its own (the helper is one per process and is
// not restarted once dead), from the built runtime: `npx tsc -b` first.

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
  // The children run the compiled runtime: it must be built from the sources under test.
  for (const f of ['prestart', 'process-helper', 'runc']) {
    const src = statSync(join(RUNTIME, 'src/executor', `${f}.ts`)).mtimeMs;
    const out = statSync(join(DIST, 'executor', `${f}.js`), { throwIfNoEntry: false })?.mtimeMs ?? 0;
    if (out < src) throw new Error(`runtime/dist/executor/${f}.js is older than its source: run \`npx tsc -b\` first`);
  }
  dir = await mkdtemp(join(tmpdir(), 'kiln-prestart-helper-'));
  root = join(dir, 'root');
  log = join(dir, 'runc.log');
  wrapper = join(dir, 'runc');
  slowWrapper = join(dir, 'runc-slow');
  // Logs each invocation; exec keeps the pid runc's. The slow one stands for a loaded machine:
  // runc reaches its config.json a second after it was started.
  await writeFile(wrapper, `#!/bin/sh\necho "$*" >> ${log}\nexec ${real} "$@"\n`);
  await writeFile(slowWrapper, `#!/bin/sh\necho "$*" >> ${log}\nsleep 1\nexec ${real} "$@"\n`);
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
      `spawnViaHelper('yes', ['kiln']);
       e.prepare();
       setTimeout(() => { for (;;); }, 150);`,
      slowWrapper,
    );
    await until('the pre-started (slow) runc', async () => (await ids(c)).length === 1);
    const [id] = await ids(c);
    await new Promise((r) => setTimeout(r, 300));
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
    // Without a kill it would exec runc a moment later and wait forever for a writer on its FIFO.
    await new Promise((r) => setTimeout(r, 1500));
    expect(runcsOf(c), `runc ${id ?? ''} still waiting`).toEqual([]);
    expect(spawnSync('pgrep', ['-x', '-f', 'yes kiln']).status).toBe(1);
  });
});
