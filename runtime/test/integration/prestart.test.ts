import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { readOrEmpty } from './executor-helpers.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalSnapshotter, RuncExecutor, unpackLayer, type ExecPreparation, type OutputLine } from '@kiln/runtime';

// Runs announced ahead (Executor.prepare): runc is started before the run and waits for its
// config on a FIFO. A wrapper in front of the real runc logs each invocation with its time, so
// the tests see which runc processes were started and when.

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;
const RUNTIME_DIST = new URL('../../dist/index.js', import.meta.url).pathname;

let dir = '';
let root = '';
let log = '';
let wrapper = '';
let snapshotter: LocalSnapshotter;
let executor: RuncExecutor;
let counter = 0;

beforeAll(async () => {
  const real = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
  if (real === '') throw new Error('runc is required for these tests: apt-get install runc');
  // One case runs a kiln process from the compiled runtime: built from the sources under test
  // (incremental; one build at a time across test workers).
  const tsc = `"${process.execPath}" node_modules/typescript/bin/tsc -b runtime`;
  execFileSync('flock', ['/tmp/kiln-cli-tsc.lock', 'sh', '-c', tsc], { cwd: new URL('../../../', import.meta.url).pathname, stdio: 'inherit' });
  dir = await mkdtemp(join(tmpdir(), 'kiln-prestart-'));
  root = join(dir, 'root');
  log = join(dir, 'runc.log');
  wrapper = join(dir, 'runc');
  // Milliseconds since the epoch, then the arguments; exec keeps the pid runc's.
  await writeFile(wrapper, `#!/bin/sh\necho "$(date +%s%3N) $*" >> ${log}\nexec ${real} "$@"\n`);
  await chmod(wrapper, 0o755);
  snapshotter = new LocalSnapshotter({ root });
  executor = new RuncExecutor({ root, runc: wrapper });
  await unpackLayer(snapshotter, 'busybox', undefined, createReadStream(BUSYBOX_LAYER));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(executor.runtimeDir, { recursive: true, force: true });
});

/** `runc run` invocations so far: time (ms) and container id. */
async function invocations(): Promise<{ time: number; id: string }[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => / run --bundle /.test(l))
    .map((l) => ({ time: Number(l.split(' ')[0]), id: l.split(' ').at(-1) ?? '' }));
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function runcAlive(id: string): boolean {
  return spawnSync('pgrep', ['-f', `run --bundle .*${id}$`]).status === 0;
}

async function run(args: string[], prepared?: ExecPreparation, env: string[] = [], on: RuncExecutor = executor): Promise<{ exitCode: number; stdout: string }> {
  const snapshot = `s${++counter}`;
  await snapshotter.prepare(snapshot, 'busybox');
  const lines: OutputLine[] = [];
  const result = await on.run({
    rootfs: await snapshotter.mounts(snapshot),
    process: { args, env },
    onOutput: (l) => lines.push(l),
    ...(prepared === undefined ? {} : { prepared }),
  });
  return { exitCode: result.exitCode, stdout: lines.filter((l) => l.stream === 'stdout').map((l) => `${l.line}\n`).join('') };
}

