import { Duplex } from 'node:stream';
import { describe, expect, test } from 'vitest';
import {
  decodeDefinition,
  decodeOp,
  defaultPlatform,
  scratch,
  type Definition,
  type FileStat,
  type Frontend,
  type FrontendClient,
  type FrontendResult,
  type ImageConfig,
} from '@kiln/llb-core';
import {
  FrontendRegistry,
  Gateway,
  GatewayError,
  type BridgeServeOptions,
  type FrontendContainerRequest,
  type SolveBackend,
  type SolvedRef,
} from '@kiln/gateway';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** What a fake container does with its request: write lines, exit with a status. */
type Container = (req: FrontendContainerRequest) => Promise<number>;

interface Fake extends SolveBackend {
  readonly runs: FrontendContainerRequest[];
  readonly solved: Definition[];
  readonly resolved: string[];
}

/**
 * A backend with images by normalized reference; its container is `container` (a script, not
 * runc: the runc side has its own integration tests). Solves hand back an empty ref.
 */
function fakeBackend(images: Record<string, ImageConfig>, container: Container, files: Record<string, string> = {}): Fake {
  const ref: SolvedRef = {
    readFile: async (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`${path}: not found`);
      return new TextEncoder().encode(text);
    },
    readDir: async () => [],
    statFile: async (path): Promise<FileStat> => ({ path, mode: 0, uid: 0, gid: 0, size: 0, modTime: 0n }),
  };
  const backend: Fake = {
    runs: [],
    solved: [],
    resolved: [],
    sessionId: 'session-1',
    async solve(definition) {
      backend.solved.push(definition);
      return ref;
    },
    async resolveImageConfig(r) {
      backend.resolved.push(r);
      const config = images[r];
      if (config === undefined) throw new Error(`${r}: not found in registry`);
      return { digest: DIGEST, config: new TextEncoder().encode(JSON.stringify(config)) };
    },
    async runFrontendContainer(req) {
      backend.runs.push(req);
      const exitCode = await container(req);
      req.stdout.end();
      return { exitCode };
    },
  };
  return backend;
}

/**
 * A stand-in for serveLLBBridge with its contract: the "frontend" writes `RETURN ok` or
 * `RETURN error <msg>` lines (answered at once: `onReturn`), and the outcome settles when the
 * connection closes, i.e. when the stream ends, as the real server's does; the stream ending
 * without Return rejects with KLN0611; a `GARBAGE` line is traffic that is no LLBBridge (KLN0614).
 */
function fakeServe(): (stream: Duplex, client: FrontendClient, options?: BridgeServeOptions) => Promise<FrontendResult> {
  return (stream, _client, options) =>
    new Promise((resolve, reject) => {
      let text = '';
      let returned: (() => void) | undefined;
      stream.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.includes('GARBAGE\n')) reject(new GatewayError('KLN0614', 'malformed HTTP/2 preface'));
        const m = /RETURN (ok|error (.*))\n/.exec(text);
        if (m === null || returned !== undefined) return;
        returned = m[1] === 'ok' ? () => resolve({ metadata: new Map([['answer', new TextEncoder().encode('42')]]) }) : () => reject(new GatewayError('KLN0610', m[2] ?? ''));
        options?.onReturn?.();
      });
      stream.on('end', () => (returned ?? (() => reject(new GatewayError('KLN0611', 'the frontend exited without returning a result'))))());
    });
}

const IMAGE = '127.0.0.1:5000/fe:test';
const NORMALIZED = '127.0.0.1:5000/fe:test';

function config(c: Partial<NonNullable<ImageConfig['config']>>): ImageConfig {
  return { architecture: 'amd64', os: 'linux', config: c };
}

const CAPS = { 'moby.buildkit.frontend.caps': 'moby.buildkit.frontend.inputs,moby.buildkit.frontend.contexts+forward' };

