import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeDefinition, local, type Definition, type FrontendResult, type FrontendWarning } from '@kiln/llb-core';
import { GatewayClient, GatewayRef, connectLLBBridge, serveLLBBridge } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend } from '../../src/engine/backend.js';
import { createFrontendRegistry } from '../../src/engine/frontends.js';
import { compileCli, makeSandbox, repo, requireTools, writeTree, type KilnSandbox } from './build-helpers.js';
import { RecordingBackend, envOf } from './llbbridge-helpers.js';

// LLBBridge with real parts on both sides: the in-process gateway client over the real solver
// (runc, overlay snapshots, the busybox base) serves the real Dockerfile frontend, which runs
// (1) in this process through connectLLBBridge over a unix socket, and (2) as the bundled
// cli/dist/frontend.cjs in a child process on pipes (what a frontend container runs). Each
// must give what the same frontend gives in process: the same LLB solved, the same metadata,
// the same files and the same warnings.

let sb: KilnSandbox;
let engine: KilnEngine;
let contextDir: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  engine = await KilnEngine.open({ root: sb.root });
  contextDir = join(sb.dir, 'ctx');
}, 300_000);

afterAll(async () => {
  engine?.close();
  await sb?.cleanup();
});

/** What one run of the frontend produced, in comparable form. */
interface Outcome {
  readonly solved: readonly string[];
  readonly result: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly files: Readonly<Record<string, string>>;
  readonly warnings: readonly FrontendWarning[];
}

const FILES = ['/built.txt', '/hello.txt'];

/** Runs `drive` (one way of running a frontend) against a fresh gateway client over the real solver; reads `files` of its result. */
async function run(opts: ReadonlyMap<string, string>, drive: (client: GatewayClient) => Promise<FrontendResult>, files: readonly string[] = FILES): Promise<Outcome> {
  const solver = engine.solver({ localDirs: { context: contextDir, dockerfile: contextDir } });
  const inner = new SolverBackend(engine, solver);
  const backend = new RecordingBackend(inner);
  const warnings: FrontendWarning[] = [];
  const filename = opts.get('filename') ?? 'Dockerfile';
  const inputs = new Map<string, Definition>([
    ['context', await local('context', { sharedKeyHint: 'context' }).marshal()],
    ['dockerfile', await local('dockerfile', { sharedKeyHint: 'dockerfile', followPaths: [filename, `${filename}.dockerignore`] }).marshal()],
  ]);
  const client = new GatewayClient({ backend, opts, inputs, onWarning: (w) => warnings.push(w) });
  try {
    const result = await drive(client);
    const ref = result.ref;
    if (!(ref instanceof GatewayRef)) throw new Error('the result holds no ref the gateway made');
    const read: Record<string, string> = {};
    for (const f of files) read[f] = new TextDecoder().decode(await ref.readFile(f));
    return {
      solved: backend.solved,
      result: createHash('sha256').update(encodeDefinition(ref.definition)).digest('hex'),
      metadata: Object.fromEntries([...result.metadata].map(([k, v]) => [k, new TextDecoder().decode(v)])),
      files: read,
      warnings,
    };
  } finally {
    await inner.release();
  }
}

const dockerfileFrontend = createFrontendRegistry().resolve('dockerfile.v0');

