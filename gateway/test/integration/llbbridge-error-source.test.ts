import { execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { beforeAll, describe, expect, test } from 'vitest';
import { local, type Definition, type FileStat, type FrontendClient, type Ref } from '@kiln/llb-core';
import { dockerfileFrontend } from '@kiln/dockerfile';
import { serveLLBBridge, type GatewayError, type GrpcStatusError } from '@kiln/gateway';

// A Dockerfile error through kiln's real frontend program, cli/dist/frontend.cjs, in a child
// process on pipes (what a frontend container runs), served by serveLLBBridge: the KLN0610 error
// the daemon side makes has the file, line and column of the error the same Dockerfile frontend
// throws in process, and the errdefs.Source detail carries the Dockerfile's bytes and the range
// as BuildKit's own Dockerfile frontend sends them (JSON under github.com/moby/buildkit/errdefs.Source+json).
// The build files are served from memory by a FrontendClient (the gateway's interface): a parse
// error needs no solve.

const repo = resolve(import.meta.dirname, '../../..');
const bundle = join(repo, 'cli', 'dist', 'frontend.cjs');

beforeAll(() => {
  // The bundle is what a frontend image holds; make it from the current sources (one build at a
  // time across test workers, as the CLI tests do).
  const build = `"${process.execPath}" node_modules/typescript/bin/tsc -b && "${process.execPath}" cli/scripts/bundle.mjs`;
  execFileSync('flock', ['/tmp/kiln-cli-tsc.lock', 'sh', '-c', build], { cwd: repo, stdio: 'inherit' });
}, 300_000);

class MemRef implements Ref {
  readonly definition: Definition;
  readonly #files: ReadonlyMap<string, Uint8Array>;
  constructor(definition: Definition, files: ReadonlyMap<string, Uint8Array>) {
    this.definition = definition;
    this.#files = files;
  }
  async readFile(path: string): Promise<Uint8Array> {
    const f = this.#files.get(path);
    if (f === undefined) throw new Error(`open ${path}: no such file or directory`);
    return f;
  }
  async readDir(): Promise<readonly FileStat[]> {
    return [];
  }
  async statFile(path: string): Promise<FileStat> {
    throw new Error(`stat ${path}: no such file or directory`);
  }
}

/** A FrontendClient whose every solve gives a ref holding `files`. */
async function memoryClient(opts: ReadonlyMap<string, string>, files: Readonly<Record<string, string>>): Promise<FrontendClient> {
  const bytes = new Map(Object.entries(files).map(([k, v]) => [k, new TextEncoder().encode(v)] as const));
  const dockerfile = await local('dockerfile', { sharedKeyHint: 'dockerfile' }).marshal();
  return {
    opts,
    inputs: new Map([['dockerfile', dockerfile]]),
    solve: async (r) => new MemRef(r.definition, bytes),
    resolveImageConfig: async (ref) => {
      throw new Error(`no registry here: ${ref}`);
    },
    warn: () => undefined,
  };
}

function envOf(opts: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...opts].map(([k, v], i) => [`BUILDKIT_FRONTEND_OPT_${i}`, `${k}=${v}`]));
}

/** `node frontend.cjs dockerfile.v0` from a directory holding only that file, served over its stdin/stdout. */
async function viaChild(client: FrontendClient): Promise<{ error: GatewayError & { cause: GrpcStatusError }; exit: number | null }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-frontend-error-'));
  try {
    await copyFile(bundle, join(dir, 'frontend.cjs'));
    const child = spawn(process.execPath, ['frontend.cjs', 'dockerfile.v0'], { cwd: dir, env: { ...envOf(client.opts), PATH: process.env['PATH'] ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr.resume();
    const exit = new Promise<number | null>((r) => child.once('close', r));
    const served = serveLLBBridge(Duplex.from({ readable: child.stdout, writable: child.stdin }), client);
    const error = await served.then(
      () => {
        throw new Error('the frontend returned a result');
      },
      (e: unknown) => e as GatewayError & { cause: GrpcStatusError },
    );
    return { error, exit: await exit };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface InProcessError {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
  readonly location: { readonly file: string; readonly line: number; readonly column: number };
}

const CASES = [
  // As the gateway hands over a `# syntax=` it forwarded: with `cmdline` (else frontend.cjs would forward it again).
  { name: 'an unknown instruction (line 3, column 1)', filename: 'Dockerfile', text: '# syntax=example.com/fe\nFROM busybox\nFORM x\nRUN true\n', line: 'FORM x', cmdline: 'example.com/fe' },
  { name: 'a bad --mount type (line 2, column 5)', filename: 'Dockerfile', text: 'FROM busybox\nRUN --mount=type=cach,target=/c true\n', line: 'RUN --mount=type=cach,target=/c true' },
  { name: 'an indented instruction in a Dockerfile under another name (filename option)', filename: 'ci/build.Dockerfile', text: 'FROM busybox\n\n\n  COPY onlyone\n', line: '  COPY onlyone' },
];

describe('a Dockerfile error through cli/dist/frontend.cjs keeps its place', () => {
  test.for(CASES)('$name', async (c) => {
    const opts = new Map([['filename', c.filename], ...('cmdline' in c ? [['cmdline', c.cmdline] as const] : [])]);
    const files = { [c.filename]: c.text };
    const inProcess = await dockerfileFrontend(await memoryClient(opts, files)).then(
      () => {
        throw new Error('the Dockerfile built in process');
      },
      (e: unknown) => e as InProcessError,
    );
    expect(inProcess.location.line, inProcess.message).toBeGreaterThan(1);

    const { error, exit } = await viaChild(await memoryClient(opts, files));
    expect(exit).toBe(1);
    expect(error).toMatchObject({
      code: 'KLN0610',
      message: inProcess.message,
      location: inProcess.location,
      frontendCode: inProcess.code,
      source: c.line,
      ...(inProcess.hint === undefined ? {} : { hint: inProcess.hint }),
    });
    expect(error.location?.file).toBe(c.filename);

    // What real BuildKit reads: errdefs.Source as Go JSON, the whole file and a 0-based character.
    const detail = error.cause.details.find((d) => d.typeUrl === 'github.com/moby/buildkit/errdefs.Source+json');
    const json = JSON.parse(new TextDecoder().decode(detail?.value)) as {
      info: { filename: string; data: string };
      ranges: { start: { Line: number; Character?: number }; end: { Line: number; Character?: number } }[];
    };
    expect(json.info.filename).toBe(c.filename);
    expect(Buffer.from(json.info.data, 'base64').toString()).toBe(c.text);
    const character = inProcess.location.column - 1;
    expect(json.ranges).toEqual([{ start: { Line: inProcess.location.line, ...(character === 0 ? {} : { Character: character }) }, end: { Line: inProcess.location.line, ...(character === 0 ? {} : { Character: character }) } }]);
  });
});