async function build(backend: SolveBackend, opts: Record<string, string>, extra: { frontend?: string; inputs?: Map<string, Definition>; logs?: string[]; signal?: AbortSignal; exitGraceMs?: number } = {}) {
  const registry = new FrontendRegistry().register('dockerfile.v0', (async () => {
    throw new Error('the built-in frontend must not run');
  }) as Frontend);
  const gateway = new Gateway(backend, registry, { serveLLBBridge: fakeServe(), ...(extra.exitGraceMs === undefined ? {} : { exitGraceMs: extra.exitGraceMs }) });
  return gateway.build({
    frontend: extra.frontend ?? 'gateway.v0',
    opts: new Map(Object.entries(opts)),
    inputs: extra.inputs ?? new Map(),
    ...(extra.logs === undefined ? {} : { onLog: (l: string) => extra.logs?.push(l) }),
    ...(extra.signal === undefined ? {} : { signal: extra.signal }),
  });
}

const returnsOk: Container = async (req) => {
  req.stdout.write('RETURN ok\n');
  return 0;
};

describe('gateway.v0: how the frontend container is run', () => {
  test('args = Entrypoint (Cmd ignored), cwd = WorkingDir, env = image Env + BUILDKIT_* (opts in order), network on, frontend.bin = the pinned image LLB', async () => {
    const backend = fakeBackend(
      { [NORMALIZED]: config({ Entrypoint: ['/bin/fe', '--serve'], Cmd: ['ignored'], Env: ['PATH=/bin', 'A=1'], WorkingDir: '/work', Labels: CAPS }) },
      returnsOk,
    );
    const result = await build(backend, { source: IMAGE, filename: 'Dockerfile', 'build-arg:X': 'a=b' });
    expect(new TextDecoder().decode(result.metadata.get('answer'))).toBe('42');
    const run = backend.runs[0];
    expect(run?.args).toEqual(['/bin/fe', '--serve']);
    expect(run?.cwd).toBe('/work');
    expect(run?.network).toBe('host');
    const p = defaultPlatform();
    expect(run?.env).toEqual([
      'PATH=/bin',
      'A=1',
      `BUILDKIT_FRONTEND_OPT_0=source=${IMAGE}`,
      'BUILDKIT_FRONTEND_OPT_1=filename=Dockerfile',
      'BUILDKIT_FRONTEND_OPT_2=build-arg:X=a=b',
      'BUILDKIT_SESSION_ID=session-1',
      `BUILDKIT_WORKERS=[{"id":"kiln","labels":{"org.mobyproject.buildkit.worker.executor":"oci","org.mobyproject.buildkit.worker.network":"host","org.mobyproject.buildkit.worker.snapshotter":"overlayfs"},"platforms":[{"architecture":"${p.architecture}","os":"${p.os}"${p.variant === undefined ? '' : `,"variant":"${p.variant}"`}}]}]`,
      'BUILDKIT_EXPORTEDPRODUCT=buildkit',
    ]);
    // the image was resolved by its normalized name, and its LLB (solved for the rootfs, and
    // mounted as frontend.bin) pins the digest
    expect(backend.resolved).toEqual([NORMALIZED]);
    expect(run?.files.map((f) => f.path)).toEqual(['/run/config/buildkit/metadata/frontend.bin']);
    const def = decodeDefinition(run?.files[0]?.data ?? new Uint8Array());
    expect(backend.solved).toEqual([def]);
    const ops = def.def.map((b) => decodeOp(b));
    const src = ops.find((o) => o.kind === 'source');
    expect(src?.kind === 'source' ? src.source.identifier : undefined).toBe(`docker-image://${NORMALIZED}@${DIGEST}`);
  });

  test.for([
    ['true', 'none'],
    ['1', 'none'],
    ['false', 'host'],
    ['yes', 'host'],
  ])('label moby.buildkit.frontend.network.none=%s: network %s; no Entrypoint runs /run in /', async ([label, network]) => {
    const backend = fakeBackend({ [NORMALIZED]: config({ Labels: { 'moby.buildkit.frontend.network.none': label ?? '' } }) }, returnsOk);
    await build(backend, { source: IMAGE });
    expect(backend.runs[0]?.network).toBe(network);
    expect(backend.runs[0]?.args).toEqual(['/run']);
    expect(backend.runs[0]?.cwd).toBe('/');
  });

  test("the worker's platforms (host first, then the emulated ones) reach BUILDKIT_WORKERS and LLBBridge's Ping", async () => {
    const listed = [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64', variant: 'v2' }, { os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm', variant: 'v7' }];
    const backend: Fake = { ...fakeBackend({ [NORMALIZED]: config({}) }, returnsOk), workerPlatforms: () => listed };
    const served: (readonly unknown[] | undefined)[] = [];
    const serve = fakeServe();
    const registry = new FrontendRegistry();
    const gateway = new Gateway(backend, registry, { serveLLBBridge: (stream, client, options) => (served.push(options?.platforms), serve(stream, client, options)) });
    await gateway.build({ frontend: 'gateway.v0', opts: new Map([['source', IMAGE]]), inputs: new Map() });
    const workers = backend.runs[0]?.env.find((e) => e.startsWith('BUILDKIT_WORKERS='))?.slice('BUILDKIT_WORKERS='.length) ?? '';
    expect((JSON.parse(workers) as { platforms: unknown[] }[])[0]?.platforms).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'amd64', os: 'linux', variant: 'v2' },
      { architecture: 'arm64', os: 'linux' },
      { architecture: 'arm', os: 'linux', variant: 'v7' },
    ]);
    expect(served).toEqual([listed]);
  });

  test('every cap of frontend.caps must be in the image label (+suffix ignored); inputs need moby.buildkit.frontend.inputs', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({ Labels: CAPS }), '127.0.0.1:5000/bare:1': config({}) }, returnsOk);
    await expect(build(backend, { source: IMAGE, 'frontend.caps': 'moby.buildkit.frontend.contexts+forward' })).resolves.toBeTruthy();
    await expect(build(backend, { source: IMAGE, 'frontend.caps': 'moby.buildkit.frontend.subrequests' })).rejects.toMatchObject({
      code: 'KLN0606',
      message: `frontend ${NORMALIZED}@${DIGEST} does not support capability moby.buildkit.frontend.subrequests`,
    });
    const inputs = new Map([['context', await scratch().marshal()]]);
    await expect(build(backend, { source: '127.0.0.1:5000/bare:1' }, { inputs })).rejects.toMatchObject({ code: 'KLN0606', message: expect.stringContaining('moby.buildkit.frontend.inputs') });
    await expect(build(backend, { source: IMAGE }, { inputs })).resolves.toBeTruthy();
    // the refused ones never started a container
    expect(backend.runs.length).toBe(2);
  });

  test('a named context context:<source> that is an image wins over the source', async () => {
    const backend = fakeBackend({ '127.0.0.1:5000/other:2': config({ Entrypoint: ['/other'] }) }, returnsOk);
    await build(backend, { source: IMAGE, [`context:${IMAGE}`]: 'docker-image://127.0.0.1:5000/other:2' });
    expect(backend.resolved).toEqual(['127.0.0.1:5000/other:2']);
    expect(backend.runs[0]?.args).toEqual(['/other']);
  });

  test('a name:tag@digest source known by name:tag only (an imported oci-layout) runs when the digest matches', async () => {
    const backend = fakeBackend({ 'kiln.local/oci-layout/fe:latest': config({ Entrypoint: ['/fe'] }) }, returnsOk);
    await build(backend, { source: `kiln.local/oci-layout/fe:latest@${DIGEST}` });
    expect(backend.resolved).toEqual([`kiln.local/oci-layout/fe:latest@${DIGEST}`, 'kiln.local/oci-layout/fe:latest']);
    expect(backend.runs[0]?.args).toEqual(['/fe']);
    const other = `sha256:${'cd'.repeat(32)}`;
    await expect(build(backend, { source: `kiln.local/oci-layout/fe:latest@${other}` })).rejects.toMatchObject({ code: 'KLN0607' });
    expect(backend.runs.length).toBe(1);
  });

  test('an image that cannot be resolved fails clearly, naming it', async () => {
    const backend = fakeBackend({}, returnsOk);
    await expect(build(backend, { source: '127.0.0.1:5000/missing:1' })).rejects.toMatchObject({
      code: 'KLN0607',
      message: 'cannot resolve frontend image 127.0.0.1:5000/missing:1',
      cause: { message: '127.0.0.1:5000/missing:1: not found in registry' },
    });
    await expect(build(backend, {})).rejects.toMatchObject({ code: 'KLN0607', message: 'gateway.v0 needs option source (the frontend image)' });
  });
});

