import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { ExecRequest, OutputLine } from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';
import { compiledRuntime, useExecutorSandbox } from './executor-helpers.js';

const sb = useExecutorSandbox('kiln-exec-stdio-');
let counter = 0;

/** A Writable that keeps every chunk, and whether it was ended. */
function collector(): { stream: Writable; bytes(): Buffer; ended(): boolean } {
  const chunks: Buffer[] = [];
  let ended = false;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks), ended: () => ended };
}

async function runStdio(args: string[], stdin: Readable, extra: Partial<ExecRequest> = {}) {
  const snapshot = `s${++counter}`;
  await sb.snapshotter.prepare(snapshot, 'busybox');
  const out = collector();
  const lines: OutputLine[] = [];
  try {
    const result = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts(snapshot),
      process: { args, env: ['PATH=/bin:/usr/bin'] },
      stdio: { stdin, stdout: out.stream },
      onOutput: (l) => lines.push(l),
      ...extra,
    });
    return { result, stdout: out.bytes(), ended: out.ended(), lines };
  } finally {
    await sb.snapshotter.remove(snapshot);
  }
}

const leftovers = (): Promise<string[]> => sb.leftovers();

describe('runc executor, stdio mode', () => {
  test('cat echoes 8 MiB of random bytes from stdin to stdout unchanged; stderr comes as output lines; stdout is ended', async () => {
    const data = randomBytes(8 << 20);
    const r = await runStdio(['sh', '-c', 'cat; echo "done $?" >&2'], Readable.from([data.subarray(0, 3 << 20), data.subarray(3 << 20)]));
    expect(r.result.exitCode).toBe(0);
    expect(r.stdout.length).toBe(data.length);
    expect(r.stdout.equals(data)).toBe(true);
    expect(r.ended).toBe(true);
    expect(r.lines.map((l) => [l.stream, l.line])).toEqual([['stderr', 'done 0']]);
    expect(await leftovers()).toEqual([]);
  });

  test('a request/answer exchange: the container answers each line while stdin stays open', async () => {
    const input = new PassThrough();
    const answers: string[] = [];
    const snapshot = `s${++counter}`;
    await sb.snapshotter.prepare(snapshot, 'busybox');
    const stdout = new Writable({
      write(chunk: Buffer, _enc, cb) {
        answers.push(chunk.toString());
        // the next request only once the answer to this one came back
        const answered = answers.join('').split('\n').length - 1;
        if (answered < 3) input.write(`req${answered}\n`);
        else input.end();
        cb();
      },
    });
    input.write('req0\n');
    const result = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts(snapshot),
      process: { args: ['sh', '-c', 'while read l; do echo "ans-$l"; done; exit 7'], env: [] },
      stdio: { stdin: input, stdout },
    });
    await sb.snapshotter.remove(snapshot);
    expect(result.exitCode).toBe(7);
    expect(answers.join('')).toBe('ans-req0\nans-req1\nans-req2\n');
  });

  test('a process that exits without reading stdin: the run ends, the caller keeps its stream', async () => {
    const input = new PassThrough();
    input.write(randomBytes(1 << 20));
    const r = await runStdio(['sh', '-c', 'echo oops >&2; exit 3'], input);
    expect(r.result.exitCode).toBe(3);
    expect(r.lines.map((l) => l.line)).toEqual(['oops']);
    expect(r.ended).toBe(true);
    expect(input.destroyed).toBe(false);
    expect(input.listenerCount('data')).toBe(0);
    input.destroy();
  });

  test('cancel kills the container while it waits on stdin, and leaves no runc state, bundle or mount', async () => {
    const ac = new AbortController();
    const input = new PassThrough();
    const started = Date.now();
    const p = runStdio(['sh', '-c', 'cat >/dev/null; sleep 1009'], input, { signal: ac.signal });
    setTimeout(() => ac.abort(), 500);
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await leftovers()).toEqual([]);
    expect(await mountsUnder(sb.root)).toEqual([]);
    expect(spawnSync('pgrep', ['-f', 'cat >/dev/null; sleep 1009']).status).toBe(1);
    input.destroy();
  });

  test('an announced run used for a stream run is withdrawn; normal runs still work after it', async () => {
    const prepared = sb.executor.prepare();
    const r = await runStdio(['cat'], Readable.from([Buffer.from('x')]), { prepared });
    expect(r.stdout.toString()).toBe('x');
    const snapshot = `s${++counter}`;
    await sb.snapshotter.prepare(snapshot, 'busybox');
    const lines: OutputLine[] = [];
    const n = await sb.executor.run({ rootfs: await sb.snapshotter.mounts(snapshot), process: { args: ['echo', 'normal'], env: [] }, onOutput: (l) => lines.push(l) });
    await sb.snapshotter.remove(snapshot);
    expect(n.exitCode).toBe(0);
    expect(lines.map((l) => l.line)).toEqual(['normal']);
    // no pre-started runc keeps waiting for a run that will not come
    await new Promise((r) => setTimeout(r, 200));
    expect(await leftovers()).toEqual([]);
  });
});

