import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { local, type Definition, type Frontend, type FrontendResult } from '@kiln/llb-core';
import { Gateway, connectLLBBridge, serveLLBBridge, type BridgeFrontendClient, type GatewayResult } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend } from '../../src/engine/backend.js';
import { createFrontendRegistry } from '../../src/engine/frontends.js';
import { compileCli, makeSandbox, repo, requireTools, token, writeTree, type KilnSandbox } from './build-helpers.js';
import { RecordingBackend, envOf } from './llbbridge-helpers.js';
import { SCANNER, buildScanner, expectedCoreStatement } from './sbom-scanner.js';

// Frontend attestations across LLBBridge with real parts: the Dockerfile frontend makes an SBOM
// (`attest:sbom`, the scanner image built here from busybox, run under real runc) while running
// (1) as the bundled cli/dist/frontend.cjs in a child process on pipes (what a frontend image
// runs), its Return carrying Result.attestations, and (2) in process behind a wrapper frontend
// on the far side of the bridge that asks for it with a Solve naming dockerfile.v0 and returns
// that result (the Solve answer and the Return both carry them). The gateway result must hold
// the scan, readable, with the scanner's statement, as the in-process build's does.

let sb: KilnSandbox;
let engine: KilnEngine;
const hostPlatform = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  await buildScanner(sb);
  engine = await KilnEngine.open({ root: sb.root });
}, 300_000);

afterAll(async () => {
  engine?.close();
  await sb?.cleanup();
});

/** `node frontend.cjs dockerfile.v0` from a directory holding only that file, on pipes, served the client. */
const childFrontend: Frontend = async (client) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-frontend-image-'));
  try {
    await copyFile(join(repo, 'cli', 'dist', 'frontend.cjs'), join(dir, 'frontend.cjs'));
    const child = spawn(process.execPath, ['frontend.cjs', 'dockerfile.v0'], { cwd: dir, env: { ...envOf(client.opts), PATH: process.env['PATH'] ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('close', resolve));
    const result = await serveLLBBridge(Duplex.from({ readable: child.stdout, writable: child.stdin }), client).finally(() => exit);
    expect(await exit, stderr).toBe(0);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

/** A frontend whose body runs on the far side of LLBBridge (an in-memory stream pair). */
function bridged(body: (bridge: BridgeFrontendClient) => Promise<FrontendResult>): Frontend {
  return async (client) => {
    const a = new PassThrough();
    const b = new PassThrough();
    const served = serveLLBBridge(Duplex.from({ readable: a, writable: b }), client);
    const bridge = await connectLLBBridge(Duplex.from({ readable: b, writable: a }), envOf(client.opts));
    try {
      await bridge.return(await body(bridge));
    } catch (e) {
      await bridge.returnError(e instanceof Error ? e : new Error(String(e)));
    }
    return served;
  };
}

/** What a build's attestations are, in comparable form: per key, kind, predicate type, metadata and the core statement file. */
async function attestationsOf(result: GatewayResult): Promise<unknown> {
  const out: Record<string, unknown[]> = {};
  for (const [key, list] of result.attestations) {
    out[key] = await Promise.all(
      list.map(async (a) => ({
        kind: a.kind,
        path: a.path ?? '',
        predicateType: a.predicateType,
        metadata: Object.fromEntries([...(a.metadata ?? [])].map(([k, v]) => [k, new TextDecoder().decode(v)])),
        files: (await a.ref.readDir(a.path ?? '/')).map((s) => s.path).sort(),
        core: new TextDecoder().decode(await a.ref.readFile(`${a.path ?? ''}/sbom.spdx.json`.replace(/^\//, ''))),
      })),
    );
  }
  return out;
}

async function build(contextDir: string, frontend: string, extra: Readonly<Record<string, Frontend>>): Promise<{ result: GatewayResult; attestations: unknown; solved: string[] }> {
  const solver = engine.solver({ localDirs: { context: contextDir, dockerfile: contextDir } });
  const inner = new SolverBackend(engine, solver);
  const backend = new RecordingBackend(inner);
  const registry = createFrontendRegistry();
  for (const [name, f] of Object.entries(extra)) registry.register(name, f);
  const inputs = new Map<string, Definition>([
    ['context', await local('context', { sharedKeyHint: 'context' }).marshal()],
    ['dockerfile', await local('dockerfile', { sharedKeyHint: 'dockerfile', followPaths: ['Dockerfile', 'Dockerfile.dockerignore'] }).marshal()],
  ]);
  const opts = new Map([
    ['filename', 'Dockerfile'],
    ['build-arg:SOURCE_DATE_EPOCH', '1700000000'],
    ['attest:sbom', `generator=${SCANNER}`],
  ]);
  try {
    const result = await new Gateway(backend, registry).build({ frontend, opts, inputs });
    return { result, attestations: await attestationsOf(result), solved: [...new Set(backend.solved)].sort() };
  } finally {
    await inner.release();
  }
}

describe('SBOM attestations of the Dockerfile frontend across LLBBridge', () => {
  test('frontend.cjs in a child (Return) and a bridged wrapper (Solve answer, then Return): the gateway result holds the scan with the scanner statement, as in process', async () => {
    const t = token();
    const dir = join(sb.dir, `ctx-${t}`);
    await writeTree(dir, { Dockerfile: ['FROM busybox', `RUN echo ${t} > /created-by-run.txt`, ''].join('\n') });
    const expected = {
      [hostPlatform]: [
        {
          kind: 'bundle',
          path: '',
          predicateType: 'https://spdx.dev/Document',
          metadata: { reason: 'sbom', 'sbom-core': 'sbom' },
          files: ['sbom.spdx.json'],
          core: expectedCoreStatement(['/created-by-run.txt']),
        },
      ],
    };
    const inProcess = await build(dir, 'dockerfile.v0', {});
    expect(inProcess.attestations).toEqual(expected);

    const viaChild = await build(dir, 'test/frontend-cjs', { 'test/frontend-cjs': childFrontend });
    expect(viaChild.attestations).toEqual(expected);
    // The same LLB solved: the scan is the frontend's own, nothing scanned again.
    expect(viaChild.solved).toEqual(inProcess.solved);

    const wrapper = bridged((bridge) => bridge.solveFrontend({ frontend: 'dockerfile.v0', opts: bridge.opts, inputs: bridge.inputs }));
    const viaWrapper = await build(dir, 'test/wrapper', { 'test/wrapper': wrapper });
    expect(viaWrapper.attestations).toEqual(expected);
    expect(viaWrapper.solved).toEqual(inProcess.solved);
  });
});
