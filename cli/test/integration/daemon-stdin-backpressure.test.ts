import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { withFileLock } from '@kiln/solver';
import { Frame, FrameReader, frame } from '../../src/daemon/protocol.js';
import { runKilnInProcess, startDaemon, token, useSandbox, type KilnSandbox } from './build-helpers.js';

// The daemon reads a client's stdin no faster than the command consumes it: `docker save | kiln
// load` of GBs must not sit in the daemon's memory while the store writes.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

test('kiln daemon stops reading a client stdin the command does not take yet, and the load still gets every byte', async () => {
  const t = token();
  // An OCI archive of busybox behind a 40 MiB entry kiln load stores and never names.
  const dir = join(sb.dir, `bp-${t}`);
  await mkdir(dir, { recursive: true });
  const saved = join(sb.dir, `bp-${t}.tar`);
  expect((await runKilnInProcess(sb, ['tag', 'busybox', `bp-${t}:1`, '--root', sb.root], { env: { KILN_DAEMON: '0' } })).code).toBe(0);
  expect((await runKilnInProcess(sb, ['save', `bp-${t}:1`, '-o', saved, '--root', sb.root], { env: { KILN_DAEMON: '0' } })).code).toBe(0);
  expect((await runKilnInProcess(sb, ['rmi', `bp-${t}:1`, '--root', sb.root], { env: { KILN_DAEMON: '0' } })).code).toBe(0);
  await writeFile(join(dir, 'padding'), Buffer.alloc(40 * 1024 * 1024, 7));
  execFileSync('tar', ['-xf', saved, '-C', dir]);
  const archive = execFileSync('tar', ['-C', dir, '-cf', '-', 'padding', 'oci-layout', 'blobs', 'index.json'], { maxBuffer: 1 << 27 });

  const socket = join(sb.dir, `bp-run-${t}`, 'kilnd.sock');
  const daemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  // The load waits for the GC lock (as while a prune runs) before it reads a byte of stdin.
  let release = (): void => undefined;
  const held = new Promise<void>((r) => (release = r));
  let locked = (): void => undefined;
  const hasLock = new Promise<void>((r) => (locked = r));
  const lock = withFileLock(join(sb.root, 'engine', 'gc.lock'), undefined, async () => {
    locked();
    await held;
  });
  try {
    await hasLock;
    const conn = connect(socket);
    await new Promise<void>((r) => conn.once('connect', () => r()));
    let stderr = '';
    let stdout = '';
    const exit = new Promise<number>((resolve) => {
      const reader = new FrameReader((kind, payload) => {
        if (kind === Frame.Stderr) stderr += payload.toString();
        else if (kind === Frame.Stdout) stdout += payload.toString();
        else if (kind === Frame.Exit) resolve(Number(payload.toString()));
      });
      conn.on('data', (c: Buffer) => reader.push(c));
    });
    const env = { ...process.env, PATH: sb.path };
    conn.write(frame(Frame.Hello, JSON.stringify({ version: 1, pid: process.pid, argv: [process.execPath, 'kiln', 'load', '--root', sb.root], cwd: sb.dir, env, stdin: { isTTY: false }, stdout: { isTTY: false }, stderr: { isTTY: false } })));
    // As a client that reads its stdin faster than the daemon takes it: all of it at once.
    for (let i = 0; i < archive.length; i += 65536) conn.write(frame(Frame.Stdin, archive.subarray(i, i + 65536)));
    conn.write(frame(Frame.StdinEnd));
    for (let i = 0; i < 100 && !daemon.log().includes('started load'); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1500));
    // The daemon took a few MB and stopped: the rest waits here, in the client (the kernel holds a little).
    expect(conn.writableLength).toBeGreaterThan(archive.length - 16 * 1024 * 1024);
    release();
    expect(await exit).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toBe(`Loaded image: docker.io/library/bp-${t}:1\n`);
    conn.destroy();
  } finally {
    release();
    await lock;
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
}, 180_000);
