import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { encodeDefinition, mkfile, scratch, type Definition, type FileStat, type FrontendClient, type Ref } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge } from '@kiln/gateway';
import { requireGrpcio, runPeer, socketDirs } from './grpc-peer.js';
import { LLBBridgeCodec } from '../../src/llbbridge/messages.js';
import { MAX_MESSAGE_BYTES } from '../../src/llbbridge/grpc.js';

// kiln's LLBBridge against an independent gRPC implementation: grpcio (gRPC C-core) in a Python
// child on a unix socket, speaking raw protobuf bytes (grpc_peer.py). Both directions: grpcio as
// the frontend calling kiln's server, and grpcio as the daemon serving kiln's client.

const PEER = join(import.meta.dirname, 'grpc_peer.py');
const sockets = socketDirs('kiln-grpc-interop-');

beforeAll(requireGrpcio);

afterEach(() => sockets.cleanup());

interface PeerLine {
  readonly call: string;
  readonly ok?: boolean;
  readonly code?: string;
  readonly details?: string;
  readonly response?: string;
  readonly request?: string;
  readonly id?: string;
}

const peer = (args: readonly string[], onLine?: (l: PeerLine) => void): Promise<PeerLine[]> => runPeer<PeerLine>(PEER, args, onLine);

const GREETING = 'hello grpcio\n';
const b64 = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'base64'));

class MemRef implements Ref {
  constructor(readonly definition: Definition) {}
  async readFile(path: string, options?: { offset?: number; length?: number }): Promise<Uint8Array> {
    if (path === 'big') return new Uint8Array(MAX_MESSAGE_BYTES);
    if (path !== 'greeting.txt') throw new Error(`open ${path}: no such file or directory`);
    const b = new TextEncoder().encode(GREETING);
    const start = options?.offset ?? 0;
    return b.subarray(start, options?.length ? start + options.length : undefined);
  }
  async readDir(): Promise<readonly FileStat[]> {
    return [];
  }
  async statFile(path: string): Promise<FileStat> {
    return { path, mode: 0o644, uid: 0, gid: 0, size: 0, modTime: 0n };
  }
}

describe('LLBBridge against grpcio (gRPC C-core)', () => {
  test('grpcio as the frontend: kiln serves Ping, health, Solve, ReadFile, statuses with percent-encoded messages, the 16 MiB limit, Return', async () => {
    const codec = await LLBBridgeCodec.load();
    const path = await sockets.path();
    const solved: MemRef[] = [];
    const client: FrontendClient = {
      opts: new Map(),
      inputs: new Map(),
      solve: async (r) => {
        const ref = new MemRef(r.definition);
        solved.push(ref);
        return ref;
      },
      resolveImageConfig: async () => {
        throw new Error('unused');
      },
      warn: () => undefined,
    };
    const served = new Promise<ReturnType<typeof serveLLBBridge>>((resolve) => {
      const server = createServer((s: Socket) => {
        server.close();
        resolve(serveLLBBridge(s, client));
      }).listen(path);
    });
    const definition = await scratch().file(mkfile('/x', 0o644, 'x')).marshal();
    const lines = await peer(['client', path, Buffer.from(encodeDefinition(definition)).toString('base64')]);
    const by = new Map(lines.map((l) => [l.call, l]));

    const pong = codec.decode('PongResponse', b64(by.get('ping')?.response));
    expect(pong.FrontendAPICaps?.map((c) => c.ID)).toContain('proto.refarray');
    expect(pong.Workers?.[0]?.ID).toBe('kiln');
    expect(codec.decode('HealthCheckResponse', b64(by.get('health')?.response)).status).toBe(1);
    expect(by.get('ref')?.id).toMatch(/^[0-9a-f]{16}-1$/);
    expect(encodeDefinition(solved[0]?.definition as Definition)).toEqual(encodeDefinition(definition));
    expect(codec.decode('ReadFileResponse', b64(by.get('readfile')?.response)).Data).toEqual(new TextEncoder().encode('grpci'));
    expect(by.get('readfile-missing')).toMatchObject({ ok: false, code: 'UNKNOWN', details: 'open café ✓.txt: no such file or directory' });
    expect(by.get('readfile-unknown-ref')).toMatchObject({ ok: false, code: 'NOT_FOUND', details: 'no such ref: nope' });
    expect(by.get('big')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED', details: `grpc: sent message larger than max (${MAX_MESSAGE_BYTES + 5} vs. ${MAX_MESSAGE_BYTES})` });
    expect(by.get('unknown-method')).toMatchObject({ ok: false, code: 'UNIMPLEMENTED' });
    expect(by.get('too-large-request')).toMatchObject({ ok: false, code: 'RESOURCE_EXHAUSTED' });
    expect(by.get('too-large-request')?.details).toContain(`vs. ${MAX_MESSAGE_BYTES})`);
    expect(by.get('return')).toMatchObject({ ok: true });

    const result = await (await served);
    expect(result.ref).toBe(solved[0]);
    expect(result.metadata.get('k')).toEqual(new Uint8Array([0, 1]));
  });

  test('grpcio as the daemon: kiln connects, reads, gets a non-ASCII error message back exactly, returns', async () => {
    const codec = await LLBBridgeCodec.load();
    const path = await sockets.path();
    let ready: () => void = () => undefined;
    const listening = new Promise<void>((r) => (ready = r));
    const lines = peer(['server', path], (l) => {
      if (l.call === 'listening') ready();
    });
    await listening;
    const client = await connectLLBBridge(connect(path), { BUILDKIT_FRONTEND_OPT_0: 'filename=Dockerfile' });
    expect(client.opts.get('filename')).toBe('Dockerfile');
    expect(client.inputs.size).toBe(0);
    const ref = await client.solve({ definition: await scratch().marshal() });
    expect(new TextDecoder().decode(await ref.readFile('hello'))).toBe('hello from grpcio');
    await expect(ref.readFile('naïve')).rejects.toMatchObject({ code: 'KLN0612', message: 'ReadFile: open naïve: no such file — 100% sure', cause: { grpcCode: 5 } });
    client.warn({ message: 'careful', file: 'Dockerfile', line: 2, column: 1 });
    await client.return({ ref, metadata: new Map([['containerimage.config', new TextEncoder().encode('{}')]]) });

    const got = await lines;
    expect(got.map((l) => l.call)).toEqual(['listening', 'ping', 'inputs', 'solve', 'readfile', 'readfile', 'warn', 'return']);
    const warn = codec.decode('WarnRequest', b64(got[6]?.request));
    expect(warn).toMatchObject({ info: { filename: 'Dockerfile' }, ranges: [{ start: { Line: 2, Character: 0 } }] });
    const ret = codec.decode('ReturnRequest', b64(got[7]?.request));
    expect(ret.result?.ref?.id).toBe('py-ref-1');
    expect(ret.result?.metadata?.['containerimage.config']).toEqual(new TextEncoder().encode('{}'));
  });
});
