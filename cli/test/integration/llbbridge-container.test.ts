import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { image, type ContainerProcess, type FrontendClient, type FrontendResult } from '@kiln/llb-core';
import { FrontendRegistry, Gateway, connectLLBBridge, serveLLBBridge } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend } from '../../src/engine/backend.js';
import { makeSandbox, requireTools, type KilnSandbox } from './build-helpers.js';

// BuildKit's gateway containers end to end over LLBBridge: a frontend on the LLBBridge client
// side (connectLLBBridge, what runs in a frontend image) asks kiln's LLBBridge server
// (serveLLBBridge over the real in-process gateway client, SolverBackend, runc, overlay
// snapshots, the busybox base) for a container from a ref it solved, and runs `cat` in it through
// ExecProcess. The two sides talk over a unix socket, as over a frontend container's pipes.

let sb: KilnSandbox;
let engine: KilnEngine;
let sockDir: string;

beforeAll(async () => {
  requireTools();
  sb = await makeSandbox();
  engine = await KilnEngine.open({ root: sb.root });
  sockDir = await mkdtemp(join(tmpdir(), 'kiln-bridge-ctr-'));
}, 120_000);

afterAll(async () => {
  engine?.close();
  await sb?.cleanup();
  if (sockDir !== undefined) await rm(sockDir, { recursive: true, force: true });
});

async function socketPair(): Promise<[Duplex, Duplex]> {
  const path = join(sockDir, `${randomBytes(4).toString('hex')}.sock`);
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    }).listen(path);
  });
  const c = connect(path);
  return [await accepted, c];
}

/**
 * A build whose frontend serves LLBBridge over the gateway's real client and runs `remote` as an
 * LLBBridge frontend against it; the build's result is what `remote` returned.
 */
async function buildOverBridge(remote: (client: Awaited<ReturnType<typeof connectLLBBridge>>) => Promise<void>): Promise<FrontendResult> {
  const solver = engine.solver({ localDirs: {} });
  const backend = new SolverBackend(engine, solver, {});
  let served: FrontendResult | undefined;
  const frontend = async (client: FrontendClient): Promise<FrontendResult> => {
    const [daemonSide, frontendSide] = await socketPair();
    const serving = serveLLBBridge(daemonSide, client);
    const bridged = await connectLLBBridge(frontendSide, {}, { log: () => undefined });
    const [result] = await Promise.all([serving, remote(bridged)]);
    served = result;
    return result;
  };
  const gateway = new Gateway(backend, new FrontendRegistry().register('test/bridge-ctr', frontend));
  try {
    await gateway.build({ frontend: 'test/bridge-ctr', opts: new Map(), inputs: new Map() });
  } finally {
    await backend.release();
  }
  if (served === undefined) throw new Error('the frontend did not return');
  return served;
}