describe('runc executor, stdio mode: edges', () => {
  test('cancel while the caller has stopped reading stdout (the container writes on): the run still ends, nothing stays', async () => {
    const ac = new AbortController();
    // Takes the first chunk and never calls back: the caller is stuck, the pipe fills.
    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined });
    const started = Date.now();
    const input = new PassThrough();
    const p = runStdio(['sh', '-c', 'while :; do cat /bin/busybox; done; sleep 1019'], input, { signal: ac.signal, stdio: { stdin: input, stdout: stuck } });
    setTimeout(() => ac.abort(), 500);
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await leftovers()).toEqual([]);
    expect(spawnSync('pgrep', ['-f', 'cat /bin/busybox; done; sleep 1019']).status).toBe(1);
    stuck.destroy();
    input.destroy();
  });

  test('a slow reader still gets every byte the container wrote before it exited', async () => {
    const chunks: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        setTimeout(cb, 2);
      },
    });
    const input = new PassThrough();
    const r = await runStdio(['sh', '-c', 'wc -c < /bin/busybox >&2; cat /bin/busybox /bin/busybox; exit 5'], input, { stdio: { stdin: input, stdout: slow } });
    expect(r.result.exitCode).toBe(5);
    const size = Number(r.lines[0]?.line.trim());
    expect(size).toBeGreaterThan(1 << 20);
    expect(Buffer.concat(chunks).length).toBe(2 * size);
    input.destroy();
  });

  test('a process runc cannot start: EXEC_FAILED with runc\'s reason, nothing left', async () => {
    const p = runStdio(['/no/such/frontend'], new PassThrough());
    await expect(p).rejects.toMatchObject({ code: 'EXEC_FAILED', message: expect.stringContaining('exec: "/no/such/frontend": stat /no/such/frontend: no such file or directory') });
    expect(await leftovers()).toEqual([]);
  });
});

describe('runc executor, stdio mode, kiln killed', () => {
  test('after its kiln process died (SIGKILL) the stream run\'s container is stopped, and recover() removes its state', { timeout: 120_000 }, async () => {
    // The other process runs the compiled runtime: brought up to date first (one tsc at a time).
    const dist = compiledRuntime();
    const tag = String(100000 + Math.floor(Math.random() * 800000));
    const snapshot = `killed${++counter}`;
    await sb.snapshotter.prepare(snapshot, 'busybox');
    // Another kiln process: a stream run (as an external frontend's container), then killed outright.
    const script = `
      const { PassThrough } = await import('node:stream');
      const { LocalSnapshotter, RuncExecutor } = await import(${JSON.stringify(dist)});
      const root = ${JSON.stringify(sb.root)};
      const s = new LocalSnapshotter({ root });
      const stdout = new PassThrough();
      stdout.on('data', (d) => process.stdout.write(d));
      void new RuncExecutor({ root }).run({ rootfs: await s.mounts(${JSON.stringify(snapshot)}), process: { args: ['sh', '-c', 'echo ready; exec sleep ${tag}'], env: ['PATH=/bin'] }, stdio: { stdin: new PassThrough(), stdout } });
      setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : undefined));
        child.once('exit', (code) => reject(new Error(`the kiln child exited (${code}) before its container ran`)));
      });
      const sleepers = (): string => spawnSync('pgrep', ['-f', `sleep ${tag}`], { encoding: 'utf8' }).stdout.trim();
      expect(sleepers()).not.toBe('');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // runc runs in its own process group: without the helper's runc kill the sleep runs on.
      for (let i = 0; i < 500 && sleepers() !== ''; i++) await new Promise((r) => setTimeout(r, 20));
      expect(sleepers()).toBe('');
      expect(await sb.executor.recover()).toBe(1);
      expect(await leftovers()).toEqual([]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await sb.snapshotter.remove(snapshot);
    }
  });
});
