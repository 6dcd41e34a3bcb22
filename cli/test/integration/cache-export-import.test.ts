import { execFileSync } from 'node:child_process';
import { readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type KilnSandbox, compileCli, makeSandbox, parseRawJson, requireTools, runKiln, token, writeTree } from './build-helpers.js';

// --cache-to / --cache-from in BuildKit's format, end to end: real runc, a real docker-registry,
// skopeo to read what was pushed. Each import goes into a fresh kiln root (its own sandbox), so a
// hit can only come from the imported cache.

const sandboxes: KilnSandbox[] = [];
let a: KilnSandbox;

beforeAll(async () => {
  requireTools();
  compileCli();
  a = await fresh();
}, 300_000);

afterAll(async () => {
  for (const s of sandboxes) await s.cleanup();
});

async function fresh(): Promise<KilnSandbox> {
  const s = await makeSandbox();
  sandboxes.push(s);
  return s;
}

/** A two-stage build: a builder stage whose file the final stage copies, and a RUN on the final stage reading a context file. */
function dockerfile(t: string): string {
  return [
    'FROM busybox AS builder',
    `RUN echo built-${t} > /built.txt`,
    'FROM busybox',
    'COPY --from=builder /built.txt /out/built.txt',
    'COPY app.txt /out/app.txt',
    `RUN cat /out/app.txt > /out/copy.txt && echo ran-${t} >> /out/copy.txt`,
    '',
  ].join('\n');
}

const EPOCH = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000'];

async function build(sb: KilnSandbox, ctx: string, extra: readonly string[]) {
  const before = await sb.containersStarted();
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', ...EPOCH, ...extra]);
  if (r.code !== 0) throw new Error(`kiln build failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  return { ...r, containers: (await sb.containersStarted()) - before, vertices: parseRawJson(r.stderr) };
}

function manifestDigest(layout: string): Promise<string> {
  return readFile(join(layout, 'index.json'), 'utf8').then((s) => (JSON.parse(s) as { manifests: Array<{ digest: string }> }).manifests[0]?.digest ?? '');
}

describe('cache export/import, type=local', () => {
  test('mode=max into a fresh root: no container runs, the image is identical, changing a file re-runs only what depends on it', async () => {
    const t = token();
    const ctx = join(a.dir, `ctx-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
    const cache = join(a.dir, `cache-${t}`);
    const outA = join(a.dir, `img-a-${t}`);
    const first = await build(a, ctx, ['--cache-to', `type=local,dest=${cache},mode=max`, '--output', `type=oci,dest=${outA},tar=false`]);
    expect(first.containers).toBe(2);
    expect(first.stderr).toContain('exporting cache');

    // The layout index names the cache manifest list by tag `latest`.
    const index = JSON.parse(await readFile(join(cache, 'index.json'), 'utf8')) as { manifests: Array<{ mediaType: string; annotations?: Record<string, string> }> };
    expect(index.manifests.map((m) => [m.mediaType, m.annotations?.['org.opencontainers.image.ref.name']])).toEqual([['application/vnd.oci.image.index.v1+json', 'latest']]);

    const b = await fresh();
    const outB = join(b.dir, 'img-b');
    const second = await build(b, ctx, ['--cache-from', `type=local,src=${cache}`, '--output', `type=oci,dest=${outB},tar=false`]);
    expect(second.containers).toBe(0);
    expect(second.stderr).toContain('importing cache manifest from');
    const runs = second.vertices.filter((v) => v.name.includes(' RUN '));
    expect(runs.length).toBe(2);
    expect(runs.every((v) => v.cached)).toBe(true);
    expect(await manifestDigest(outB)).toBe(await manifestDigest(outA));

    // One context file changed, in another fresh root: the builder stage and the COPY --from come
    // from the cache, the COPY of app.txt and the RUN after it run.
    await writeFile(join(ctx, 'app.txt'), `changed-${t}\n`);
    const c = await fresh();
    const third = await build(c, ctx, ['--cache-from', `type=local,src=${cache}`, '--output', `type=local,dest=${join(c.dir, 'fs')}`]);
    expect(third.containers).toBe(1);
    const builderRun = third.vertices.find((v) => v.name.startsWith('[builder') && v.name.includes('RUN'));
    const finalRun = third.vertices.find((v) => v.name.startsWith('[stage-1') && v.name.includes('RUN'));
    expect(builderRun?.cached).toBe(true);
    expect(finalRun?.cached).toBe(false);
    expect(await readFile(join(c.dir, 'fs/out/copy.txt'), 'utf8')).toBe(`changed-${t}\nran-${t}\n`);
    expect(await readFile(join(c.dir, 'fs/out/built.txt'), 'utf8')).toBe(`built-${t}\n`);

    // The next build in that root hits its own store: nothing imported, nothing run.
    // (The builder RUN's result was never fetched, so it is not in this store; the COPY --from that
    // used it is, and so is everything after it.)
    const fourth = await build(c, ctx, []);
    expect(fourth.vertices.filter((v) => v.name.includes(' RUN ') || v.name.includes(' COPY ')).every((v) => v.cached)).toBe(true);
  }, 300_000);
});
