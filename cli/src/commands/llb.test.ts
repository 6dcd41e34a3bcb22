import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeDefinition, decodeOp } from '@kiln/llb-core';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import type { CliIo } from '../io.js';
import { runLlb, type LlbCommandOptions } from './llb.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest;
const resolver: ImageMetaResolver = {
  resolveImageConfig: () =>
    Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { diff_ids: [DIGEST] }, config: { Env: ['PATH=/bin'] } })) }),
};

function bufferIo(): CliIo & { out: () => Buffer; err: () => string } {
  const out: Buffer[] = [];
  const err: string[] = [];
  return {
    stdin: (async function* () {})(),
    stdout: { write: (c: string | Uint8Array) => out.push(Buffer.from(c)) },
    stderr: { write: (c: string | Uint8Array) => err.push(Buffer.from(c).toString()) },
    out: () => Buffer.concat(out),
    err: () => err.join(''),
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-llb-unit-'));
  await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\nARG V=1\nRUN echo $V\nCMD ["sh"]\n');
  await writeFile(join(dir, 'bad.Dockerfile'), 'FROM busybox\nRUN --mount=type=cach,target=/c true\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const opts = (o: Partial<LlbCommandOptions>): LlbCommandOptions => ({ buildArg: [], format: 'json', ...o });

describe('kiln llb (runLlb)', () => {
  test('json lines, build args, image config file', async () => {
    const io = bufferIo();
    await runLlb(dir, opts({ buildArg: ['V=2'], imageConfig: join(dir, 'img.json'), sessionId: 's' }), io, resolver);
    const lines = io.out().toString().trim().split('\n').map((l) => JSON.parse(l) as { Op: { Op: { exec?: { meta: { env: string[] } } } } });
    expect(lines).toHaveLength(3);
    expect(lines[1]?.Op.Op.exec?.meta.env).toEqual(['PATH=/bin', 'V=2']);
    const cfg = JSON.parse(await readFile(join(dir, 'img.json'), 'utf8')) as { history: { created_by: string }[] };
    expect(cfg.history.map((h) => h.created_by)).toEqual(['ARG V=1', 'RUN |1 V=2 /bin/sh -c echo $V # buildkit', 'CMD ["sh"]']);
  });

  test('--image-config writes through a symlink and into a FIFO instead of replacing them', async () => {
    await writeFile(join(dir, 'real.json'), '');
    await symlink(join(dir, 'real.json'), join(dir, 'link.json'));
    await runLlb(dir, opts({ imageConfig: join(dir, 'link.json') }), bufferIo(), resolver);
    expect((await lstat(join(dir, 'link.json'))).isSymbolicLink()).toBe(true);
    expect((JSON.parse(await readFile(join(dir, 'real.json'), 'utf8')) as { os: string }).os).toBe('linux');
    const fifo = join(dir, 'cfg.fifo');
    execFileSync('mkfifo', [fifo]);
    const read = readFile(fifo, 'utf8');
    await runLlb(dir, opts({ imageConfig: fifo }), bufferIo(), resolver);
    expect((JSON.parse(await read) as { os: string }).os).toBe('linux');
    expect((await lstat(fifo)).isFIFO()).toBe(true);
  });

  test('pb is a marshaled Definition; dot is a digraph', async () => {
    const pb = bufferIo();
    await runLlb(dir, opts({ format: 'pb' }), pb, resolver);
    const def = decodeDefinition(pb.out());
    expect(def.def.map((b) => decodeOp(b).kind)).toEqual(['source', 'exec', 'none']);
    // the protobuf form keeps the Dockerfile's source map (JSON and DOT skip making it)
    expect(def.source?.infos?.[0]?.filename).toBe(join(dir, 'Dockerfile'));
    const dot = bufferIo();
    await runLlb(dir, opts({ format: 'dot' }), dot, resolver);
    expect(dot.out().toString()).toMatch(/^digraph \{/);
  });

  test('errors: FILE:LINE:COL, the line and a caret on stderr, exit code 1, nothing on stdout', async () => {
    const io = bufferIo();
    const file = join(dir, 'bad.Dockerfile');
    await expect(runLlb(dir, opts({ file }), io, resolver)).rejects.toMatchObject({ exitCode: 1 });
    const err = io.err().split('\n');
    expect(err[0]).toBe(`${file}:2:5: unsupported mount type "cach" (did you mean "cache"?) [KLN0412]`);
    expect(err[1]).toBe('  2 | RUN --mount=type=cach,target=/c true');
    expect(err[2]).toBe('    |     ^');
    expect(io.out().length).toBe(0);
  });

  test('a missing Dockerfile is a CLI error', async () => {
    await expect(runLlb(join(dir, 'nope'), opts({}), bufferIo(), resolver)).rejects.toMatchObject({ code: 'KLN_CLI_READ' });
    // typo tour 4: a missing path is named as given (was "cannot read missing.ts/Dockerfile")
    await expect(runLlb(join(dir, 'missing.ts'), opts({}), bufferIo(), resolver)).rejects.toMatchObject({ code: 'KLN_CLI_READ', message: `cannot read ${join(dir, 'missing.ts')}: no such file or directory` });
  });

  test('CONTEXT/.dockerignore becomes local.excludepatterns', async () => {
    const ctx = join(dir, 'ignored');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY . /\n');
    await writeFile(join(ctx, '.dockerignore'), '*.log\n!keep.log\n');
    const io = bufferIo();
    await runLlb(ctx, opts({ sessionId: 's' }), io, resolver);
    const first = JSON.parse(io.out().toString().split('\n')[0] ?? '{}') as { Op: { Op: { source: { attrs: Record<string, string> } } } };
    expect(first.Op.Op.source.attrs['local.excludepatterns']).toBe('["*.log","!keep.log"]');
  });

  test('-f - reads the Dockerfile from stdin', async () => {
    const io = { ...bufferIo(), stdin: (async function* () { yield new TextEncoder().encode('FROM scratch\nCOPY x /x\n'); })() };
    const out: Buffer[] = [];
    await runLlb(dir, opts({ file: '-', sessionId: 's' }), { ...io, stdout: { write: (c: string | Uint8Array) => out.push(Buffer.from(c)) } }, resolver);
    expect(Buffer.concat(out).toString()).toContain('"local.followpaths":"[\\"x\\"]"');
  });
});
