// serve + connect for the container RPCs over an in-memory stream pair, against a FrontendClient
// fake whose containers run scripted processes in memory (the gateway's interface, not the
// transport: the gRPC and protobuf traffic between the two sides is real).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { scratch, type FrontendClient } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge, type BridgeFrontendClient } from '../index.js';
import { GrpcClient } from './grpc-client.js';
import { GrpcCode } from './grpc.js';
import { LLBBridgeCodec, type WireExecMessage } from './messages.js';
import { MemClient, MemRef, type MemContainer, type MemProcess } from '../../test/container-fakes.js';
import { sendFor } from '../../test/send-for.js';

const codec = await LLBBridgeCodec.load();
const te = new TextEncoder();
const td = new TextDecoder();
const SERVICE = '/moby.buildkit.v1.frontend.LLBBridge/';

const dir = await mkdtemp(join(tmpdir(), 'kiln-llbbridge-ctr-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
let sockets = 0;

/**
 * Two connected unix sockets (what the frontend container's pipes are, with kernel buffers):
 * an in-memory PassThrough pair with 16 KiB buffers stalls node's HTTP/2 when megabytes flow both
 * ways at once (each session stops reading while its write waits for the other side).
 */
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

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) {
    await new Promise((r) => setTimeout(r, 1));
    yield p;
  }
}

interface Run {
  readonly fake: MemClient;
  readonly client: BridgeFrontendClient;
  readonly served: Promise<unknown>;
  readonly frontendSide: Duplex;
}