/** The frontend in this process, connected over a unix socket to the bridge serving `client`. */
async function overSocket(client: GatewayClient, opts: ReadonlyMap<string, string>): Promise<FrontendResult> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-llbbridge-'));
  const path = join(dir, 'bridge.sock');
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    });
    server.listen(path);
  });
  await new Promise((r) => setTimeout(r, 10));
  const frontendSide = netConnect(path);
  const served = accepted.then((s) => serveLLBBridge(s, client));
  try {
    const bridge = await connectLLBBridge(frontendSide, envOf(opts));
    try {
      await bridge.return(await dockerfileFrontend(bridge));
    } catch (e) {
      await bridge.returnError(e instanceof Error ? e : new Error(String(e)));
    }
    return await served;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `node frontend.cjs [args]` as a child process on pipes, run from a directory holding only that
 * file (or, with `inRepo`, from cli/dist itself, where node_modules is found above it).
 */
async function overChild(
  client: GatewayClient,
  opts: ReadonlyMap<string, string>,
  args: readonly string[] = [],
  inRepo = false,
): Promise<{ result: Promise<FrontendResult>; exit: Promise<number | null>; stderr: () => string }> {
  const dir = inRepo ? join(repo, 'cli', 'dist') : await mkdtemp(join(tmpdir(), 'kiln-frontend-image-'));
  if (!inRepo) await copyFile(join(repo, 'cli', 'dist', 'frontend.cjs'), join(dir, 'frontend.cjs'));
  const child = spawn(process.execPath, ['frontend.cjs', ...args], { cwd: dir, env: { ...envOf(opts), BUILDKIT_SESSION_ID: 'test', PATH: process.env['PATH'] ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close': the exit status once stderr has been read to its end.
  const exit = new Promise<number | null>((resolve) => child.once('close', resolve)).finally(() => (inRepo ? undefined : rm(dir, { recursive: true, force: true })));
  return { result: serveLLBBridge(Duplex.from({ readable: child.stdout, writable: child.stdin }), client), exit, stderr: () => stderr };
}

describe('LLBBridge with the real Dockerfile frontend over the real solver', () => {
  test('in process, over a unix socket and as frontend.cjs in a child: the same LLB, metadata, files and warnings', async () => {
    await mkdir(contextDir, { recursive: true });
    await writeTree(contextDir, {
      // `as` in lower case after an upper-case FROM: the FromAsCasing check warns (line 1).
      Dockerfile: 'FROM busybox as base\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt && cat /hello.txt >> /built.txt\nENV GREETING=hi\nCMD ["cat", "/built.txt"]\n',
      'hello.txt': 'hello from the context\n',
    });
    const opts = new Map([
      ['filename', 'Dockerfile'],
      ['build-arg:SOURCE_DATE_EPOCH', '1700000000'],
    ]);
    const inProcess = await run(opts, (c) => dockerfileFrontend(c));
    expect(inProcess.files).toEqual({ '/built.txt': 'built\nhello from the context\n', '/hello.txt': 'hello from the context\n' });
    expect(inProcess.solved.length).toBeGreaterThanOrEqual(2);
    expect(inProcess.warnings.map((w) => [w.line, w.file])).toContainEqual([1, 'Dockerfile']);
    const config = JSON.parse(inProcess.metadata['containerimage.config'] ?? '{}') as { config?: { Env?: string[]; Cmd?: string[] } };
    expect(config.config?.Cmd).toEqual(['cat', '/built.txt']);
    expect(config.config?.Env).toContain('GREETING=hi');

    const socket = await run(opts, (c) => overSocket(c, opts));
    expect(socket).toEqual(inProcess);

    let child: Awaited<ReturnType<typeof overChild>> | undefined;
    const viaChild = await run(opts, async (c) => {
      child = await overChild(c, opts);
      return child.result;
    });
    expect(viaChild).toEqual(inProcess);
    expect(await child?.exit).toBe(0);
  });

  test('a Dockerfile error comes back as Return with an error: KLN0610 with the frontend message and hint, exit 1', async () => {
    await writeTree(contextDir, { Dockerfile: 'FROM busybox\nRUN --mount=type=cach,target=/c true\n' });
    const opts = new Map([['filename', 'Dockerfile']]);
    const inProcess = await run(opts, (c) => dockerfileFrontend(c)).catch((e: unknown) => e as Error);
    expect(inProcess).toBeInstanceOf(Error);
    // An error with a hint: the hint comes back too (google.rpc.ErrorInfo detail).
    expect((inProcess as { hint?: string }).hint).toMatch(/cache/);
    let child: Awaited<ReturnType<typeof overChild>> | undefined;
    const failed = run(opts, async (c) => {
      child = await overChild(c, opts);
      return child.result;
    });
    await expect(failed).rejects.toMatchObject({ code: 'KLN0610', message: (inProcess as Error).message, hint: (inProcess as { hint?: string }).hint });
    expect(await child?.exit).toBe(1);
    expect(child?.stderr()).toContain((inProcess as Error).message);
  });

  test('kiln/ts through frontend.cjs: the same result as in process where its package files are (cli/dist in the repo); standalone, a Return error', async () => {
    await writeTree(contextDir, {
      'kiln.build.ts': 'import { image, sh } from "kiln";\nexport default () => {\n  console.log("log line from the build file");\n  return image("busybox").run(sh`echo hi >/hi`).image({ cmd: ["cat", "/hi"] });\n};\n',
    });
    const opts = new Map([['filename', 'kiln.build.ts']]);
    const ts = createFrontendRegistry().resolve('kiln/ts');
    const inProcess = await run(opts, (c) => ts(c), ['/hi']);
    expect(inProcess.files).toEqual({ '/hi': 'hi\n' });
    let child: Awaited<ReturnType<typeof overChild>> | undefined;
    const viaChild = await run(
      opts,
      async (c) => {
        child = await overChild(c, opts, ['kiln/ts'], true);
        return child.result;
      },
      ['/hi'],
    );
    expect(viaChild).toEqual(inProcess);
    expect(await child?.exit).toBe(0);
    // The build file's console output is the frontend's log: stderr, never the gRPC stream on stdout.
    expect(child?.stderr()).toContain('log line from the build file');
    // Standalone, kiln/ts lacks its DSL modules, typescript and esbuild: it says so through Return.
    const standalone = run(opts, async (c) => (await overChild(c, opts, ['kiln/ts'])).result, ['/hi']);
    await expect(standalone).rejects.toMatchObject({ code: 'KLN0610', message: 'cannot find the @kiln/ts-dsl package files' });
  });

  test('a frontend process that dies before Return is KLN0611', async () => {
    await writeTree(contextDir, { Dockerfile: 'FROM busybox\n' });
    const opts = new Map([['filename', 'Dockerfile']]);
    const solver = engine.solver({ localDirs: { context: contextDir, dockerfile: contextDir } });
    const backend = new SolverBackend(engine, solver);
    try {
      const client = new GatewayClient({ backend, opts, inputs: new Map() });
      const child = spawn(process.execPath, ['-e', 'process.stdin.once("data", () => process.exit(3))'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const served = serveLLBBridge(Duplex.from({ readable: child.stdout, writable: child.stdin }), client);
      await expect(served).rejects.toMatchObject({ code: 'KLN0611', message: 'the frontend exited without returning a result' });
    } finally {
      await backend.release();
    }
  });
});