describe('runc started ahead for announced runs', () => {
  test('a prepared run uses the runc started before it: one invocation, config through a FIFO (a secret env value is in no file), exit code passes', async () => {
    const before = (await invocations()).length;
    const prep = executor.prepare();
    await until('the pre-started runc', async () => (await invocations()).length === before + 1);
    const started = (await invocations())[before];
    await new Promise((r) => setTimeout(r, 50));
    const called = Date.now();
    const secret = `topsecret-${process.pid}-${Date.now()}`;
    const pending = run(['sh', '-c', 'sleep 0.5; echo "got $SECRET"; exit 3'], prep, [`SECRET=${secret}`]);
    // While it runs: the bundle's config.json is a FIFO, and no file under the runtime dir holds the secret.
    const bundle = join(executor.runtimeDir, 'bundles', started?.id ?? '');
    await until('the container', () => spawnSync('pgrep', ['-f', '^sleep 0.5$']).status === 0);
    expect((await lstat(join(bundle, 'config.json'))).isFIFO()).toBe(true);
    expect(spawnSync('grep', ['-r', '-l', secret, executor.runtimeDir, root]).stdout.toString()).toBe('');
    const r = await pending;
    expect(r).toEqual({ exitCode: 3, stdout: `got ${secret}\n` });
    expect((started?.time ?? Infinity) < called).toBe(true);
    expect((await invocations()).length).toBe(before + 1);
    expect(await readdir(join(executor.runtimeDir, 'runc'))).toEqual([]);
    expect((await readdir(join(executor.runtimeDir, 'bundles'))).includes(started?.id ?? '')).toBe(false);
  });

  test('a config larger than a pipe (64 KiB) reaches runc whole', async () => {
    // Four values of 50,000 bytes (one environment string may not exceed 128 KiB).
    const env = [1, 2, 3, 4].map((i) => `BIG${i}=${String(i).repeat(50_000)}`);
    const prep = executor.prepare();
    const r = await run(['sh', '-c', 'echo $((${#BIG1} + ${#BIG2} + ${#BIG3} + ${#BIG4})) ${BIG4:49999}'], prep, env);
    expect(r).toEqual({ exitCode: 0, stdout: '200000 4\n' });
  });

  test('at most two wait, never more than announced runs; a taken one is replaced when its container exits; withdrawn ones exit without a container', async () => {
    const before = (await invocations()).length;
    const preps = [executor.prepare(), executor.prepare(), executor.prepare()];
    await until('two pre-started runcs', async () => (await invocations()).length === before + 2);
    await new Promise((r) => setTimeout(r, 200));
    expect((await invocations()).length).toBe(before + 2);
    expect(await run(['true'], preps[0])).toEqual({ exitCode: 0, stdout: '' });
    // Two runs still announced, one waiting: the exit started one more.
    await until('the replacement', async () => (await invocations()).length === before + 3);
    const waiting = (await invocations()).slice(before).map((i) => i.id);
    preps[1]?.release();
    preps[2]?.release();
    // Released twice: nothing more happens.
    preps[1]?.release();
    await until('the withdrawn runcs to exit', () => waiting.every((id) => !runcAlive(id)));
    await until('their bundles to go', async () => {
      const left = await readdir(join(executor.runtimeDir, 'bundles'));
      return waiting.every((id) => !left.includes(id));
    });
    expect(await readdir(join(executor.runtimeDir, 'runc'))).toEqual([]);
    expect((await invocations()).length).toBe(before + 3);
  });

  test('a run that was not announced starts its own runc; no runc is started ahead for it', async () => {
    const before = (await invocations()).length;
    expect(await run(['sh', '-c', 'echo plain'])).toEqual({ exitCode: 0, stdout: 'plain\n' });
    await new Promise((r) => setTimeout(r, 200));
    expect((await invocations()).length).toBe(before + 1);
  });

  test('a pre-started runc killed before it read its config (the config still in the FIFO): the run starts another runc instead of reporting exit 137', async () => {
    // runc starts a second after its wrapper: the config is written while nobody reads it yet.
    const slow = join(dir, 'runc-slow');
    await writeFile(slow, `#!/bin/sh\necho "$(date +%s%3N) $*" >> ${log}\nsleep 1\nexec ${execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim()} "$@"\n`);
    await chmod(slow, 0o755);
    const slowExecutor = new RuncExecutor({ root, runc: slow });
    const before = (await invocations()).length;
    const prep = slowExecutor.prepare();
    await until('the pre-started runc', async () => (await invocations()).length === before + 1);
    const id = (await invocations())[before]?.id ?? '';
    const pending = run(['sh', '-c', 'echo ok'], prep, [], slowExecutor);
    await new Promise((r) => setTimeout(r, 300));
    expect(spawnSync('pkill', ['-KILL', '-f', `run --bundle .*${id}$`]).status).toBe(0);
    expect(await pending).toEqual({ exitCode: 0, stdout: 'ok\n' });
    expect((await invocations()).length).toBe(before + 2);
    expect(await readdir(join(executor.runtimeDir, 'runc'))).toEqual([]);
  });

  test('a kiln process whose last announced run is withdrawn ends only after its waiting runc is gone, bundle removed (nothing left for recover())', async () => {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { readFileSync } from 'node:fs';
         const { RuncExecutor } = await import(${JSON.stringify(RUNTIME_DIST)});
         const e = new RuncExecutor({ root: ${JSON.stringify(root)}, runc: ${JSON.stringify(wrapper)} });
         const prep = e.prepare();
         while (!readFileSync(${JSON.stringify(log)}, 'utf8').includes('kiln-' + process.pid + '-')) await new Promise((r) => setTimeout(r, 20));
         await new Promise((r) => setTimeout(r, 300));
         prep.release();`,
      ],
      { stdio: 'ignore' },
    );
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    const ids = (await invocations()).map((i) => i.id).filter((id) => id.startsWith(`kiln-${child.pid}-`));
    expect(ids).toHaveLength(1);
    expect(runcAlive(ids[0] ?? '')).toBe(false);
    expect((await readdir(join(executor.runtimeDir, 'bundles'))).filter((n) => n.startsWith(`kiln-${child.pid}-`))).toEqual([]);
  });

  test('recover() drops the runtime dir (/dev/shm) of a kiln root that no longer exists, and keeps those of roots that do', async () => {
    const goneRoot = await mkdtemp(join(tmpdir(), 'kiln-gone-root-'));
    const other = new RuncExecutor({ root: goneRoot, runc: wrapper });
    other.prepare().release();
    expect(await readFile(join(other.runtimeDir, 'root'), 'utf8')).toBe(goneRoot);
    await until('the withdrawn runc to go', async () => (await readdir(join(other.runtimeDir, 'bundles')).catch(() => [])).length === 0);
    await rm(goneRoot, { recursive: true });
    await executor.recover();
    await expect(lstat(other.runtimeDir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await lstat(executor.runtimeDir)).isDirectory()).toBe(true);
  });

  test('recover() kills a runc of a dead kiln process still waiting to open its config FIFO (kiln and its helper both killed) and removes its bundle', async () => {
    const dead = spawnSync('true').pid ?? 999_999;
    const id = `kiln-${dead}-0badf1f0`;
    const bundle = join(executor.runtimeDir, 'bundles', id);
    execFileSync('mkdir', ['-p', bundle]);
    execFileSync('mkfifo', [join(bundle, 'config.json')]);
    const stuck = spawn(wrapper, ['--root', join(executor.runtimeDir, 'runc'), 'run', '--bundle', bundle, id], { stdio: 'ignore', detached: true });
    await until('runc to wait on the FIFO', () => runcAlive(id) && readOrEmpty(`/proc/${stuck.pid}/wchan`) === 'wait_for_partner');
    expect(await new RuncExecutor({ root, runc: wrapper }).recover()).toBe(1);
    await until('the stuck runc to die', () => !runcAlive(id));
    expect((await readdir(join(executor.runtimeDir, 'bundles'))).includes(id)).toBe(false);
  });

  test('a kiln process that exits with a runc waiting takes it along (the process helper kills it); recover() removes its bundle', async () => {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { RuncExecutor } = await import(${JSON.stringify(RUNTIME_DIST)});
         const e = new RuncExecutor({ root: ${JSON.stringify(root)}, runc: ${JSON.stringify(wrapper)} });
         e.prepare();
         setTimeout(() => process.exit(0), 1500);`,
      ],
      { stdio: 'ignore' },
    );
    // Listened for now: the child exits on its own after 1.5 s, maybe before the waits below end.
    const exited = new Promise((r) => child.once('exit', r));
    const before = (await invocations()).length;
    await until('the pre-started runc of the child', async () => (await invocations()).length === before + 1);
    const id = (await invocations())[before]?.id ?? '';
    expect(id).toMatch(new RegExp(`^kiln-${child.pid}-`));
    await until('the runc to start', () => runcAlive(id));
    await exited;
    await until('the waiting runc to be killed', () => !runcAlive(id));
    expect(await readdir(join(executor.runtimeDir, 'runc'))).toEqual([]);
    expect(await new RuncExecutor({ root, runc: wrapper }).recover()).toBe(1);
    expect((await readdir(join(executor.runtimeDir, 'bundles'))).includes(id)).toBe(false);
  });
});