async function run(fake: FrontendClient & { containers?: MemContainer[] } = new MemClient()): Promise<Run & { fake: MemClient }> {
  const [daemonSide, frontendSide] = await streamPair();
  const served = serveLLBBridge(daemonSide, fake);
  served.catch(() => undefined);
  const client = await connectLLBBridge(frontendSide, {}, { log: () => undefined });
  return { fake: fake as MemClient, client, served, frontendSide };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('LLBBridge containers: serve + connect', () => {
  test('NewContainer maps mounts to the very refs, network, hosts; cat copies stdin (several MiB, in pieces) to stdout; exit 0; Return releases', async () => {
    const { fake, client, served } = await run();
    const ref = await client.solve({ definition: await scratch().marshal() });
    const container = await client.newContainer({
      mounts: [
        { dest: '/', ref, selector: '/rootfs', readonly: true },
        { dest: '/cache', type: 'cache', cacheId: 'go', cacheSharing: 'locked' },
        { dest: '/run/secrets/tok', type: 'secret', secretId: 'tok', mode: 0o440 },
        { dest: '/ssh', type: 'ssh' },
        { dest: '/tmp', type: 'tmpfs' },
      ],
      network: 'host',
      hostname: 'box',
      extraHosts: [{ host: 'db', ip: '10.0.0.2' }],
      platform: { os: 'linux', architecture: 'arm64' },
    });
    const made = fake.containers[0] as MemContainer;
    expect(made.request.mounts[0]?.ref).toBe(fake.solved[0]);
    expect(made.request.mounts).toEqual([
      { dest: '/', type: 'bind', ref: fake.solved[0], selector: '/rootfs', readonly: true },
      { dest: '/cache', type: 'cache', cacheId: 'go', cacheSharing: 'locked' },
      { dest: '/run/secrets/tok', type: 'secret', secretId: 'tok', mode: 0o440 },
      { dest: '/ssh', type: 'ssh' },
      { dest: '/tmp', type: 'tmpfs' },
    ]);
    // NewContainerRequest.platform: the container's programs are checked and emulated as a RUN's.
    expect(made.request).toMatchObject({ network: 'host', hostname: 'box', extraHosts: [{ host: 'db', ip: '10.0.0.2' }], platform: { os: 'linux', architecture: 'arm64' } });

    const big = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => i % 251);
    const out: Uint8Array[] = [];
    const proc = await container.start({ args: ['cat'], env: ['A=1'], cwd: '/src', user: 'nobody', stdin: chunks(te.encode('hello '), big, te.encode(' bye')), stdout: (c) => { out.push(c); } });
    expect(await proc.wait()).toBe(0);
    expect(made.processes[0]?.request).toMatchObject({ args: ['cat'], env: ['A=1'], cwd: '/src', user: 'nobody' });
    // Compared as one boolean: a deep equality of megabytes element by element takes seconds.
    const sent = Buffer.concat([te.encode('hello '), big, te.encode(' bye')]);
    const received = Buffer.concat(out);
    expect(received.length).toBe(sent.length);
    expect(received.equals(sent)).toBe(true);

    // A second process in the same container, on the same ExecProcess call.
    const again: Uint8Array[] = [];
    const p2 = await container.start({ args: ['cat'], stdin: chunks(te.encode('twice')), stdout: (c) => { again.push(c); } });
    expect(await p2.wait()).toBe(0);
    expect(td.decode(Buffer.concat(again))).toBe('twice');

    await client.return({ ref, metadata: new Map() });
    await served;
    expect(made.releases).toBe(1);
  });

  test('stderr and a non-zero exit code; fds not asked for are not opened; signal and resize reach the process', async () => {
    const { fake, client, served } = await run();
    const container = await client.newContainer({ mounts: [{ dest: '/' }], network: 'sandbox' });
    // sandbox is NetMode UNSET: the contract's default, so no network on the gateway side; none stays none.
    await client.newContainer({ mounts: [{ dest: '/' }], network: 'none' });
    expect(fake.containers.map((c) => c.request.network)).toEqual([undefined, 'none']);
    const err: string[] = [];
    const p = await container.start({ args: ['err', 'oops', '3'], stderr: (c) => { err.push(td.decode(c)); } });
    expect(await p.wait()).toBe(3);
    expect(err.join('')).toBe('oops');
    const made = fake.containers[0] as MemContainer;
    expect(made.processes[0]?.request.stdin).toBeUndefined();
    expect(made.processes[0]?.request.stdout).toBeUndefined();

    const sleeper = await container.start({ args: ['sleep'], tty: true });
    await sleeper.resize({ rows: 40, cols: 120 });
    await sleeper.signal('SIGTERM');
    expect(await sleeper.wait()).toBe(128 + 15);
    const mem = made.processes[1] as MemProcess;
    expect(mem.request.tty).toBe(true);
    expect(mem.resizes).toEqual([{ rows: 40, cols: 120 }]);
    expect(mem.signals).toEqual(['SIGTERM']);
    await expect(sleeper.signal('SIGNOPE')).rejects.toMatchObject({ code: 'KLN0614' });
    await client.return({ metadata: new Map() });
    await served;
  });

  test('a process that cannot start rejects start (KLN0612, the error message) and the call goes on; a lost wait rejects wait()', async () => {
    const { client, served } = await run();
    const container = await client.newContainer({ mounts: [{ dest: '/' }] });
    await expect(container.start({ args: ['missing'] })).rejects.toMatchObject({ code: 'KLN0612', message: expect.stringContaining('executable file not found') });
    const lost = await container.start({ args: ['nowait'] });
    await expect(lost.wait()).rejects.toMatchObject({ code: 'KLN0612', message: expect.stringContaining('lost track of the process') });
    const ok = await container.start({ args: ['err', '', '0'] });
    expect(await ok.wait()).toBe(0);
    await client.return({ metadata: new Map() });
    await served;
  });

  test('a stdout callback that throws fails neither its process nor the others on the connection (the runtime treats a handler failure the same way)', async () => {
    const { client, served } = await run();
    const container = await client.newContainer({ mounts: [{ dest: '/' }] });
    const other = await container.start({ args: ['sleep'] });
    const bad = await container.start({
      args: ['cat'],
      stdin: chunks(te.encode('a'), te.encode('b')),
      stdout: () => {
        throw new Error('handler bug');
      },
    });
    expect(await bad.wait()).toBe(0);
    const out: string[] = [];
    const good = await container.start({ args: ['cat'], stdin: chunks(te.encode('still here')), stdout: (c) => { out.push(td.decode(c)); } });
    expect(await good.wait()).toBe(0);
    expect(out.join('')).toBe('still here');
    await other.signal('SIGTERM');
    expect(await other.wait()).toBe(128 + 15);
    await client.return({ metadata: new Map() });
    await served;
  });

  test('release kills what runs and frees the container once; starting in it afterwards fails', async () => {
    const { fake, client, served } = await run();
    const container = await client.newContainer({ mounts: [{ dest: '/' }] });
    const sleeper = await container.start({ args: ['sleep'] });
    await Promise.all([container.release(), container.release()]);
    const made = fake.containers[0] as MemContainer;
    expect(made.releases).toBe(1);
    expect(await sleeper.wait()).toBe(128 + 9);
    await expect(container.start({ args: ['cat'] })).rejects.toMatchObject({ code: 'KLN0614' });
    await client.return({ metadata: new Map() });
    await served;
    expect(made.releases).toBe(1);
  });

  test('containers and processes still open when the frontend connection ends are killed and released before serve settles', async () => {
    const { fake, client, served, frontendSide } = await run();
    const container = await client.newContainer({ mounts: [{ dest: '/' }] });
    const sleeper = await container.start({ args: ['sleep'] });
    frontendSide.destroy();
    await expect(served).rejects.toMatchObject({ code: 'KLN0611' });
    // The frontend side learns it through the ExecProcess call failing.
    await expect(sleeper.wait()).rejects.toMatchObject({ code: 'KLN0612', message: expect.stringMatching(/^ExecProcess: /) });
    const made = fake.containers[0] as MemContainer;
    expect(made.releases).toBe(1);
    expect(made.processes[0]?.signals).toContain('SIGKILL');
  });

  test('a container whose signal aborts while NewContainer is on the wire is released, not left to Return; newContainer rejects with the reason', async () => {
    let answer: () => void = () => undefined;
    const asked = new Promise<void>((r) => (answer = r));
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    class SlowClient extends MemClient {
      override async newContainer(request: Parameters<MemClient['newContainer']>[0]): ReturnType<MemClient['newContainer']> {
        answer();
        await gate;
        return super.newContainer(request);
      }
    }
    const { fake, client, served } = await run(new SlowClient());
    const abort = new AbortController();
    const made = client.newContainer({ mounts: [{ dest: '/' }], signal: abort.signal });
    made.catch(() => undefined);
    await asked;
    abort.abort(new Error('build cancelled'));
    open();
    await expect(made).rejects.toThrow('build cancelled');
    await until(() => (fake.containers[0]?.releases ?? 0) > 0);
    expect(fake.containers[0]?.releases).toBe(1);
    await client.return({ metadata: new Map() });
    await served;
    expect(fake.containers[0]?.releases).toBe(1);
  });

  test('a signal shared by many containers (the build\'s) keeps no listener for a released one', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const { fake, client, served } = await run();
      const build = new AbortController();
      for (let i = 0; i < 12; i++) {
        const c = await client.newContainer({ mounts: [{ dest: '/' }], signal: build.signal });
        await c.release();
      }
      await new Promise((r) => setTimeout(r, 10));
      expect(warnings.filter((w) => w.includes('abort listeners'))).toEqual([]);
      // Aborting now releases nothing again.
      build.abort();
      await client.return({ metadata: new Map() });
      await served;
      expect(fake.containers.map((c) => c.releases)).toEqual(Array(12).fill(1));
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a mount ref this client did not solve is refused locally; a client without gateway.exec gets KLN0615', async () => {
    const { client, served } = await run();
    const other = await run();
    const foreign = await other.client.solve({ definition: await scratch().marshal() });
    await expect(client.newContainer({ mounts: [{ dest: '/', ref: foreign }] })).rejects.toMatchObject({ code: 'KLN0614' });
    await client.return({ metadata: new Map() });
    await other.client.return({ metadata: new Map() });
    await Promise.all([served, other.served]);

    const plain: FrontendClient = { opts: new Map(), inputs: new Map(), solve: async (r) => new MemRef(r.definition), resolveImageConfig: async () => ({ digest: '', config: new Uint8Array() }), warn: () => undefined };
    const bare = await run(plain);
    await expect(bare.client.newContainer({ mounts: [{ dest: '/' }] })).rejects.toMatchObject({ code: 'KLN0615' });
    await bare.client.return({ metadata: new Map() });
    await bare.served;
  });
});

