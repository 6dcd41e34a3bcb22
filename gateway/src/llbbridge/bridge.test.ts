import { connect } from 'node:http2';
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { encodeDefinition, scratch, type Definition, type FileStat, type FrontendClient, type FrontendWarning, type Ref, type ResolveImageConfigOptions } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge, GatewayError, GrpcStatusError } from '../index.js';
import { GrpcClient } from './grpc-client.js';
import { LLBBridgeCodec } from './messages.js';
import { MAX_MESSAGE_BYTES } from './grpc.js';

/** Two connected in-memory streams (what a frontend container's stdin/stdout pipe pair is). */
function streamPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

type StatusError = GatewayError & { cause: GrpcStatusError };
const isStatusError = (e: unknown): e is StatusError => e instanceof GatewayError && e.cause instanceof GrpcStatusError;

/** What a serve rejects with after the frontend's ReturnError: a GatewayError caused by the gRPC status. */
async function returnedError(served: Promise<unknown>): Promise<StatusError> {
  const e = await served.then(() => 'the serve resolved', (x: unknown) => x);
  if (!isStatusError(e)) throw new Error(`expected a GatewayError caused by a gRPC status, got ${String(e)}`);
  return e;
}

const DIR_MODE = (0x80000000 | 0o755) >>> 0;
// A modification time past 2^53 ns: it must survive as a bigint (int64 on the wire).
const MOD_TIME = 1_764_000_000_123_456_789n;

class FakeRef implements Ref {
  readonly definition: Definition;
  readonly files: ReadonlyMap<string, Uint8Array>;
  constructor(definition: Definition, files: ReadonlyMap<string, Uint8Array>) {
    this.definition = definition;
    this.files = files;
  }
  async readFile(path: string, options?: { offset?: number; length?: number }): Promise<Uint8Array> {
    const f = this.files.get(path);
    if (f === undefined) throw new Error(`open ${path}: no such file or directory`);
    const start = options?.offset ?? 0;
    return f.subarray(start, options?.length === undefined ? undefined : start + options.length);
  }
  async readDir(path: string, include?: string): Promise<readonly FileStat[]> {
    return [
      { path: 'sub', mode: DIR_MODE, uid: 0, gid: 0, size: 0, modTime: MOD_TIME },
      { path: 'link', mode: (0x08000000 | 0o777) >>> 0, uid: 1, gid: 2, size: 3, modTime: 1n, linkname: `${path}|${include ?? ''}` },
    ];
  }
  async statFile(path: string): Promise<FileStat> {
    return { path, mode: 0o644, uid: 1000, gid: 1000, size: 42, modTime: MOD_TIME };
  }
}

/** A FrontendClient fake recording what the bridge asked of it (the gateway's interface, not the transport). */
class FakeClient implements FrontendClient {
  readonly opts = new Map<string, string>();
  readonly inputs: ReadonlyMap<string, Definition>;
  readonly solved: FakeRef[] = [];
  readonly warnings: FrontendWarning[] = [];
  readonly resolves: [string, ResolveImageConfigOptions][] = [];
  readonly files: ReadonlyMap<string, Uint8Array>;
  constructor(inputs: ReadonlyMap<string, Definition>, files: ReadonlyMap<string, Uint8Array> = new Map()) {
    this.inputs = inputs;
    this.files = files;
  }
  async solve(request: { definition: Definition; evaluate?: boolean }): Promise<Ref> {
    const ref = new FakeRef(request.definition, this.files);
    this.solved.push(ref);
    return ref;
  }
  async resolveImageConfig(ref: string, options: ResolveImageConfigOptions) {
    this.resolves.push([ref, options]);
    return { digest: 'sha256:' + 'ab'.repeat(32), config: new TextEncoder().encode('{"architecture":"arm64","os":"linux"}'), ref: `docker.io/library/${ref}` };
  }
  warn(warning: FrontendWarning): void {
    this.warnings.push(warning);
  }
}

async function definitionOf(text: string): Promise<Definition> {
  return scratch().file((await import('@kiln/llb-core')).mkfile('/f', 0o644, text)).marshal();
}

