import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import {
  encodeDefinition,
  mkfile,
  scratch,
  type Definition,
  type FileStat,
  type FrontendClient,
  type FrontendResult,
  type FrontendWarning,
  type Ref,
  type SolveFrontendRequest,
} from '@kiln/llb-core';
import { GatewayError, GrpcStatusError, connectLLBBridge, serveLLBBridge } from '../index.js';
import { GrpcClient } from './grpc-client.js';
import { LLBBridgeCodec } from './messages.js';

// A Solve naming a frontend over LLBBridge, both sides over an in-memory stream pair, against a
// fake FrontendClient (the gateway's interface) whose solveFrontend answers from a script.

function streamPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

class FakeRef implements Ref {
  readonly definition: Definition;
  readonly #files: Readonly<Record<string, string>>;
  constructor(definition: Definition, files: Readonly<Record<string, string>>) {
    this.definition = definition;
    this.#files = files;
  }
  async readFile(path: string): Promise<Uint8Array> {
    const f = this.#files[path];
    if (f === undefined) throw new Error(`open ${path}: no such file or directory`);
    return new TextEncoder().encode(f);
  }
  async readDir(): Promise<readonly FileStat[]> {
    return [];
  }
  async statFile(path: string): Promise<FileStat> {
    return { path, mode: 0o644, uid: 0, gid: 0, size: 1, modTime: 0n };
  }
}

/** A FrontendClient whose solveFrontend records the requests and answers with `answer`. */
class FakeClient implements FrontendClient {
  readonly opts = new Map<string, string>();
  readonly inputs: ReadonlyMap<string, Definition> = new Map();
  readonly requests: SolveFrontendRequest[] = [];
  readonly warnings: FrontendWarning[] = [];
  readonly answer: (request: SolveFrontendRequest) => Promise<FrontendResult>;
  readonly files: Readonly<Record<string, string>>;
  constructor(answer: (request: SolveFrontendRequest) => Promise<FrontendResult>, files: Readonly<Record<string, string>> = {}) {
    this.answer = answer;
    this.files = files;
  }
  async solve(request: { definition: Definition }): Promise<Ref> {
    return new FakeRef(request.definition, this.files);
  }
  async solveFrontend(request: SolveFrontendRequest): Promise<FrontendResult> {
    this.requests.push(request);
    return this.answer(request);
  }
  async resolveImageConfig(): Promise<never> {
    throw new Error('no registry');
  }
  warn(w: FrontendWarning): void {
    this.warnings.push(w);
  }
}

