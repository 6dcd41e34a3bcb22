// Output backpressure of LLBBridge's ExecProcess, both sides: serve + connect over a unix socket
// pair, against the in-memory container fakes (a `flood` process that, as a process blocked in
// write() on a full pipe, writes its next chunk only once the output callback's promise settled).
// The gRPC and protobuf traffic between the two sides is real.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { scratch } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge } from '../index.js';
import { GrpcClient } from './grpc-client.js';
import { LLBBridgeCodec } from './messages.js';
import { MemClient, type MemContainer, type MemProcess } from '../../test/container-fakes.js';

const codec = await LLBBridgeCodec.load();
const SERVICE = '/moby.buildkit.v1.frontend.LLBBridge/';
const MiB = 1 << 20;
const FLOOD = 64 * MiB;
/**
 * What may be between the writer and the consumer: the client's read-ahead queue (1 MiB), the
 * HTTP/2 stream window (64 KiB), a message in the server's stream buffer, a chunk per side.
 */
const BOUND = 2 * MiB;

const dir = await mkdtemp(join(tmpdir(), 'kiln-llbbridge-bp-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
let sockets = 0;

async function streamPair(): Promise<[Duplex, Duplex]> {
  const path = join(dir, `${++sockets}.sock`);
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    }).listen(path);
  });
  const client = connect(path);
  return [await accepted, client];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether `got` is bytes `from`.. of the flood pattern (byte i is i % 251). */
function inOrder(got: Uint8Array, from: number): boolean {
  for (let i = 0; i < got.length; i++) if (got[i] !== (from + i) % 251) return false;
  return true;
}

describe('LLBBridge ExecProcess output backpressure', () => {
  test('a frontend whose stdout callback holds its promise: the daemon stops reading the process at the flow-control window; 64 MiB arrive in order; wait() after the last promise', async () => {
    const fake = new MemClient();
    const [daemonSide, frontendSide] = await streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {}, { log: () => undefined });
    const container = await client.newContainer({ mounts: [{ dest: '/' }] });
    let received = 0;
    let acked = 0;
    let ordered = true;
    let open: () => void = () => undefined;
    let gate = new Promise<void>((r) => (open = r));
    const flood = await container.start({
      args: ['flood', String(FLOOD)],
      stdout: async (chunk) => {
        ordered &&= inOrder(chunk, received);
        received += chunk.byteLength;
        await gate;
        acked += chunk.byteLength;
      },
    });
    const proc = (fake.containers[0] as MemContainer).processes[0] as MemProcess;
    // Held: the flood writes what the window and the queues take, then waits.
    await sleep(1000);
    const held = proc.written - received;
    expect(received).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(BOUND);
    const before = proc.written;
    await sleep(300);
    expect(proc.written).toBe(before);
    // Let go: a slow consumer (a turn per chunk), then everything.
    open();
    gate = sleep(1);
    let waited = false;
    void flood.wait().then(() => (waited = true));
    while (received < FLOOD / 2) await sleep(5);
    gate = new Promise<void>((r) => (open = r));
    await sleep(500);
    expect(proc.written - received).toBeLessThanOrEqual(BOUND);
    expect(waited).toBe(false);
    open();
    gate = Promise.resolve();
    expect(await flood.wait()).toBe(0);
    expect(received).toBe(FLOOD);
    expect(acked).toBe(FLOOD);
    expect(ordered).toBe(true);
    if (process.env['KILN_BACKPRESSURE_REPORT'] !== undefined) process.stderr.write(`llbbridge in flight while held: ${held}\n`);
    await client.return({ metadata: new Map() });
    await served;
  });

  test('releasing a container whose process has a callback that never lets go: its wait() settles, and the other processes of the connection go on', async () => {
    const fake = new MemClient();
    const [daemonSide, frontendSide] = await streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {}, { log: () => undefined });
    const stuck = await client.newContainer({ mounts: [{ dest: '/' }] });
    const other = await client.newContainer({ mounts: [{ dest: '/' }] });
    let received = 0;
    const flood = await stuck.start({
      args: ['flood', String(FLOOD)],
      stdout: (chunk) => {
        received += chunk.byteLength;
        return new Promise<void>(() => undefined);
      },
    });
    let code: unknown = 'pending';
    void flood.wait().then((n) => (code = n), (e: unknown) => (code = e));
    while (received === 0) await sleep(5);
    await sleep(300);
    expect(code).toBe('pending');
    await stuck.release();
    const timeout = (ms: number): Promise<string> => sleep(ms).then(() => 'timed out');
    for (let i = 0; i < 200 && code === 'pending'; i++) await sleep(10);
    expect(code).toBe(137);
    let err = '';
    const next = other.start({ args: ['err', 'after', '3'], stderr: (b) => void (err += Buffer.from(b).toString()) });
    const started = await Promise.race([next, timeout(5000)]);
    expect(started).not.toBe('timed out');
    expect(await (await next).wait()).toBe(3);
    expect(err).toBe('after');
    await client.return({ metadata: new Map() });
    await served;
  });

  test('a gRPC peer that does not read the ExecProcess answers: the daemon reads no more of the process than its window allows (not the whole 64 MiB into memory)', async () => {
    const fake = new MemClient();
    const [daemonSide, frontendSide] = await streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    served.catch(() => undefined);
    const grpc = new GrpcClient(frontendSide);
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const call = grpc.stream(`${SERVICE}ExecProcess`);
    await call.send(codec.encode('ExecMessage', { ProcessID: 'p', Init: { ContainerID: 'c1', Meta: { args: ['flood', String(FLOOD)] }, Fds: [1] } }));
    const it = call.messages[Symbol.asyncIterator]();
    expect(codec.decode('ExecMessage', (await it.next()).value as Uint8Array).Started).toBeDefined();
    await sleep(1000);
    const proc = (fake.containers[0] as MemContainer).processes[0] as MemProcess;
    expect(proc.written).toBeGreaterThan(0);
    expect(proc.written).toBeLessThanOrEqual(BOUND);
    // Reading lets the rest through, in order, then EOF, Exit 0, Done.
    let got = 0;
    let ordered = true;
    const tail: string[] = [];
    for (let r = await it.next(); r.done !== true; r = await it.next()) {
      const m = codec.decode('ExecMessage', r.value);
      if (m.File?.Data !== undefined && m.File.Data.byteLength > 0) {
        ordered &&= inOrder(m.File.Data, got);
        got += m.File.Data.byteLength;
      } else tail.push(m.File?.EOF === true ? 'eof' : m.Exit !== undefined ? `exit ${m.Exit.Code ?? 0}` : m.Done !== undefined ? 'done' : '?');
      if (m.Done !== undefined) break;
    }
    expect(got).toBe(FLOOD);
    expect(ordered).toBe(true);
    expect(tail).toEqual(['eof', 'exit 0', 'done']);
    call.cancel();
    grpc.destroy();
  });
});