describe('LLBBridge serve + connect over an in-memory stream pair', () => {
  test('a frontend run: caps, opts, inputs, solve, reads, image config, warnings, Return with the very refs', async () => {
    const input = await definitionOf('ctx');
    const fake = new FakeClient(new Map([['context', input]]), new Map([['Dockerfile', new TextEncoder().encode('FROM busybox\nRUN true\n')]]));
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake, { platforms: [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm', variant: 'v7' }] });
    const client = await connectLLBBridge(frontendSide, {
      BUILDKIT_FRONTEND_OPT_1: 'build-arg:A=x=y',
      BUILDKIT_FRONTEND_OPT_0: 'filename=Dockerfile',
      BUILDKIT_SESSION_ID: 'ignored',
      PATH: '/bin',
    });
    expect([...client.opts]).toEqual([
      ['filename', 'Dockerfile'],
      ['build-arg:A', 'x=y'],
    ]);
    // The Pong's first worker's platforms, normalized (arm64/v8 is arm64): the frontend's BUILDPLATFORM.
    expect(client.workerPlatforms).toEqual([{ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm', variant: 'v7' }]);
    // The input came over the wire as Definition bytes, byte for byte.
    expect(encodeDefinition(client.inputs.get('context') as Definition)).toEqual(encodeDefinition(input));

    const def = await definitionOf('mine');
    const ref = await client.solve({ definition: def });
    expect(encodeDefinition(fake.solved[0]?.definition as Definition)).toEqual(encodeDefinition(def));
    expect(new TextDecoder().decode(await ref.readFile('Dockerfile'))).toBe('FROM busybox\nRUN true\n');
    expect(new TextDecoder().decode(await ref.readFile('Dockerfile', { offset: 5, length: 7 }))).toBe('busybox');
    expect(new TextDecoder().decode(await ref.readFile('Dockerfile', { offset: 13 }))).toBe('RUN true\n');
    await expect(ref.readFile('missing')).rejects.toMatchObject({ code: 'KLN0612', message: 'ReadFile: open missing: no such file or directory' });
    expect(await ref.readDir('/dir', '*.txt')).toEqual([
      { path: 'sub', mode: DIR_MODE, uid: 0, gid: 0, size: 0, modTime: MOD_TIME },
      { path: 'link', mode: (0x08000000 | 0o777) >>> 0, uid: 1, gid: 2, size: 3, modTime: 1n, linkname: '/dir|*.txt' },
    ]);
    expect(await ref.statFile('a/b')).toEqual({ path: 'a/b', mode: 0o644, uid: 1000, gid: 1000, size: 42, modTime: MOD_TIME });

    const img = await client.resolveImageConfig('busybox', { platform: { os: 'linux', architecture: 'arm64' }, resolveMode: 'local' });
    expect(img).toEqual({ digest: 'sha256:' + 'ab'.repeat(32), config: new TextEncoder().encode('{"architecture":"arm64","os":"linux"}'), ref: 'docker.io/library/busybox' });
    expect(fake.resolves).toEqual([['busybox', { platform: { os: 'linux', architecture: 'arm64' }, resolveMode: 'local' }]]);

    client.warn({ message: 'JSON arguments recommended', file: 'Dockerfile', line: 3, column: 1 });
    client.warn({ message: 'no location' });
    const other = await client.solve({ definition: await definitionOf('other') });
    const metadata = new Map([['containerimage.config', new TextEncoder().encode('{"os":"linux"}')]]);
    await client.return({ refs: new Map([['linux/arm64', ref], ['linux/arm/v7', other]]), metadata });

    const result = await served;
    expect(fake.warnings).toEqual([{ message: 'JSON arguments recommended', file: 'Dockerfile', line: 3, column: 1 }, { message: 'no location' }]);
    expect(result.refs?.get('linux/arm64')).toBe(fake.solved[0]);
    expect(result.refs?.get('linux/arm/v7')).toBe(fake.solved[1]);
    expect(result.ref).toBeUndefined();
    expect([...result.metadata]).toEqual([['containerimage.config', new TextEncoder().encode('{"os":"linux"}')]]);
  });

  test('Ping reports the caps and the worker platforms given', async () => {
    const codec = await LLBBridgeCodec.load();
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()), { platforms: [{ os: 'linux', architecture: 'arm', variant: 'v7' }] });
    const grpc = new GrpcClient(frontendSide);
    const pong = codec.decode('PongResponse', await grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Ping', codec.encode('PingRequest', {})));
    expect(pong.Workers).toEqual([{ ID: 'kiln', Labels: {}, platforms: [{ Architecture: 'arm', OS: 'linux', Variant: 'v7', OSFeatures: [] }], GCPolicy: [] }]);
    const ids = (pong.FrontendAPICaps ?? []).filter((c) => c.Enabled).map((c) => c.ID);
    expect(ids).toEqual(expect.arrayContaining(['solve.base', 'readfile', 'readdir', 'statfile', 'return', 'returnmap', 'proto.refarray', 'frontend.inputs', 'gateway.warnings']));
    expect(ids).not.toContain('gateway.exec');
    expect((pong.LLBCaps ?? []).map((c) => c.ID)).toContain('source.image');
    const health = codec.decode('HealthCheckResponse', await grpc.call('/grpc.health.v1.Health/Check', codec.encode('HealthCheckRequest', {})));
    expect(health.status).toBe(1);
    grpc.destroy();
    frontendSide.destroy();
    await expect(served).rejects.toMatchObject({ code: 'KLN0611' });
  });

  test('a single ref and metadata only both come back', async () => {
    const fake = new FakeClient(new Map());
    const [d1, f1] = streamPair();
    const s1 = serveLLBBridge(d1, fake);
    const c1 = await connectLLBBridge(f1, {});
    const ref = await c1.solve({ definition: await definitionOf('x'), evaluate: true });
    await c1.return({ ref, metadata: new Map() });
    const r1 = await s1;
    expect(r1.ref).toBe(fake.solved[0]);
    expect(r1.refs).toBeUndefined();

    const [d2, f2] = streamPair();
    const s2 = serveLLBBridge(d2, fake);
    const c2 = await connectLLBBridge(f2, {});
    await c2.return({ metadata: new Map([['frontend.lint', new Uint8Array([1, 2])]]) });
    const r2 = await s2;
    expect(r2.ref).toBeUndefined();
    expect(r2.metadata.get('frontend.lint')).toEqual(new Uint8Array([1, 2]));
  });

  test('Return with an error rejects with KLN0610 and the status message', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const client = await connectLLBBridge(frontendSide, {});
    await client.returnError(new Error('Dockerfile:3: unknown instruction: FORM'));
    await expect(served).rejects.toMatchObject({ code: 'KLN0610', message: 'Dockerfile:3: unknown instruction: FORM', cause: { grpcCode: 2 } });
  });

  test("a kiln error's code, hint and location ride along as a google.rpc.ErrorInfo detail; the hint reaches the GatewayError", async () => {
    const codec = await LLBBridgeCodec.load();
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const client = await connectLLBBridge(frontendSide, {});
    const error = Object.assign(new Error('unknown mount type "cach"'), { code: 'KLN0412', hint: 'use one of bind, cache, tmpfs, secret, ssh', location: { file: 'Dockerfile', line: 7, column: 5 } });
    await client.returnError(error);
    const e = await returnedError(served);
    expect(e).toMatchObject({ code: 'KLN0610', message: 'unknown mount type "cach"', hint: 'use one of bind, cache, tmpfs, secret, ssh' });
    expect(e).toMatchObject({ location: { file: 'Dockerfile', line: 7, column: 5 }, frontendCode: 'KLN0412', source: undefined });
    expect(e.cause.details.map((d) => d.typeUrl)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo', 'github.com/moby/buildkit/errdefs.Source+json']);
    expect(codec.decode('ErrorInfo', e.cause.details[0]?.value ?? new Uint8Array())).toEqual({
      reason: 'KLN0412',
      domain: 'kiln',
      metadata: { hint: 'use one of bind, cache, tmpfs, secret, ssh', file: 'Dockerfile', line: '7', column: '5' },
    });
    // The Dockerfile was not read through this client: the Source names it without its bytes.
    expect(JSON.parse(new TextDecoder().decode(e.cause.details[1]?.value))).toEqual({
      info: { filename: 'Dockerfile' },
      ranges: [{ start: { Line: 7, Character: 4 }, end: { Line: 7, Character: 4 } }],
    });
  });

  test('errdefs.Source carries the bytes of the file the frontend read whole; the GatewayError gets its line', async () => {
    const dockerfile = 'FROM busybox\r\nRUN --mount=type=cach,target=/c true\n';
    const fake = new FakeClient(new Map(), new Map([['/Dockerfile', new TextEncoder().encode(dockerfile)], ['other', new TextEncoder().encode('abc')]]));
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const ref = await client.solve({ definition: await definitionOf('x') });
    expect(new TextDecoder().decode(await ref.readFile('/Dockerfile'))).toBe(dockerfile);
    await ref.readFile('other', { offset: 1 });
    await client.returnError(Object.assign(new Error('unknown mount type "cach"'), { code: 'KLN0412', location: { file: 'Dockerfile', line: 2, column: 5 } }));
    const e = await returnedError(served);
    expect(e).toMatchObject({ code: 'KLN0610', location: { file: 'Dockerfile', line: 2, column: 5 }, source: 'RUN --mount=type=cach,target=/c true', frontendCode: 'KLN0412' });
    const json = JSON.parse(new TextDecoder().decode(e.cause.details[1]?.value)) as { info: { data: string } };
    expect(Buffer.from(json.info.data, 'base64').toString()).toBe(dockerfile);
  });

  test('an error with an empty location file names the filename option', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const client = await connectLLBBridge(frontendSide, { BUILDKIT_FRONTEND_OPT_0: 'filename=build/Dockerfile.dev' });
    await client.returnError(Object.assign(new Error('bad'), { code: 'KLN0401', location: { file: '', line: 3, column: 1 } }));
    await expect(served).rejects.toMatchObject({ location: { file: 'build/Dockerfile.dev', line: 3, column: 1 } });
  });

  test('the stream ending before Return rejects with KLN0611', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const client = await connectLLBBridge(frontendSide, {});
    await client.solve({ definition: await definitionOf('x') });
    frontendSide.end();
    await expect(served).rejects.toMatchObject({ code: 'KLN0611', message: 'the frontend exited without returning a result' });
  });

  test('abort drops the connection and rejects with the reason; calls in flight fail', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const ac = new AbortController();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const fake = new FakeClient(new Map());
    fake.resolveImageConfig = async () => {
      await gate;
      throw new Error('not reached');
    };
    const served = serveLLBBridge(daemonSide, fake, { signal: ac.signal });
    const client = await connectLLBBridge(frontendSide, {});
    const pending = client.resolveImageConfig('busybox', {});
    await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error('build cancelled'));
    await expect(served).rejects.toThrow('build cancelled');
    await expect(pending).rejects.toMatchObject({ code: 'KLN0612' });
    release();
  });

  test('an unknown method gets UNIMPLEMENTED (12), Solve with a frontend too; old Solve answer forms; a forged ref id in Return', async () => {
    const codec = await LLBBridgeCodec.load();
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const grpc = new GrpcClient(frontendSide);
    await expect(grpc.call('/moby.buildkit.v1.frontend.LLBBridge/NewContainer', new Uint8Array())).rejects.toMatchObject({
      grpcCode: 12,
      message: 'unknown method /moby.buildkit.v1.frontend.LLBBridge/NewContainer',
    });
    await expect(grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Solve', codec.encode('SolveRequest', { Frontend: 'dockerfile.v0' }))).rejects.toMatchObject({ grpcCode: 12 });
    await expect(grpc.call('/moby.buildkit.v1.frontend.LLBBridge/ReadFile', codec.encode('ReadFileRequest', { Ref: 'nope', FilePath: 'x' }))).rejects.toMatchObject({
      grpcCode: 5,
      message: 'no such ref: nope',
    });
    // Older clients: without allowResultArrayRef the id is Result.refDeprecated; without
    // allowResultReturn it is SolveResponse.ref (field 1).
    const def = encodeDefinition(await definitionOf('old'));
    const noArray = codec.decode('SolveResponse', await grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Solve', codec.encode('SolveRequest', { Definition: def, allowResultReturn: true })));
    expect(noArray.result?.refDeprecated).toMatch(/^[0-9a-f]{16}-\d+$/);
    expect(noArray.result?.ref).toBeUndefined();
    const oldest = codec.decode('SolveResponse', await grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Solve', codec.encode('SolveRequest', { Definition: def })));
    expect(oldest.ref).toMatch(/^[0-9a-f]{16}-\d+$/);
    expect(oldest.result).toBeUndefined();
    const current = codec.decode('SolveResponse', await grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Solve', codec.encode('SolveRequest', { Definition: def, allowResultReturn: true, allowResultArrayRef: true })));
    expect(current.result?.ref?.def).toEqual(def);
    // A Return naming a ref id the server never handed out fails the run.
    await expect(grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Return', codec.encode('ReturnRequest', { result: { ref: { id: 'forged' } } }))).rejects.toBeInstanceOf(GrpcStatusError);
    await expect(served).rejects.toMatchObject({ code: 'KLN0614' });
  });

  test('messages over 16 MiB fail with RESOURCE_EXHAUSTED, both ways', async () => {
    const big = new Uint8Array(MAX_MESSAGE_BYTES + 1);
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map(), new Map([['big', big], ['fits', big.subarray(0, MAX_MESSAGE_BYTES - 16)]])));
    const client = await connectLLBBridge(frontendSide, {});
    const ref = await client.solve({ definition: await definitionOf('x') });
    // The answer would be larger than the limit: the server sends a status instead.
    await expect(ref.readFile('big')).rejects.toMatchObject({ code: 'KLN0612', cause: { grpcCode: 8 }, message: expect.stringContaining(`larger than max (${MAX_MESSAGE_BYTES + 6} vs. ${MAX_MESSAGE_BYTES})`) });
    // Just under the limit passes.
    expect((await ref.readFile('fits')).length).toBe(MAX_MESSAGE_BYTES - 16);
    // A request over the limit is refused before it is sent.
    await expect(client.resolveImageConfig('x'.repeat(MAX_MESSAGE_BYTES), {})).rejects.toMatchObject({ code: 'KLN0613' });
    await client.return({ ref, metadata: new Map() });
    await served;
  });

  test('the server refuses a frame announcing more than 16 MiB before reading it', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, new FakeClient(new Map()));
    const session = connect('http://localhost', { createConnection: () => frontendSide });
    const req = session.request({ ':method': 'POST', ':path': '/moby.buildkit.v1.frontend.LLBBridge/Ping', 'content-type': 'application/grpc', te: 'trailers' });
    const head = Buffer.alloc(5);
    head.writeUInt32BE(MAX_MESSAGE_BYTES + 1, 1);
    req.write(head);
    const headers = await new Promise<Record<string, unknown>>((r) => req.once('response', (h) => r(h)));
    expect(headers['grpc-status']).toBe('8');
    expect(headers['grpc-message']).toBe(`grpc: received message larger than max (${MAX_MESSAGE_BYTES + 1} vs. ${MAX_MESSAGE_BYTES})`);
    session.destroy();
    frontendSide.destroy();
    await expect(served).rejects.toMatchObject({ code: 'KLN0611' });
  });

  test('a ref from another client cannot be returned', async () => {
    const [d1, f1] = streamPair();
    const [d2, f2] = streamPair();
    const s1 = serveLLBBridge(d1, new FakeClient(new Map()));
    const s2 = serveLLBBridge(d2, new FakeClient(new Map()));
    const c1 = await connectLLBBridge(f1, {});
    const c2 = await connectLLBBridge(f2, {});
    const foreign = await c2.solve({ definition: await definitionOf('x') });
    await expect(c1.return({ ref: foreign, metadata: new Map() })).rejects.toMatchObject({ code: 'KLN0614' });
    await c1.returnError(new Error('gave up'));
    await expect(s1).rejects.toMatchObject({ code: 'KLN0610' });
    await c2.return({ ref: foreign, metadata: new Map() });
    await s2;
  });
});