describe('gateway.v0: outcome', () => {
  test('stderr lines go to the log; an exit without Return names the image, its status and its last stderr line', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.onStderr?.('starting');
      req.onStderr?.('oops');
      return 3;
    });
    const logs: string[] = [];
    const p = build(backend, { source: IMAGE }, { logs });
    await expect(p).rejects.toMatchObject({
      code: 'KLN0611',
      message: `frontend ${NORMALIZED}@${DIGEST} exited with status 3 without returning a result: oops`,
      exitCode: 3,
      stderr: ['starting', 'oops'],
    });
    expect(logs).toEqual(['starting', 'oops']);
  });

  test('a Return error wins over the non-zero exit that follows it', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.stdout.write('RETURN error Dockerfile:3: unknown instruction FORM\n');
      return 1;
    });
    await expect(build(backend, { source: IMAGE })).rejects.toMatchObject({ code: 'KLN0610', message: 'Dockerfile:3: unknown instruction FORM' });
  });

  test('a non-zero exit after a good Return fails the build (buildkitd: the exit error replaces the result)', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.stdout.write('RETURN ok\n');
      req.onStderr?.('panic: late');
      return 2;
    });
    await expect(build(backend, { source: IMAGE })).rejects.toMatchObject({ code: 'KLN0605', message: `frontend ${NORMALIZED}@${DIGEST} exited with status 2 after returning its result: panic: late` });
  });

  test('an image that answers with no LLBBridge traffic and keeps running is stopped at once: KLN0614, not a grace timeout', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.stdout.write('GARBAGE\n');
      await new Promise<void>((resolve) => req.signal?.addEventListener('abort', () => resolve()));
      throw new Error('process cancelled');
    });
    const started = Date.now();
    await expect(build(backend, { source: IMAGE }, { exitGraceMs: 30_000 })).rejects.toMatchObject({
      code: 'KLN0614',
      message: `frontend ${NORMALIZED}@${DIGEST} closed its LLBBridge connection without returning a result: malformed HTTP/2 preface`,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('an image that closes its stdout without Return but keeps running is stopped after a second (KLN0611), not after the Return grace', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.onStderr?.('hello from a shell');
      req.stdout.end();
      await new Promise<void>((resolve) => req.signal?.addEventListener('abort', () => resolve()));
      throw new Error('process cancelled');
    });
    const started = Date.now();
    await expect(build(backend, { source: IMAGE }, { exitGraceMs: 30_000 })).rejects.toMatchObject({
      code: 'KLN0611',
      message: `frontend ${NORMALIZED}@${DIGEST} closed its LLBBridge connection without returning a result: hello from a shell`,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('a frontend that does not exit after Return is killed after the grace period', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      req.stdout.write('RETURN ok\n');
      await new Promise<void>((resolve) => req.signal?.addEventListener('abort', () => resolve()));
      throw new Error('process cancelled');
    });
    const started = Date.now();
    await expect(build(backend, { source: IMAGE }, { exitGraceMs: 100 })).rejects.toMatchObject({ code: 'KLN0605', message: `frontend ${NORMALIZED}@${DIGEST} did not exit within 0.1s after returning` });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('cancelling the build stops the container and rejects with the cancellation', async () => {
    const ac = new AbortController();
    const backend = fakeBackend({ [NORMALIZED]: config({}) }, async (req) => {
      await new Promise<void>((resolve) => req.signal?.addEventListener('abort', () => resolve()));
      throw Object.assign(new Error('process cancelled'), { code: 'CANCELLED' });
    });
    const p = build(backend, { source: IMAGE }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
  });
});

describe('gateway.v0: routing', () => {
  test('# syntax=<image> runs the image with source and cmdline; --frontend <image> gets source; docker/dockerfile stays built in', async () => {
    const backend = fakeBackend({ [NORMALIZED]: config({ Labels: CAPS }) }, returnsOk, { Dockerfile: `# syntax=${IMAGE} --x\nFROM busybox\n` });
    const inputs = new Map([['context', await scratch().marshal()]]);
    const viaSyntax = await build(backend, {}, { frontend: 'dockerfile.v0', inputs });
    expect(viaSyntax.frontend).toBe(IMAGE);
    expect(backend.runs[0]?.env).toEqual(expect.arrayContaining([`BUILDKIT_FRONTEND_OPT_0=source=${IMAGE}`, `BUILDKIT_FRONTEND_OPT_1=cmdline=${IMAGE} --x`]));
    const viaFlag = await build(backend, { filename: 'Dockerfile' }, { frontend: IMAGE, inputs });
    expect(viaFlag.frontend).toBe(IMAGE);
    expect(backend.runs[1]?.env).toEqual(expect.arrayContaining(['BUILDKIT_FRONTEND_OPT_0=filename=Dockerfile', `BUILDKIT_FRONTEND_OPT_1=source=${IMAGE}`]));
  });

  test('a frontend name near a built-in one that resolves to no image: the error names where it came from and suggests the built-in name', async () => {
    const backend = fakeBackend({}, returnsOk, { Dockerfile: '# escape=\\\n# syntax=docker.io/docker/dockerfil:1.7\nFROM busybox\n' });
    const inputs = new Map([['context', await scratch().marshal()]]);
    await expect(build(backend, {}, { frontend: 'dockerfile.v0', inputs })).rejects.toMatchObject({
      code: 'KLN0607',
      message: 'cannot resolve frontend image docker.io/docker/dockerfil:1.7',
      location: { file: 'Dockerfile', line: 2, column: 1 },
      hint: 'did you mean docker/dockerfile:1.7? (built in, no image needed)',
    });
    await expect(build(backend, {}, { frontend: 'dockerfile.v1', inputs })).rejects.toMatchObject({
      message: 'cannot resolve frontend image dockerfile.v1 (named by --frontend)',
      hint: 'did you mean dockerfile.v0? (built in, no image needed)',
    });
    await expect(build(backend, { 'build-arg:BUILDKIT_SYNTAX': 'dockerfile.v' }, { frontend: 'dockerfile.v0', inputs })).rejects.toMatchObject({
      message: 'cannot resolve frontend image dockerfile.v (named by --build-arg BUILDKIT_SYNTAX)',
      hint: 'did you mean dockerfile.v0? (built in, no image needed)',
    });
    // Not near any built-in name: the resolver's own hint stays, the place is still named.
    const far = build(backend, {}, { frontend: IMAGE, inputs });
    await expect(far).rejects.toMatchObject({ message: `cannot resolve frontend image ${IMAGE} (named by --frontend)` });
    await expect(far).rejects.toSatisfy((e: { hint?: string; cause?: unknown }) => e.hint?.startsWith('push the frontend image') === true && e.cause instanceof Error);
  });

  // `--frontend buildpacks` got only "push the frontend image to a registry…": kiln/buildpacks is 5 edits away.
  test('a built-in name without its kiln/ prefix is suggested', async () => {
    const builtIn = (async () => {
      throw new Error('the built-in frontend must not run');
    }) as Frontend;
    const registry = new FrontendRegistry().register('dockerfile.v0', builtIn).register('kiln/buildpacks', builtIn).register('kiln/ts', builtIn);
    const gateway = new Gateway(fakeBackend({}, returnsOk), registry, { serveLLBBridge: fakeServe() });
    for (const [given, near] of [['buildpacks', 'kiln/buildpacks'], ['ts', 'kiln/ts']] as const) {
      await expect(gateway.build({ frontend: given, opts: new Map(), inputs: new Map() })).rejects.toMatchObject({
        code: 'KLN0607',
        message: `cannot resolve frontend image ${given} (named by --frontend)`,
        hint: `did you mean ${near}? (built in, no image needed)`,
      });
    }
  });

  test('without runFrontendContainer an unknown frontend stays KLN0601, with a hint that does not blame the network', async () => {
    const { runFrontendContainer: _unused, ...rest } = fakeBackend({}, returnsOk);
    const backend: SolveBackend = rest;
    const p = build(backend, { source: IMAGE }, { frontend: IMAGE });
    await expect(p).rejects.toMatchObject({ code: 'KLN0601', message: `unknown frontend "${IMAGE}"` });
    await expect(p).rejects.toSatisfy((e: { hint?: string }) => e.hint?.includes('network') === false && e.hint.includes('dockerfile.v0'));
  });
});
