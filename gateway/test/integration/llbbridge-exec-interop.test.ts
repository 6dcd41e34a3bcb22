import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { encodeDefinition, scratch } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge } from '@kiln/gateway';
import { requireGrpcio, runPeer, socketDirs } from './grpc-peer.js';
import { MemClient } from '../container-fakes.js';

// kiln's container RPCs against grpcio (gRPC C-core) in a Python child on a unix socket, speaking
// raw protobuf bytes written from gateway.proto (grpc_exec_peer.py): ExecProcess is a
// bidirectional stream, so this is kiln's HTTP/2 streaming against an implementation not kiln's.

const PEER = join(import.meta.dirname, 'grpc_exec_peer.py');
const sockets = socketDirs('kiln-exec-interop-');
const te = new TextEncoder();
const td = new TextDecoder();

beforeAll(requireGrpcio);

afterEach(() => sockets.cleanup());

type Line = Record<string, unknown>;

const peer = (args: readonly string[], onLine?: (l: Line) => void): Promise<Line[]> => runPeer<Line>(PEER, args, onLine);


describe('LLBBridge ExecProcess against grpcio', () => {
  test('grpcio as the frontend: NewContainer with a ref mount, two processes on one ExecProcess stream, signal, resize, statuses', async () => {
    const path = await sockets.path();
    const client = new MemClient();
    const served = new Promise<ReturnType<typeof serveLLBBridge>>((resolve) => {
      const server = createServer((s: Socket) => {
        server.close();
        resolve(serveLLBBridge(s, client));
      }).listen(path);
    });
    const definition = await scratch().marshal();
    const lines = await peer(['client', path, Buffer.from(encodeDefinition(definition)).toString('base64')]);
    const by = new Map(lines.map((l) => [l['step'] as string, l]));

    expect(by.get('caps')?.['caps']).toEqual(expect.arrayContaining(['gateway.exec', 'gateway.exec.extrahosts']));
    expect(by.get('new-container')).toMatchObject({ ok: true });
    const made = client.containers[0];
    expect(made?.request.mounts[0]?.ref).toBe(client.solved[0]);
    expect(made?.request.network).toBe('none');
    expect(by.get('new-container-unknown-ref')).toMatchObject({ ok: false, code: 'NOT_FOUND', details: expect.stringContaining('failed to find ref nope') });

    const exec = by.get('exec') as { messages: Line[]; code: string };
    expect(exec.code).toBe('OK');
    const cat = exec.messages.filter((m) => m['pid'] === 'ctr1:cat');
    // Fds [0, 1, 2]: the output, then an EOF for each output fd, Exit, Done.
    expect(cat.map((m) => m['kind'])).toEqual(['started', 'file', 'file', 'file', 'exit', 'done']);
    expect(cat[1]).toMatchObject({ fd: 1, data: 'hello grpcio\n' });
    expect(cat[2]).toMatchObject({ fd: 1, eof: true });
    expect(cat[3]).toMatchObject({ fd: 2, eof: true });
    expect(cat[4]).toMatchObject({ code: 0 });
    expect(cat[4]?.['error']).toBeUndefined();
    const sleep = exec.messages.filter((m) => m['pid'] === 'ctr1:sleep');
    // No Fds asked for: no output EOFs, only Started, Exit (with its error status) and Done.
    expect(sleep.map((m) => m['kind'])).toEqual(['started', 'exit', 'done']);
    expect(sleep[1]).toMatchObject({ code: 143, error: 'exit code: 143' });
    expect(made?.processes[1]?.resizes).toEqual([{ rows: 24, cols: 80 }]);

    expect(by.get('exec-bad')).toMatchObject({ ok: false, code: 'NOT_FOUND', details: 'IO for process "ghost" not found' });
    expect(by.get('release')).toMatchObject({ ok: true });
    expect(by.get('release-again')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(made?.releases).toBe(1);
    await (await served);
  });

  test('grpcio as the daemon: kiln opens a container, streams stdin and reads stdout over ExecProcess, signals, releases, returns', async () => {
    const path = await sockets.path();
    let ready: () => void = () => undefined;
    const listening = new Promise<void>((r) => (ready = r));
    const lines = peer(['server', path], (l) => {
      if (l['call'] === 'listening') ready();
    });
    await listening;
    const client = await connectLLBBridge(connect(path), {});
    const ref = await client.solve({ definition: await scratch().marshal() });
    const container = await client.newContainer({ mounts: [{ dest: '/', ref }], network: 'none', extraHosts: [{ host: 'db', ip: '10.0.0.2' }] });

    async function* stdin(): AsyncGenerator<Uint8Array> {
      yield te.encode('shout ');
      yield te.encode('this');
    }
    const out: string[] = [];
    const echo = await container.start({ args: ['echo'], stdin: stdin(), stdout: (c) => { out.push(td.decode(c)); } });
    expect(await echo.wait()).toBe(0);
    expect(out.join('')).toBe('SHOUT THIS');

    // buildkitd fails the whole ExecProcess call when a process cannot start: start rejects with
    // its message, and the same container still runs the next process (on a new call).
    await expect(container.start({ args: ['missing'] })).rejects.toMatchObject({ code: 'KLN0612', message: expect.stringContaining('executable file not found') });
    const waiting = await container.start({ args: ['sleep'] });
    await waiting.signal('SIGINT');
    expect(await waiting.wait()).toBe(130);
    await container.release();
    await client.return({ ref, metadata: new Map() });

    const got = await lines;
    const newContainer = got.find((l) => l['call'] === 'new-container');
    // NewContainerRequest as sent: ContainerID 1, Mounts 2 {dest 3 "/", resultID 23}, Network 3 = NONE (2), extraHosts 6.
    const req = Buffer.from(String(newContainer?.['request']), 'base64');
    expect(req.includes(Buffer.from([0x18, 0x02]))).toBe(true);
    expect(req.includes(Buffer.concat([Buffer.from([0xba, 0x01, 'py-ref-1'.length]), Buffer.from('py-ref-1')]))).toBe(true);
    expect(req.includes(Buffer.from('10.0.0.2'))).toBe(true);
    const execs = got.filter((l) => l['call'] === 'exec').map((l) => l['message'] as Line);
    const init = execs.find((m) => m['kind'] === 'init');
    expect(init).toMatchObject({ args: ['echo'], fds: [0, 1] });
    expect(String(init?.['pid'])).toMatch(new RegExp(`^${String(init?.['container'])}:`));
    expect(execs.filter((m) => m['kind'] === 'file').map((m) => (m['eof'] === true ? 'EOF' : m['data']))).toEqual(['shout ', 'this', 'EOF']);
    expect(execs.find((m) => m['kind'] === 'signal')).toMatchObject({ name: 'INT' });
    expect(got.map((l) => l['call'])).toEqual(expect.arrayContaining(['release', 'return']));
  });
});