describe('LLBBridge containers over a real kiln gateway and runc', () => {
  test('a bridged frontend makes a container from its ref and runs cat: stdin back byte for byte, stderr apart, exit codes, release', async () => {
    const data = randomBytes(256 * 1024 + 3);
    const seen: { out?: Buffer; err?: string; code?: number; fail?: number; releasedStart?: unknown; refused?: unknown; tty?: string; ttyCode?: number; missing?: unknown; left?: ContainerProcess } = {};
    const result = await buildOverBridge(async (client) => {
      const definition = await image('busybox')
        .run({ args: ['sh', '-c', 'echo from-ref > /data'] })
        .root()
        .marshal();
      const ref = await client.solve({ definition, evaluate: true });
      const container = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      async function* stdin(): AsyncGenerator<Uint8Array> {
        yield data.subarray(0, 1000);
        yield data.subarray(1000);
      }
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const cat = await container.start({
        args: ['sh', '-c', 'cat; cat /data >&2'],
        env: ['PATH=/bin'],
        stdin: stdin(),
        stdout: (c) => { out.push(Buffer.from(c)); },
        stderr: (c) => { err.push(Buffer.from(c)); },
      });
      seen.code = await cat.wait();
      seen.out = Buffer.concat(out);
      seen.err = Buffer.concat(err).toString();
      await container.release();
      // The first process is the container's init: once it exited, the container is done; a new one runs the next.
      const second = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      const failing = await second.start({ args: ['sh', '-c', 'exit 7'], env: ['PATH=/bin'] });
      seen.fail = await failing.wait();
      await second.release();
      seen.releasedStart = await second.start({ args: ['true'] }).then(
        () => 'started',
        (e: unknown) => e,
      );
      // What kiln's gateway refuses comes back with its message and hint (KLN0620: a relative mount point).
      seen.refused = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }, { dest: 'rel' }] }).then(
        () => 'made',
        (e: unknown) => e,
      );
      // A terminal: Tty in Init, Resize reaching runc (stty sees it), output through fd 1.
      const third = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      let resized: () => void = () => undefined;
      const afterResize = new Promise<void>((r) => (resized = r));
      async function* typed(): AsyncGenerator<Uint8Array> {
        await afterResize;
        yield new TextEncoder().encode('go\n');
      }
      const screen: Buffer[] = [];
      // The Resize and the typed line reach the relay on two pipes: the size may land a moment
      // after the line, so the shell looks again for a while.
      const look = 'read x; for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size); [ "$s" = "50 132" ] && break; sleep 0.1; done; echo "$s"';
      const tty = await third.start({ args: ['sh', '-c', look], env: ['PATH=/bin'], tty: true, stdin: typed(), stdout: (c) => { screen.push(Buffer.from(c)); } });
      await tty.resize({ rows: 50, cols: 132 });
      resized();
      seen.ttyCode = await tty.wait();
      seen.tty = Buffer.concat(screen).toString();
      await third.release();
      // A command that is not there: start fails with the runtime's reason.
      const fourth = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      seen.missing = await fourth.start({ args: ['/no/such/command'] }).then(
        (p) => p.wait(),
        (e: unknown) => e,
      );
      // Left running at Return: the server kills it and releases the container.
      const open = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      seen.left = await open.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      await client.return({ ref, metadata: new Map() });
    });
    expect(seen.code).toBe(0);
    expect(seen.out?.length).toBe(data.length);
    expect(seen.out?.equals(data)).toBe(true);
    expect(seen.err).toBe('from-ref\n');
    expect(seen.fail).toBe(7);
    expect(seen.releasedStart).toMatchObject({ code: 'KLN0614' });
    expect(seen.refused).toMatchObject({ code: 'KLN0612', message: expect.stringMatching(/^NewContainer: newContainer: /), hint: expect.any(String) });
    expect(seen.ttyCode).toBe(0);
    expect(seen.tty).toContain('50 132');
    expect(seen.missing).toMatchObject({ code: 'KLN0612', message: expect.stringContaining('/no/such/command') });
    // The build ended (Return answered, serve settled) with the sleeper killed, not after 100 s.
    await expect(seen.left?.wait().then(String, (e: unknown) => (e as Error).message)).resolves.toMatch(/137|ExecProcess/);
    expect(result.ref).toBeDefined();
  });

  test('stdin for a process that does not read it is pulled only as far as the pipes and flow-control windows hold, then the rest once it exits', async () => {
    let pulled = 0;
    let pulledWhileAsleep = 0;
    let code: number | undefined;
    await buildOverBridge(async (client) => {
      const ref = await client.solve({ definition: await image('busybox').marshal(), evaluate: true });
      const container = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }] });
      const piece = new Uint8Array(1 << 20);
      async function* endless(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 256; i++) {
          pulled += piece.byteLength;
          yield piece;
        }
      }
      const sleeper = await container.start({ args: ['sleep', '2'], env: ['PATH=/bin'], stdin: endless() });
      await new Promise((r) => setTimeout(r, 1500));
      pulledWhileAsleep = pulled;
      code = await sleeper.wait();
      await client.return({ ref, metadata: new Map() });
    });
    // 256 MiB offered: runc's pipe, the daemon's 64 KiB stdin queue, its 1 MiB message queue and
    // the HTTP/2 windows hold a few MiB; before, the daemon took everything it was sent.
    expect(pulledWhileAsleep).toBeGreaterThan(0);
    expect(pulledWhileAsleep).toBeLessThan(16 << 20);
    expect(code).toBe(0);
  });
});
