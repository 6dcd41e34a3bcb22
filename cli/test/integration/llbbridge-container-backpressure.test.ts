import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { image, type Container, type FrontendClient, type FrontendResult } from '@kiln/llb-core';
import { FrontendRegistry, Gateway, connectLLBBridge, serveLLBBridge } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend } from '../../src/engine/backend.js';
import { makeSandbox, requireTools, type KilnSandbox } from './build-helpers.js';

// Output backpressure end to end: a frontend on the LLBBridge client side runs a process in a
// runc container of kiln's gateway (serveLLBBridge over the real in-process client, SolverBackend,
// runc) and takes its stdout slowly; the process must block in its writes while the frontend's
// callback holds, with only a bounded amount between its write() and the callback.

let sb: KilnSandbox;
let engine: KilnEngine;
let sockDir: string;

beforeAll(async () => {
  requireTools();
  sb = await makeSandbox();
  engine = await KilnEngine.open({ root: sb.root });
  sockDir = await mkdtemp(join(tmpdir(), 'kiln-bridge-bp-'));
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

async function buildOverBridge(remote: (client: Awaited<ReturnType<typeof connectLLBBridge>>) => Promise<void>): Promise<void> {
  const solver = engine.solver({ localDirs: {} });
  const backend = new SolverBackend(engine, solver, {});
  const frontend = async (client: FrontendClient): Promise<FrontendResult> => {
    const [daemonSide, frontendSide] = await socketPair();
    const serving = serveLLBBridge(daemonSide, client);
    const bridged = await connectLLBBridge(frontendSide, {}, { log: () => undefined });
    const [result] = await Promise.all([serving, remote(bridged)]);
    return result;
  };
  const gateway = new Gateway(backend, new FrontendRegistry().register('test/bridge-bp', frontend));
  try {
    await gateway.build({ frontend: 'test/bridge-bp', opts: new Map(), inputs: new Map() });
  } finally {
    await backend.release();
  }
}

const MiB = 1 << 20;
const SIZE = 32 * MiB;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Bytes the writer wrote so far (its wchar), seen from the host: the ExecProcess stream is held,
 * as grpcclient's would be, so no other process of the frontend's connection can start
 * meanwhile. pgrep fails (this throws) once the writer has exited.
 */
function writerState(tag: string): number {
  const pid = execFileSync('pgrep', ['-f', `cat /scratch/data-${tag}`], { encoding: 'utf8' }).trim();
  return Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
}

async function output(c: Container, script: string): Promise<string> {
  const out: Buffer[] = [];
  const p = await c.start({ args: ['sh', '-c', script], env: ['PATH=/bin'], stdout: (b) => void out.push(Buffer.from(b)) });
  expect(await p.wait()).toBe(0);
  return Buffer.concat(out).toString();
}

describe('LLBBridge container output backpressure over a real kiln gateway and runc', () => {
  test('a frontend whose stdout callback holds: the process blocks in write with about 1.5 MiB in flight; 32 MiB arrive in order once it lets go', { timeout: 180_000 }, async () => {
    const seen: { probe?: number; received?: number; acked?: number; code?: number; digest?: string; sum?: string | undefined; midProbe?: number; mid?: number } = {};
    const tag = randomBytes(6).toString('hex');
    const probe = (): number => writerState(tag);
    await buildOverBridge(async (client) => {
      const ref = await client.solve({ definition: await image('busybox').marshal(), evaluate: true });
      const c = await client.newContainer({ mounts: [{ dest: '/', ref, readonly: true }, { dest: '/scratch', type: 'tmpfs' }] });
      await c.start({ args: ['sleep', '1000'], env: ['PATH=/bin'] });
      await output(c, `head -c ${SIZE} /dev/urandom > /scratch/data-${tag}`);
      let received = 0;
      let acked = 0;
      const hash = createHash('sha256');
      let open: () => void = () => undefined;
      let gate = new Promise<void>((r) => (open = r));
      const writer = await c.start({
        args: ['sh', '-c', `cat /scratch/data-${tag}`],
        env: ['PATH=/bin'],
        stdout: async (chunk) => {
          received += chunk.byteLength;
          hash.update(chunk);
          await gate;
          acked += chunk.byteLength;
        },
      });
      await sleep(1500);
      seen.probe = probe();
      seen.received = received;
      // Let it flow slowly (a turn per chunk), hold again half-way.
      open();
      gate = sleep(1);
      while (received < SIZE / 2) await sleep(5);
      gate = new Promise<void>((r) => (open = r));
      await sleep(1000);
      seen.midProbe = probe();
      seen.mid = received;
      open();
      gate = Promise.resolve();
      seen.code = await writer.wait();
      seen.acked = acked;
      seen.digest = hash.digest('hex');
      seen.sum = (await output(c, `sha256sum /scratch/data-${tag}`)).split(' ')[0];
      await c.release();
      await client.return({ ref, metadata: new Map() });
    });
    if (process.env['KILN_BACKPRESSURE_REPORT'] !== undefined) {
      process.stderr.write(`bridge in flight: ${(seen.probe ?? 0) - (seen.received ?? 0)} at start, ${(seen.midProbe ?? 0) - (seen.mid ?? 0)} half-way\n`);
    }
    expect(seen.probe).toBeGreaterThan(0);
    expect(seen.mid).toBeGreaterThanOrEqual(SIZE / 2);
    expect(seen.mid).toBeLessThan(SIZE);
    // runc's pipe and Node's read buffer, the daemon's message in HTTP/2, the 64 KiB window, the
    // frontend side's 1 MiB read-ahead: not the 32 MiB the process would write meanwhile.
    expect((seen.probe ?? 0) - (seen.received ?? 0)).toBeLessThanOrEqual(2 * MiB);
    expect((seen.midProbe ?? 0) - (seen.mid ?? 0)).toBeLessThanOrEqual(2 * MiB);
    expect(seen.code).toBe(0);
    expect(seen.acked).toBe(SIZE);
    expect(seen.digest).toBe(seen.sum);
  });
});