describe('LLBBridge containers: the daemon side on the wire', () => {
  /** A raw gRPC client on a served connection, plus a solved ref id. */
  async function raw(): Promise<{ grpc: GrpcClient; fake: MemClient; served: Promise<unknown>; refId: string }> {
    const fake = new MemClient();
    const [daemonSide, frontendSide] = await streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    served.catch(() => undefined);
    const grpc = new GrpcClient(frontendSide);
    const solved = codec.decode('SolveResponse', await grpc.call(`${SERVICE}Solve`, codec.encode('SolveRequest', { Definition: (await import('@kiln/llb-core')).encodeDefinition(await scratch().marshal()) })));
    return { grpc, fake, served, refId: solved.ref ?? '' };
  }
  const enc = (m: WireExecMessage): Uint8Array => codec.encode('ExecMessage', m);
  /** The ExecMessages of a call up to the Done of process `pid`. */
  async function untilDone(messages: AsyncIterable<Uint8Array>, pid: string): Promise<WireExecMessage[]> {
    const got: WireExecMessage[] = [];
    for await (const b of messages) {
      const m = codec.decode('ExecMessage', b);
      got.push(m);
      if (m.ProcessID === pid && m.Done !== undefined) break;
    }
    return got;
  }
  /** Which oneof each message holds (Started, File, Exit, …). */
  const kinds = (ms: readonly WireExecMessage[]): (string | undefined)[] => ms.map((m) => Object.keys(m).filter((k) => k !== 'ProcessID')[0]);

  test('NewContainer: unknown ResultID NOT_FOUND, a used id ALREADY_EXISTS, no id INVALID_ARGUMENT; ReleaseContainer of an unknown id NOT_FOUND', async () => {
    const { grpc, fake, refId } = await raw();
    const newContainer = (m: object): Promise<Uint8Array> => grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', m));
    await expect(newContainer({ ContainerID: 'c1', Mounts: [{ dest: '/', resultID: 'nope' }] })).rejects.toMatchObject({ grpcCode: GrpcCode.NOT_FOUND, message: 'failed to find ref nope for "/" mount' });
    expect(fake.containers).toHaveLength(0);
    await newContainer({ ContainerID: 'c1', Mounts: [{ dest: '/', resultID: refId }] });
    expect(fake.containers[0]?.request.mounts[0]?.ref).toBe(fake.solved[0]);
    await expect(newContainer({ ContainerID: 'c1', Mounts: [] })).rejects.toMatchObject({ grpcCode: GrpcCode.ALREADY_EXISTS });
    await expect(newContainer({ Mounts: [] })).rejects.toMatchObject({ grpcCode: GrpcCode.INVALID_ARGUMENT });
    await expect(newContainer({ ContainerID: 'c2', Mounts: [{ dest: '/s', mountType: 1, secretOpt: { ID: 's', uid: 1000 } }] })).rejects.toMatchObject({ grpcCode: GrpcCode.INVALID_ARGUMENT });
    await expect(grpc.call(`${SERVICE}ReleaseContainer`, codec.encode('ReleaseContainerRequest', { ContainerID: 'zz' }))).rejects.toMatchObject({ grpcCode: GrpcCode.NOT_FOUND, message: 'container details for zz not found' });
    const pong = codec.decode('PongResponse', await grpc.call(`${SERVICE}Ping`, new Uint8Array()));
    expect(pong.FrontendAPICaps?.map((c) => c.ID)).toEqual(expect.arrayContaining(['gateway.exec', 'gateway.exec.extrahosts']));
    grpc.destroy();
  });

  test('ExecProcess order for one process: Started, output, EOF per output fd, Exit {Code, Error}, Done', async () => {
    const { grpc } = await raw();
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const call = grpc.stream(`${SERVICE}ExecProcess`);
    await call.send(enc({ ProcessID: 'c1:p', Init: { ContainerID: 'c1', Meta: { args: ['err', 'bad', '2'] }, Fds: [2] } }));
    const got = await untilDone(call.messages, 'c1:p');
    expect(kinds(got)).toEqual(['Started', 'File', 'File', 'Exit', 'Done']);
    expect(got.every((m) => m.ProcessID === 'c1:p')).toBe(true);
    expect(got[1]?.File).toMatchObject({ Fd: 2, Data: te.encode('bad') });
    expect(got[2]?.File).toMatchObject({ Fd: 2, EOF: true });
    expect(got[3]?.Exit).toMatchObject({ Code: 2, Error: { code: 2, message: 'exit code: 2' } });
    grpc.destroy();
  });

  test('a process that cannot start gets Exit {255, Error} and nothing after it (grpcclient\'s Start reads that one message and never deregisters, so any later message for it would block its forwarder for every process); the call goes on', async () => {
    const { grpc } = await raw();
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const call = grpc.stream(`${SERVICE}ExecProcess`);
    await call.send(enc({ ProcessID: 'bad', Init: { ContainerID: 'c1', Meta: { args: ['missing'] } } }));
    await call.send(enc({ ProcessID: 'ok', Init: { ContainerID: 'c1', Meta: { args: ['err', 'x', '0'] }, Fds: [2] } }));
    const got = await untilDone(call.messages, 'ok');
    const bad = got.filter((m) => m.ProcessID === 'bad');
    expect(kinds(bad)).toEqual(['Exit']);
    expect(bad[0]?.Exit).toMatchObject({ Code: 255, Error: { code: GrpcCode.UNKNOWN, message: expect.stringContaining('executable file not found') } });
    expect(kinds(got.filter((m) => m.ProcessID === 'ok'))).toEqual(['Started', 'File', 'File', 'Exit', 'Done']);
    grpc.destroy();
  });

  test('ExecProcess protocol errors end the call with buildkitd’s statuses', async () => {
    const { grpc } = await raw();
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const failing = async (...msgs: WireExecMessage[]): Promise<unknown> => {
      const call = grpc.stream(`${SERVICE}ExecProcess`);
      for (const m of msgs) await call.send(enc(m));
      try {
        for await (const b of call.messages) codec.decode('ExecMessage', b);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const init = { ProcessID: 'p', Init: { ContainerID: 'c1', Meta: { args: ['sleep'] }, Fds: [0] } };
    expect(await failing({ Signal: { Name: 'TERM' } })).toMatchObject({ grpcCode: GrpcCode.INVALID_ARGUMENT, message: 'ProcessID required' });
    expect(await failing({ ProcessID: 'p', Init: { ContainerID: 'gone' } })).toMatchObject({ grpcCode: GrpcCode.NOT_FOUND, message: 'container "gone" previously released or not created' });
    expect(await failing({ ProcessID: 'p', File: { Data: te.encode('x') } })).toMatchObject({ grpcCode: GrpcCode.NOT_FOUND, message: 'IO for process "p" not found' });
    expect(await failing(init, { ProcessID: 'p', File: { Fd: 1, Data: te.encode('x') } })).toMatchObject({ grpcCode: GrpcCode.OUT_OF_RANGE, message: 'fd 1 unavailable to write' });
    expect(await failing(init, { ProcessID: 'p', Signal: { Name: 'NOPE' } })).toMatchObject({ grpcCode: GrpcCode.INVALID_ARGUMENT, message: 'Unknown signal NOPE' });
    expect(await failing(init, init)).toMatchObject({ grpcCode: GrpcCode.ALREADY_EXISTS, message: 'Process p already exists' });
    grpc.destroy();
  });

  test('stdin for a process that does not read it stops the client at about a pipe buffer, whatever the piece size (not 64 pieces of up to 16 MiB each)', async () => {
    const { grpc } = await raw();
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const call = grpc.stream(`${SERVICE}ExecProcess`);
    await call.send(enc({ ProcessID: 'p', Init: { ContainerID: 'c1', Meta: { args: ['sleep'] }, Fds: [0] } }));
    const it = call.messages[Symbol.asyncIterator]();
    expect(codec.decode('ExecMessage', (await it.next()).value as Uint8Array).Started).toBeDefined();
    // 1 MiB pieces, as kiln's client sends them.
    const piece = enc({ ProcessID: 'p', File: { Data: new Uint8Array(1 << 20) } });
    const sent = await sendFor((m) => call.send(m), piece, 100, 1500);
    // What the daemon holds: the stdin queue, the transport's message queue (16), HTTP/2 windows.
    expect(sent).toBeGreaterThan(0); // stdin was flowing before it stopped
    expect(sent).toBeLessThan(24);
    call.cancel();
    grpc.destroy();
  });

  test('cancelling the ExecProcess call kills its processes (also one whose stdin is full); half-closing it does too, and their Exit still comes', async () => {
    const { grpc, fake } = await raw();
    await grpc.call(`${SERVICE}NewContainer`, codec.encode('NewContainerRequest', { ContainerID: 'c1' }));
    const sleep = { ContainerID: 'c1', Meta: { args: ['sleep'] } };
    const call = grpc.stream(`${SERVICE}ExecProcess`);
    await call.send(enc({ ProcessID: 'a', Init: sleep }));
    const it = call.messages[Symbol.asyncIterator]();
    expect(codec.decode('ExecMessage', (await it.next()).value as Uint8Array).Started).toBeDefined();
    call.cancel();
    const made = fake.containers[0] as MemContainer;
    await until(() => (made.processes[0]?.signals.length ?? 0) > 0);
    expect(made.processes[0]?.signals).toEqual(['SIGKILL']);

    // A process that never reads stdin: the call waits once 64 KiB queue up (as a full pipe
    // blocks buildkitd's loop), and a cancel still gets through to kill it.
    const stuck = grpc.stream(`${SERVICE}ExecProcess`);
    await stuck.send(enc({ ProcessID: 'full', Init: { ...sleep, Fds: [0] } }));
    const it3 = stuck.messages[Symbol.asyncIterator]();
    expect(codec.decode('ExecMessage', (await it3.next()).value as Uint8Array).Started).toBeDefined();
    // 256 KiB offered, not awaited: the client's sends stop resolving once the daemon holds enough.
    for (let i = 0; i < 128; i++) stuck.send(enc({ ProcessID: 'full', File: { Data: new Uint8Array(2048) } })).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    stuck.cancel();
    await until(() => (made.processes[1]?.signals.length ?? 0) > 0);
    expect(made.processes[1]?.signals).toEqual(['SIGKILL']);

    const half = grpc.stream(`${SERVICE}ExecProcess`);
    await half.send(enc({ ProcessID: 'b', Init: sleep }));
    const it2 = half.messages[Symbol.asyncIterator]();
    expect(codec.decode('ExecMessage', (await it2.next()).value as Uint8Array).Started).toBeDefined();
    half.end();
    const rest: WireExecMessage[] = [];
    for (let r = await it2.next(); r.done !== true; r = await it2.next()) rest.push(codec.decode('ExecMessage', r.value));
    expect(rest.map((m) => m.Exit?.Code ?? (m.Done ? 'done' : '?'))).toEqual([137, 'done']);
    expect(made.processes[2]?.signals).toEqual(['SIGKILL']);
    grpc.destroy();
  });
});
