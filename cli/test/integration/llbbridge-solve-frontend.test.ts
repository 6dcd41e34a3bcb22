import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { local, type Definition, type Frontend, type FrontendResult, type FrontendWarning } from '@kiln/llb-core';
import { Gateway, MAX_FRONTEND_DEPTH, connectLLBBridge, serveLLBBridge, type BridgeFrontendClient } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend } from '../../src/engine/backend.js';
import { createFrontendRegistry } from '../../src/engine/frontends.js';
import { compileCli, makeSandbox, repo, requireTools, writeTree, type KilnSandbox } from './build-helpers.js';
import { RecordingBackend, envOf } from './llbbridge-helpers.js';

// A Solve naming a frontend (BuildKit client.SolveRequest{Frontend, FrontendOpt, FrontendInputs})
// with real parts: the Gateway over the real solver (runc, overlay snapshots, the busybox base)
// runs frontends that talk LLBBridge, (1) a wrapper frontend in this process over an in-memory
// stream pair delegating to dockerfile.v0 with solveFrontend, and (2) the bundled
// cli/dist/frontend.cjs in child processes on pipes, forwarding a `# syntax=` to gateway.v0.
// Either must give what building the Dockerfile directly gives: the same LLB solved, files,
// metadata and warnings. Plus the nesting bound and an unknown frontend, through the wire.

let sb: KilnSandbox;
let engine: KilnEngine;
let contextDir: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  engine = await KilnEngine.open({ root: sb.root });
  contextDir = join(sb.dir, 'ctx');
  await mkdir(contextDir, { recursive: true });
}, 300_000);

afterAll(async () => {
  engine?.close();
  await sb?.cleanup();
});

/** A frontend whose body runs on the far side of LLBBridge (an in-memory stream pair), as in a frontend container. */
function bridged(body: (bridge: BridgeFrontendClient) => Promise<FrontendResult>): Frontend {
  return async (client) => {
    const a = new PassThrough();
    const b = new PassThrough();
    const served = serveLLBBridge(Duplex.from({ readable: a, writable: b }), client);
    const bridge = await connectLLBBridge(Duplex.from({ readable: b, writable: a }), envOf(client.opts), { log: (l) => client.log?.(l) });
    try {
      await bridge.return(await body(bridge));
    } catch (e) {
      await bridge.returnError(e instanceof Error ? e : new Error(String(e)));
    }
    return served;
  };
}