async function definitionOf(text: string): Promise<Definition> {
  return scratch().file(mkfile('/f', 0o644, text)).marshal();
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
/** The error `p` rejects with (a resolve fails the test). */
async function rejection(p: Promise<unknown>): Promise<GatewayError & { cause: GrpcStatusError }> {
  return p.then(
    () => {
      throw new Error('resolved');
    },
    (e: unknown) => e as GatewayError & { cause: GrpcStatusError },
  );
}
/** Status details as comparable strings (protobufjs hands out Buffers, tests build Uint8Arrays). */
const detailsOf = (s: GrpcStatusError): string[] => s.details.map((d) => `${d.typeUrl} ${Buffer.from(d.value).toString('hex')}`);

describe('LLBBridge Solve with a frontend', () => {
  test('frontend, opts, inputs and evaluate reach solveFrontend; the result refs come back with their Definitions, readable and returnable', async () => {
    const amd = new FakeRef(await definitionOf('amd64'), { '/by': 'amd64' });
    const arm = new FakeRef(await definitionOf('arm64'), { '/by': 'arm64' });
    const fake = new FakeClient(async () => ({ refs: new Map([['linux/amd64', amd], ['linux/arm64', arm]]), metadata: new Map([['refs.platforms', utf8('[]')]]) }));
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const context = await definitionOf('ctx');
    const result = await client.solveFrontend({ frontend: 'dockerfile.v0', opts: new Map([['filename', 'Dockerfile'], ['build-arg:A', 'x=y']]), inputs: new Map([['context', context]]), evaluate: true });

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0];
    expect(req?.frontend).toBe('dockerfile.v0');
    expect([...(req?.opts ?? [])]).toEqual([['filename', 'Dockerfile'], ['build-arg:A', 'x=y']]);
    expect(req?.evaluate).toBe(true);
    // The input crossed as pb.Definition bytes, byte for byte.
    expect(encodeDefinition(req?.inputs?.get('context') as Definition)).toEqual(encodeDefinition(context));

    expect([...(result.refs?.keys() ?? [])]).toEqual(['linux/amd64', 'linux/arm64']);
    expect(encodeDefinition(result.refs?.get('linux/arm64')?.definition as Definition)).toEqual(encodeDefinition(arm.definition));
    expect(new TextDecoder().decode(await result.refs?.get('linux/amd64')?.readFile('/by'))).toBe('amd64');
    expect(result.metadata.get('refs.platforms')).toEqual(utf8('[]'));

    // Returned as the wrapper's own result, they are the daemon's very refs.
    await client.return({ refs: result.refs ?? new Map(), metadata: new Map([...result.metadata, ['wrapped', utf8('1')]]) });
    const returned = await served;
    expect(returned.refs?.get('linux/amd64')).toBe(amd);
    expect(returned.refs?.get('linux/arm64')).toBe(arm);
    expect(returned.metadata.get('wrapped')).toEqual(utf8('1'));
  });

  test('a single ref, and a result of metadata only (no inputs sent when there are none)', async () => {
    const one = new FakeRef(await definitionOf('one'), {});
    let next: FrontendResult = { ref: one, metadata: new Map([['containerimage.config', utf8('{}')]]) };
    const fake = new FakeClient(async () => next);
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const single = await client.solveFrontend({ frontend: 'kiln/ts', opts: new Map() });
    expect(single.refs).toBeUndefined();
    expect(encodeDefinition(single.ref?.definition as Definition)).toEqual(encodeDefinition(one.definition));
    expect(fake.requests[0]?.inputs).toBeUndefined();
    expect(fake.requests[0]?.evaluate).toBeUndefined();
    next = { metadata: new Map([['frontend.lint', utf8('ok')]]) };
    const none = await client.solveFrontend({ frontend: 'kiln/ts', opts: new Map() });
    expect(none.ref).toBeUndefined();
    expect(none.metadata.get('frontend.lint')).toEqual(utf8('ok'));
    await client.return({ ...(single.ref === undefined ? {} : { ref: single.ref }), metadata: new Map() });
    expect((await served).ref).toBe(one);
  });

  test("a nested failure keeps its message, code, hint and location; returning it sends the status on unchanged", async () => {
    const failure = new GatewayError('KLN0601', 'unknown frontend "nope"', { hint: 'use one of: dockerfile.v0' });
    const fake = new FakeClient(async () => {
      throw failure;
    });
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const e = await rejection(client.solveFrontend({ frontend: 'nope', opts: new Map() }));
    expect(e).toMatchObject({ code: 'KLN0610', message: 'unknown frontend "nope"', frontendCode: 'KLN0601', hint: 'use one of: dockerfile.v0', cause: { grpcCode: 2 } });
    await client.returnError(e);
    const r = await rejection(served);
    expect(r).toMatchObject({ code: 'KLN0610', message: 'unknown frontend "nope"', frontendCode: 'KLN0601', hint: 'use one of: dockerfile.v0' });
    expect(e.cause.details.map((d) => d.typeUrl)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo']);
    expect(detailsOf(r.cause)).toEqual(detailsOf(e.cause));
  });

  test("an in-process nested Dockerfile error: its errdefs.Source carries the file from the request's dockerfile input, so the caller gets the line", async () => {
    const dockerfile = 'FROM busybox\nRUN --mount=type=cach,target=/c true\n';
    const fake = new FakeClient(async () => {
      throw Object.assign(new Error('unknown mount type "cach"'), { code: 'KLN0412', hint: 'use one of bind, cache', location: { file: '', line: 2, column: 5 } });
    }, { 'ci.Dockerfile': dockerfile });
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const request = { frontend: 'dockerfile.v0', opts: new Map([['filename', 'ci.Dockerfile']]), inputs: new Map([['dockerfile', await definitionOf('df')]]) };
    const e = await rejection(client.solveFrontend(request));
    expect(e).toMatchObject({ code: 'KLN0610', message: 'unknown mount type "cach"', frontendCode: 'KLN0412', hint: 'use one of bind, cache', location: { file: 'ci.Dockerfile', line: 2, column: 5 }, source: 'RUN --mount=type=cach,target=/c true' });
    const json = JSON.parse(new TextDecoder().decode(e.cause.details.find((d) => d.typeUrl.endsWith('errdefs.Source+json'))?.value)) as { info: { filename: string; data: string } };
    expect(json.info.filename).toBe('ci.Dockerfile');
    expect(Buffer.from(json.info.data, 'base64').toString()).toBe(dockerfile);
    // Without the input the error still comes, without the file's bytes.
    const bare = await rejection(client.solveFrontend({ ...request, inputs: new Map() }));
    expect(bare).toMatchObject({ location: { file: 'ci.Dockerfile', line: 2, column: 5 }, source: undefined });
    await client.returnError(e);
    await expect(served).rejects.toMatchObject({ code: 'KLN0610', source: 'RUN --mount=type=cach,target=/c true', frontendCode: 'KLN0412' });
  });

  test("an external nested frontend's Return status (KLN0610 with its details) is answered as it came", async () => {
    const source = { typeUrl: 'github.com/moby/buildkit/errdefs.Source+json', value: utf8('{"info":{"filename":"Dockerfile","data":"Rk9STSB4Cg=="},"ranges":[{"start":{"Line":1},"end":{"Line":1}}]}') };
    const status = new GrpcStatusError(2, 'unknown instruction: FORM', [source]);
    const fake = new FakeClient(async () => {
      throw new GatewayError('KLN0610', 'unknown instruction: FORM', { cause: status });
    });
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const client = await connectLLBBridge(frontendSide, {});
    const e = await rejection(client.solveFrontend({ frontend: 'gateway.v0', opts: new Map([['source', 'example.com/fe']]) }));
    expect(e).toMatchObject({ code: 'KLN0610', message: 'unknown instruction: FORM', location: { file: 'Dockerfile', line: 1, column: 1 }, source: 'FORM x' });
    expect(detailsOf(e.cause)).toEqual(detailsOf(status));
    // The wrapper wraps it in an error of its own: that is what goes back (no pass-through).
    await client.returnError(new Error(`wrapper: ${e.message}`));
    await expect(served).rejects.toMatchObject({ code: 'KLN0610', message: 'wrapper: unknown instruction: FORM' });
  });

  test('wire forms: no solveFrontend is UNIMPLEMENTED; Definition and Frontend together is INVALID_ARGUMENT; old clients get ids; a ref map needs allowResultReturn', async () => {
    const codec = await LLBBridgeCodec.load();
    const solve = '/moby.buildkit.v1.frontend.LLBBridge/Solve';
    const bare: FrontendClient = { opts: new Map(), inputs: new Map(), solve: async (r) => new FakeRef(r.definition, {}), resolveImageConfig: async () => ({ digest: '', config: new Uint8Array() }), warn: () => undefined };
    const [d0, f0] = streamPair();
    const s0 = serveLLBBridge(d0, bare);
    const c0 = await connectLLBBridge(f0, {});
    await expect(c0.solveFrontend({ frontend: 'dockerfile.v0', opts: new Map() })).rejects.toMatchObject({ code: 'KLN0615', cause: { grpcCode: 12 } });
    await c0.returnError(new Error('done'));
    await expect(s0).rejects.toMatchObject({ code: 'KLN0610' });

    const one = new FakeRef(await definitionOf('one'), {});
    let next: FrontendResult = { ref: one, metadata: new Map([['k', utf8('v')]]) };
    const fake = new FakeClient(async () => next);
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fake);
    const grpc = new GrpcClient(frontendSide);
    const def = encodeDefinition(await definitionOf('both'));
    await expect(grpc.call(solve, codec.encode('SolveRequest', { Definition: def, Frontend: 'dockerfile.v0' }))).rejects.toMatchObject({ grpcCode: 3, message: 'cannot solve with both Definition and Frontend specified' });
    // Without allowResultReturn: the Result (deprecated id form) and the id in SolveResponse.ref, as buildkitd answers.
    const old = codec.decode('SolveResponse', await grpc.call(solve, codec.encode('SolveRequest', { Frontend: 'dockerfile.v0' })));
    expect(old.ref).toMatch(/^[0-9a-f]{16}-\d+$/);
    expect(old.result?.refDeprecated).toBe(old.ref);
    expect(old.result?.metadata).toEqual({ k: utf8('v') });
    const current = codec.decode('SolveResponse', await grpc.call(solve, codec.encode('SolveRequest', { Frontend: 'dockerfile.v0', allowResultReturn: true, allowResultArrayRef: true })));
    expect(current.ref ?? '').toBe('');
    expect(current.result?.ref?.def).toEqual(encodeDefinition(one.definition));
    next = { refs: new Map([['a', one]]), metadata: new Map() };
    await expect(grpc.call(solve, codec.encode('SolveRequest', { Frontend: 'dockerfile.v0' }))).rejects.toMatchObject({ grpcCode: 2, message: 'solve did not return default result' });
    const ids = codec.decode('SolveResponse', await grpc.call(solve, codec.encode('SolveRequest', { Frontend: 'dockerfile.v0', allowResultReturn: true })));
    expect(ids.result?.refsDeprecated?.refs?.['a']).toMatch(/^[0-9a-f]{16}-\d+$/);
    // Each answer handed out a new id that Return accepts.
    await grpc.call('/moby.buildkit.v1.frontend.LLBBridge/Return', codec.encode('ReturnRequest', { result: { ref: { id: current.result?.ref?.id ?? '' } } }));
    expect((await served).ref).toBe(one);
  });
});