/** `node frontend.cjs dockerfile.v0` from a directory holding only that file, on pipes, served the client; records the opts it got. */
function childFrontend(seen: Array<ReadonlyMap<string, string>>): Frontend {
  return async (client) => {
    seen.push(client.opts);
    const dir = await mkdtemp(join(tmpdir(), 'kiln-frontend-image-'));
    try {
      await copyFile(join(repo, 'cli', 'dist', 'frontend.cjs'), join(dir, 'frontend.cjs'));
      const child = spawn(process.execPath, ['frontend.cjs', 'dockerfile.v0'], { cwd: dir, env: { ...envOf(client.opts), PATH: process.env['PATH'] ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
      child.stderr.on('data', (d: Buffer) => client.log?.(d.toString().trimEnd()));
      const exit = new Promise<number | null>((resolve) => child.once('close', resolve));
      const result = await serveLLBBridge(Duplex.from({ readable: child.stdout, writable: child.stdin }), client).finally(() => exit);
      expect(await exit).toBe(0);
      return result;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}

/** What one build produced, in comparable form. */
interface Outcome {
  readonly solved: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly files: Readonly<Record<string, string>>;
  readonly warnings: readonly string[];
}

const FILES = ['/built.txt', '/hello.txt'];

/** Builds through a Gateway over the real solver with `frontends` added to kiln's registry. */
async function build(frontend: string, opts: ReadonlyMap<string, string>, frontends: Readonly<Record<string, Frontend>>): Promise<Outcome> {
  const solver = engine.solver({ localDirs: { context: contextDir, dockerfile: contextDir } });
  const inner = new SolverBackend(engine, solver);
  const backend = new RecordingBackend(inner);
  const registry = createFrontendRegistry();
  for (const [name, f] of Object.entries(frontends)) registry.register(name, f);
  const warnings: FrontendWarning[] = [];
  const inputs = new Map<string, Definition>([
    ['context', await local('context', { sharedKeyHint: 'context' }).marshal()],
    ['dockerfile', await local('dockerfile', { sharedKeyHint: 'dockerfile', followPaths: ['Dockerfile', 'Dockerfile.dockerignore'] }).marshal()],
  ]);
  try {
    const result = await new Gateway(backend, registry).build({ frontend, opts, inputs, onWarning: (w) => warnings.push(w) });
    const files: Record<string, string> = {};
    for (const f of FILES) files[f] = new TextDecoder().decode(await result.ref?.readFile(f));
    return {
      // The distinct Definitions solved (a wrapper's reads may solve in another order).
      solved: [...new Set(backend.solved)].sort(),
      metadata: Object.fromEntries([...result.metadata].map(([k, v]) => [k, new TextDecoder().decode(v)])),
      files,
      warnings: warnings.map((w) => `${w.file ?? ''}:${w.line ?? ''}: ${w.message}`),
    };
  } finally {
    await inner.release();
  }
}

const DOCKERFILE = 'FROM busybox as base\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt && cat /hello.txt >> /built.txt\nENV GREETING=hi\nCMD ["cat", "/built.txt"]\n';
const OPTS = new Map([
  ['filename', 'Dockerfile'],
  ['build-arg:SOURCE_DATE_EPOCH', '1700000000'],
]);

describe('solveFrontend over LLBBridge with the real solver', () => {
  test('a wrapper frontend delegating to dockerfile.v0 returns what building the Dockerfile directly gives', async () => {
    await writeTree(contextDir, { Dockerfile: DOCKERFILE, 'hello.txt': 'hello from the context\n' });
    const direct = await build('dockerfile.v0', OPTS, {});
    expect(direct.files).toEqual({ '/built.txt': 'built\nhello from the context\n', '/hello.txt': 'hello from the context\n' });
    expect(direct.warnings.some((w) => w.startsWith('Dockerfile:1: '))).toBe(true);
    const config = JSON.parse(direct.metadata['containerimage.config'] ?? '{}') as { config?: { Cmd?: string[] } };
    expect(config.config?.Cmd).toEqual(['cat', '/built.txt']);

    let read = '';
    const wrapper = bridged(async (bridge) => {
      const inner = await bridge.solveFrontend({ frontend: 'dockerfile.v0', opts: bridge.opts, inputs: bridge.inputs });
      if (inner.ref === undefined) throw new Error('dockerfile.v0 gave no ref');
      // The delegated result is readable from the wrapper, then returned as its own.
      read = new TextDecoder().decode(await inner.ref.readFile('/built.txt'));
      return inner;
    });
    const wrapped = await build('test/wrapper', OPTS, { 'test/wrapper': wrapper });
    expect(read).toBe('built\nhello from the context\n');
    expect(wrapped).toEqual(direct);
  });

  test('a Dockerfile error in the delegated dockerfile.v0 reaches the build with its message, code, hint, line and source', async () => {
    await writeTree(contextDir, { Dockerfile: 'FROM busybox\nRUN --mount=type=cach,target=/c true\n' });
    const direct = await build('dockerfile.v0', OPTS, {}).then(
      () => {
        throw new Error('the Dockerfile built');
      },
      (e: unknown) => e as { code: string; message: string; hint?: string; location: { file: string; line: number; column: number }; source?: string },
    );
    expect(direct.location.line).toBe(2);
    const wrapper = bridged(async (bridge) => bridge.solveFrontend({ frontend: 'dockerfile.v0', opts: bridge.opts, inputs: bridge.inputs }));
    await expect(build('test/wrapper', OPTS, { 'test/wrapper': wrapper })).rejects.toMatchObject({
      code: 'KLN0610',
      message: direct.message,
      frontendCode: direct.code,
      hint: direct.hint,
      location: direct.location,
      source: 'RUN --mount=type=cach,target=/c true',
    });
  });

  test('frontend.cjs in a child forwards # syntax=<image> to gateway.v0 (a second frontend.cjs); the result is the direct build\'s', async () => {
    const syntax = 'example.com/kiln/frontend:1 --flag';
    await writeTree(contextDir, { Dockerfile: `# syntax=${syntax}\n${DOCKERFILE}`, 'hello.txt': 'hello from the context\n' });
    // Built directly: kiln's Dockerfile frontend in process, told the request was forwarded already.
    const direct = await build('dockerfile.v0', new Map([...OPTS, ['cmdline', syntax]]), {});
    expect(direct.files['/built.txt']).toBe('built\nhello from the context\n');

    const seen: Array<ReadonlyMap<string, string>> = [];
    // `test/child` stands for a frontend image running frontend.cjs (started without cmdline, so it
    // selects itself); `gateway.v0` stands for the image runner the forward lands on.
    const child = childFrontend(seen);
    const forwarded = await build('test/child', OPTS, { 'test/child': child, 'gateway.v0': child });
    expect(seen.map((o) => [o.get('source'), o.get('cmdline')])).toEqual([
      [undefined, undefined],
      ['example.com/kiln/frontend:1', syntax],
    ]);
    expect(seen[1]?.get('build-arg:SOURCE_DATE_EPOCH')).toBe('1700000000');
    expect(forwarded).toEqual(direct);
  });

  test(`a frontend forwarding to itself stops after ${MAX_FRONTEND_DEPTH} nested levels with KLN0604, through every bridge`, async () => {
    await writeTree(contextDir, { Dockerfile: 'FROM busybox\n' });
    let runs = 0;
    const loop = bridged(async (bridge) => {
      runs++;
      return bridge.solveFrontend({ frontend: 'test/loop', opts: bridge.opts, inputs: bridge.inputs });
    });
    const failed = build('test/loop', new Map(), { 'test/loop': loop });
    await expect(failed).rejects.toMatchObject({
      code: 'KLN0610',
      frontendCode: 'KLN0604',
      message: `frontends nested more than ${MAX_FRONTEND_DEPTH} levels deep: ${Array.from({ length: MAX_FRONTEND_DEPTH + 2 }, () => 'test/loop').join(' > ')}`,
    });
    expect(runs).toBe(MAX_FRONTEND_DEPTH + 1);
  });

  test('an unknown frontend name comes back with its message, code and hint', async () => {
    await writeTree(contextDir, { Dockerfile: 'FROM busybox\n' });
    const unknown = bridged(async (bridge) => bridge.solveFrontend({ frontend: 'example.com/no/such:1', opts: new Map() }));
    await expect(build('test/unknown', new Map(), { 'test/unknown': unknown })).rejects.toMatchObject({
      code: 'KLN0610',
      frontendCode: 'KLN0601',
      message: 'unknown frontend "example.com/no/such:1"',
      hint: expect.stringContaining('dockerfile.v0'),
    });
  });
});
