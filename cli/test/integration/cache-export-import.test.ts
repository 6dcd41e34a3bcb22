import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, parseDigest } from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { type KilnSandbox, compileCli, makeSandbox, parseRawJson, requireTools, runKiln, token, writeTree } from './build-helpers.js';

// --cache-to / --cache-from in BuildKit's format, end to end: real runc, a real docker-registry,
// skopeo to read what was pushed. Each import goes into a fresh kiln root (its own sandbox), so a
// hit can only come from the imported cache.

const sandboxes: KilnSandbox[] = [];
/** Never built in: each fresh root is a copy of its root (busybox), not made again. */
let template: KilnSandbox;
let a: KilnSandbox;
let registry: TestRegistry;

beforeAll(async () => {
  requireTools();
  compileCli();
  template = await makeSandbox();
  sandboxes.push(template);
  a = await fresh();
  registry = await startRegistry();
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  for (const s of sandboxes) await s.cleanup();
});

/** Layer blobs a cache layout lists (the manifest list entries other than the cache config). */
async function cacheLayers(layout: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const root = index.manifests[0]?.digest ?? '';
  const list = JSON.parse(await readFile(join(layout, 'blobs/sha256', root.replace('sha256:', '')), 'utf8')) as { manifests: Array<{ mediaType: string; digest: string }> };
  return list.manifests.filter((m) => m.mediaType !== 'application/vnd.buildkit.cacheconfig.v0').map((m) => m.digest);
}

async function fresh(): Promise<KilnSandbox> {
  const s = await makeSandbox({ copyRootOf: template });
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

/** Digest of the cache config blob a cache layout's manifest list names. */
async function configDigest(layout: string): Promise<string> {
  const list = JSON.parse(await readFile(join(layout, 'blobs/sha256', (await manifestDigest(layout)).slice(7)), 'utf8')) as { manifests: Array<{ mediaType: string; digest: string }> };
  return list.manifests.find((m) => m.mediaType === 'application/vnd.buildkit.cacheconfig.v0')?.digest ?? '';
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

    // Deterministic: the unchanged rebuild exports the same cache, byte for byte (same manifest).
    const cache2 = join(a.dir, `cache2-${t}`);
    const again = await build(a, ctx, ['--progress', 'plain', '--cache-to', `type=local,dest=${cache2},mode=max`]);
    expect(again.containers).toBe(0);
    expect(await manifestDigest(cache2)).toBe(await manifestDigest(cache));
    expect(again.stderr).toMatch(/exporting cache/);
    expect(again.stderr).toMatch(/writing layer sha256:[0-9a-f]{64}/);
    expect(again.stderr).toMatch(/writing config sha256:[0-9a-f]{64}/);
    expect(again.stderr).toMatch(/writing manifest sha256:[0-9a-f]{64}/);

    const b = await fresh();
    const outB = join(b.dir, 'img-b');
    const second = await build(b, ctx, ['--cache-from', `type=local,src=${cache}`, '--output', `type=oci,dest=${outB},tar=false`]);
    expect(second.containers).toBe(0);
    expect(second.stderr).toContain('importing cache manifest from');
    const runs = second.vertices.filter((v) => v.name.includes(' RUN '));
    expect(runs.length).toBe(2);
    expect(runs.every((v) => v.cached)).toBe(true);
    expect(await manifestDigest(outB)).toBe(await manifestDigest(outA));
    // Lazily: every layer of the cache but the builder stage's RUN (which nothing needed) was fetched.
    const store = await ContentStore.open(b.root);
    const missing: string[] = [];
    for (const d of await cacheLayers(cache)) if (!(await store.has(parseDigest(d)))) missing.push(d);
    expect(missing.length).toBe(1);

    // Imported and exported again from a fresh root, the cache is the same: an imported result
    // keeps its createdAt and its layers their buildkit/createdat (BuildKit's combined cache
    // manager saves it with the imported CreatedAt), and the import's links into the keys that hit
    // (the content key of the builder's output, never computed here) are exported as BuildKit's
    // addBacklinks walks every cache manager's ids. CI caches do not churn when nothing changed.
    const b2 = await fresh();
    const cacheB = join(b2.dir, 'cache-b');
    const reexport = await build(b2, ctx, ['--cache-from', `type=local,src=${cache}`, '--cache-to', `type=local,dest=${cacheB},mode=max`]);
    expect(reexport.containers).toBe(0);
    expect(await readFile(join(cacheB, 'blobs/sha256', (await configDigest(cacheB)).slice(7)), 'utf8')).toBe(await readFile(join(cache, 'blobs/sha256', (await configDigest(cache)).slice(7)), 'utf8'));
    expect(await manifestDigest(cacheB)).toBe(await manifestDigest(cache));

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
    // (The builder RUN's result was never fetched, so it is not in this store, and it is not run:
    // the COPY --from that used it is stored, and so is everything after it.)
    const fourth = await build(c, ctx, []);
    expect(fourth.vertices.filter((v) => v.name.includes(' RUN ') || v.name.includes(' COPY ')).every((v) => v.cached)).toBe(true);
    expect(fourth.containers).toBe(0);
  }, 300_000);
});

describe('cache export modes', () => {
  test('mode=min exports the final stage only: an intermediate stage re-runs from a min cache, not from a max one', async () => {
    const t = token();
    const ctx = join(a.dir, `modes-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
    const min = join(a.dir, `min-${t}`);
    const max = join(a.dir, `max-${t}`);
    await build(a, ctx, ['--cache-to', `type=local,dest=${min}`, '--cache-to', `type=local,dest=${max},mode=max`]);
    expect((await cacheLayers(max)).length).toBeGreaterThan((await cacheLayers(min)).length);

    // The whole build from the min cache: the final stage is there, nothing runs.
    const full = await build(await fresh(), ctx, ['--cache-from', `type=local,src=${min}`]);
    expect(full.containers).toBe(0);
    // The builder stage alone: its result is only in the max cache.
    const fromMin = await build(await fresh(), ctx, ['--target', 'builder', '--cache-from', `type=local,src=${min}`]);
    expect(fromMin.containers).toBe(1);
    const fromMax = await build(await fresh(), ctx, ['--target', 'builder', '--cache-from', `type=local,src=${max}`]);
    expect(fromMax.containers).toBe(0);
    // A min export of a build that imported the max cache keeps the imported results it did not
    // fetch (the builder's RUN): their layers exist, and BuildKit's RemoteOnly mode keeps those.
    const reMin = join(a.dir, `remin-${t}`);
    await build(await fresh(), ctx, ['--cache-from', `type=local,src=${max}`, '--cache-to', `type=local,dest=${reMin}`]);
    const fromReMin = await build(await fresh(), ctx, ['--target', 'builder', '--cache-from', `type=local,src=${reMin}`]);
    expect(fromReMin.containers).toBe(0);
    // The same for an imported result fetched into a root by an earlier build (its layers came
    // from the cache: BuildKit's LoadRemotes finds them without creating anything).
    const x = await fresh();
    await build(x, ctx, ['--target', 'builder', '--cache-from', `type=local,src=${max}`]);
    const fetchedMin = join(a.dir, `fetchedmin-${t}`);
    await build(x, ctx, ['--cache-from', `type=local,src=${max}`, '--cache-to', `type=local,dest=${fetchedMin}`]);
    const fromFetchedMin = await build(await fresh(), ctx, ['--target', 'builder', '--cache-from', `type=local,src=${fetchedMin}`]);
    expect(fromFetchedMin.containers).toBe(0);
    // compression=zstd re-encodes only what the build made: imported blobs keep their gzip (no
    // force-compression), so exporting a fully imported build keeps every blob of the import.
    const reZst = join(a.dir, `rezst-${t}`);
    await build(await fresh(), ctx, ['--cache-from', `type=local,src=${max}`, '--cache-to', `type=local,dest=${reZst},mode=max,compression=zstd`]);
    expect((await cacheLayers(reZst)).sort()).toEqual((await cacheLayers(max)).sort());

    // compression=zstd, oci-mediatypes=false: a Docker manifest list; the layers the build made
    // are zstd, the busybox base keeps its gzip blob (as a Docker gzip layer); it imports.
    const zst = join(a.dir, `zst-${t}`);
    await build(a, ctx, ['--cache-to', `type=local,dest=${zst},mode=max,compression=zstd,oci-mediatypes=false`]);
    const zIndex = JSON.parse(await readFile(join(zst, 'index.json'), 'utf8')) as { manifests: Array<{ mediaType: string; digest: string }> };
    expect(zIndex.manifests[0]?.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    const zList = JSON.parse(await readFile(join(zst, 'blobs/sha256', (zIndex.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as { mediaType: string; manifests: Array<{ mediaType: string }> };
    expect(zList.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    const types = zList.manifests.map((m) => m.mediaType);
    expect(types.filter((m) => m === 'application/vnd.docker.image.rootfs.diff.tar.gzip').length).toBe(1);
    expect(types.filter((m) => m === 'application/vnd.oci.image.layer.v1.tar+zstd').length).toBe(types.length - 2);
    expect(types[types.length - 1]).toBe('application/vnd.buildkit.cacheconfig.v0');
    const fromZst = await build(await fresh(), ctx, ['--cache-from', `type=local,src=${zst}`]);
    expect(fromZst.containers).toBe(0);
  }, 300_000);
});

describe('cache export/import, type=registry and type=inline', () => {
  test('a cache pushed to a real registry has BuildKit\'s manifest list, and a fresh root builds from it without a container', async () => {
    const t = token();
    const ctx = join(a.dir, `reg-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
    const ref = `${registry.host}/cache/app:${t}`;
    const first = await build(a, ctx, ['--cache-to', `type=registry,ref=${ref},mode=max`]);
    expect(first.stderr).toMatch(/writing manifest sha256:[0-9a-f]{64}/);

    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as {
      schemaVersion: number;
      mediaType: string;
      manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
    };
    expect(raw.schemaVersion).toBe(2);
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const last = raw.manifests[raw.manifests.length - 1];
    expect(last?.mediaType).toBe('application/vnd.buildkit.cacheconfig.v0');
    const layers = raw.manifests.slice(0, -1);
    expect(layers.length).toBeGreaterThanOrEqual(4);
    for (const l of layers) {
      expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
      expect(l.annotations?.['containerd.io/uncompressed']).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(l.annotations?.['buildkit/createdat']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    }
    // The config blob: records link to records, results point at the listed layers.
    const res = await fetch(`http://${registry.host}/v2/cache/app/blobs/${last?.digest ?? ''}`);
    expect(res.status).toBe(200);
    const cfg = JSON.parse(await res.text()) as {
      layers: Array<{ blob: string; parent?: number }>;
      records: Array<{ digest: string; inputs?: Array<Array<{ link: number }>>; layers?: Array<{ layer: number; createdAt: string }> }>;
    };
    expect(new Set(cfg.layers.map((l) => l.blob))).toEqual(new Set(layers.map((l) => l.digest)));
    expect(cfg.records.some((r) => (r.layers ?? []).length > 0 && (r.inputs ?? []).length > 0)).toBe(true);

    const b = await fresh();
    const second = await build(b, ctx, ['--cache-from', `type=registry,ref=${ref}`]);
    expect(second.containers).toBe(0);
    expect(second.vertices.filter((v) => v.name.includes(' RUN ')).every((v) => v.cached)).toBe(true);
  }, 300_000);

  test('inline cache: an image pushed with --cache-to type=inline is a cache source for a fresh root', async () => {
    const t = token();
    const ctx = join(a.dir, `inline-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
    const ref = `${registry.host}/inline/app:${t}`;
    await build(a, ctx, ['--cache-to', 'type=inline', '--output', `type=image,name=${ref},push=true`]);
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as Record<string, unknown>;
    const inline = config['moby.buildkit.cache.v0'];
    expect(typeof inline).toBe('string');
    const records = JSON.parse(Buffer.from(inline as string, 'base64').toString('utf8')) as Array<{ digest: string; layers?: Array<{ layer: number }> }>;
    const layerCount = (config['rootfs'] as { diff_ids: string[] }).diff_ids.length;
    const results = records.flatMap((r) => r.layers ?? []);
    expect(results.length).toBeGreaterThan(0);
    expect(results.every((r) => r.layer >= 0 && r.layer < layerCount)).toBe(true);

    const b = await fresh();
    const second = await build(b, ctx, ['--cache-from', `type=registry,ref=${ref}`]);
    expect(second.containers).toBe(0);
    expect(second.vertices.filter((v) => v.name.includes(' RUN ') && v.name.startsWith('[stage-1')).every((v) => v.cached)).toBe(true);
  }, 300_000);
});

describe('multi-platform builds', () => {
  // A cross-compiling Dockerfile: the builder stage runs on the build platform once per target
  // platform (TARGETARCH differs, so do the keys), the final stages are scratch. BuildKit exports
  // every platform's result into one cache and gives each platform's image its own inline cache.
  const crossDockerfile = (t: string): string =>
    ['FROM --platform=$BUILDPLATFORM busybox AS builder', 'ARG TARGETARCH', `RUN echo ${t}-$TARGETARCH > /arch`, 'FROM scratch', 'COPY --from=builder /arch /arch', ''].join('\n');
  const PLATFORMS = ['--platform', 'linux/amd64,linux/arm64'];

  test('--cache-to type=local holds every platform\'s steps: a fresh root runs no container for either', async () => {
    const t = token();
    const ctx = join(a.dir, `multi-${t}`);
    await writeTree(ctx, { Dockerfile: crossDockerfile(t) });
    const cache = join(a.dir, `multi-cache-${t}`);
    const first = await build(a, ctx, [...PLATFORMS, '--cache-to', `type=local,dest=${cache},mode=max`]);
    expect(first.containers).toBe(2);

    const b = await fresh();
    const out = join(b.dir, 'out');
    const second = await build(b, ctx, [...PLATFORMS, '--cache-from', `type=local,src=${cache}`, '--output', `type=local,dest=${out}`]);
    expect(second.containers).toBe(0);
    expect(await readFile(join(out, 'linux_amd64/arch'), 'utf8')).toBe(`${t}-amd64\n`);
    expect(await readFile(join(out, 'linux_arm64/arch'), 'utf8')).toBe(`${t}-arm64\n`);
  }, 300_000);

  test('--cache-to type=inline gives each platform\'s image its own records: a fresh root builds both from the pushed index', async () => {
    const t = token();
    const ctx = join(a.dir, `multi-inline-${t}`);
    await writeTree(ctx, { Dockerfile: crossDockerfile(t) });
    const ref = `${registry.host}/inline/multi:${t}`;
    await build(a, ctx, [...PLATFORMS, '--cache-to', 'type=inline', '--output', `type=image,name=${ref},push=true`]);
    for (const arch of ['amd64', 'arm64']) {
      const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', '--override-arch', arch, `docker://${ref}`], { encoding: 'utf8' })) as Record<string, unknown>;
      expect(typeof config['moby.buildkit.cache.v0'], arch).toBe('string');
    }
    const b = await fresh();
    const second = await build(b, ctx, [...PLATFORMS, '--cache-from', `type=registry,ref=${ref}`]);
    expect(second.containers).toBe(0);
  }, 300_000);
});

describe('type=registry with credentials', () => {
  test('cache export and import use the caller\'s Docker config as image push and pull do; without it the export fails and the import is a warning', async () => {
    const t = token();
    const password = `pw-${t}`;
    const htpasswd = join(a.dir, `htpasswd-${t}`);
    const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], q($2b$05$) . $ARGV[1])', password, 'kilnkilnkilnkilnkilnku'], { encoding: 'utf8' });
    await writeFile(htpasswd, `alice:${hash}\n`);
    const auth = await startRegistry({ htpasswd });
    try {
      const withCreds = join(a.dir, `docker-alice-${t}`);
      const noCreds = join(a.dir, `docker-nobody-${t}`);
      await mkdir(withCreds, { recursive: true });
      await mkdir(noCreds, { recursive: true });
      await writeFile(join(withCreds, 'config.json'), JSON.stringify({ auths: { [auth.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } } }));
      const ctx = join(a.dir, `auth-${t}`);
      await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
      const ref = `${auth.host}/private/cache:${t}`;
      const run = (sb: KilnSandbox, dockerConfig: string, extra: readonly string[]) =>
        runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', ...EPOCH, ...extra], { env: { DOCKER_CONFIG: dockerConfig, KILN_DAEMON: '0' } });

      const refused = await run(a, noCreds, ['--cache-to', `type=registry,ref=${ref},mode=max`]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('KLN0711');
      expect(refused.stderr).toMatch(/authentication required|unauthori[sz]ed|credentials/i);
      const pushed = await run(a, withCreds, ['--cache-to', `type=registry,ref=${ref},mode=max`]);
      expect(pushed.code).toBe(0);

      const b = await fresh();
      const before = await b.containersStarted();
      const anonymous = await run(b, noCreds, ['--cache-from', `type=registry,ref=${ref}`]);
      expect(anonymous.code).toBe(0);
      expect(anonymous.stderr).toMatch(/WARNING: failed to import cache \S+private\/cache:\S+: .*(authentication required|unauthori[sz]ed|credentials)/i);
      expect((await b.containersStarted()) - before).toBe(2);
      const c = await fresh();
      const imported = await run(c, withCreds, ['--cache-from', `type=registry,ref=${ref}`]);
      expect(imported.code).toBe(0);
      expect(await c.containersStarted()).toBe(0);
      expect(refused.stderr + pushed.stderr + anonymous.stderr + imported.stderr).not.toContain(password);
    } finally {
      await auth.stop();
    }
  }, 300_000);
});

describe('cache sources and destinations that do not work', () => {
  test('a missing or corrupt --cache-from is a warning and the build runs; a failing --cache-to fails the build', async () => {
    const t = token();
    const ctx = join(a.dir, `bad-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t), 'app.txt': `app-${t}\n` });
    const corrupt = join(a.dir, `corrupt-${t}`);
    await writeTree(corrupt, { 'index.json': '{"manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:' + '0'.repeat(64) + '", "size": 2, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}' });
    const b = await fresh();
    const r = await build(b, ctx, ['--cache-from', `type=local,src=${join(a.dir, 'nope')}`, '--cache-from', `type=local,src=${corrupt}`, '--cache-from', 'type=gha']);
    expect(r.containers).toBe(2);
    expect(r.stderr).toMatch(/WARNING: failed to import cache type=local,src=.*nope/);
    expect(r.stderr).toMatch(/WARNING: failed to import cache type=local,src=.*corrupt/);
    expect(r.stderr).toMatch(/WARNING: --cache-from "type=gha": cache type "gha" is not supported/);

    // A cache whose layer blobs are gone: every step it matched runs instead, the build succeeds.
    const gone = join(a.dir, `gone-${t}`);
    await build(a, ctx, ['--cache-to', `type=local,dest=${gone},mode=max`]);
    for (const d of await cacheLayers(gone)) await rm(join(gone, 'blobs/sha256', d.replace('sha256:', '')));
    const c = await fresh();
    const fallback = await build(c, ctx, ['--cache-from', `type=local,src=${gone}`, '--output', `type=local,dest=${join(c.dir, 'fs')}`]);
    expect(fallback.containers).toBe(2);
    expect(await readFile(join(c.dir, 'fs/out/copy.txt'), 'utf8')).toBe(`app-${t}\nran-${t}\n`);

    // A destination that cannot be a directory: refused before the build, no stack trace.
    const blocker = join(a.dir, `file-${t}`);
    await writeFile(blocker, 'not a directory');
    const refusedDest = await runKiln(b, ['build', ctx, '--root', b.root, '--progress', 'plain', '--cache-to', `type=local,dest=${join(blocker, 'cache')}`]);
    expect(refusedDest.code).toBe(1);
    expect(refusedDest.stderr).toContain(`KLN0710: invalid --cache-to "type=local,dest=${join(blocker, 'cache')}": ${blocker} is not a directory`);
    expect(refusedDest.stderr).not.toMatch(/\n\s+at /);
    // One that fails at export (a registry nobody serves): exit 1 with the error after the build.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const failed = await runKiln(b, ['build', ctx, '--root', b.root, '--progress', 'plain', '--cache-to', `type=registry,ref=127.0.0.1:${port}/c/cache`]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('KLN0711');
    expect(failed.stderr).toContain('failed to export cache to');
    expect(failed.stderr).not.toMatch(/\n\s+at /);
    // ignore-error=true (BuildKit v0.11): the same failure is a warning and the build succeeds.
    const ignored = await runKiln(b, ['build', ctx, '--root', b.root, '--progress', 'plain', '--cache-to', `type=registry,ref=127.0.0.1:${port}/c/cache,ignore-error=true`]);
    expect(ignored.code).toBe(0);
    expect(ignored.stderr).toContain('WARNING: failed to export cache to');

    // An unknown --cache-to type is refused before anything runs.
    const refused = await runKiln(b, ['build', ctx, '--root', b.root, '--cache-to', 'type=s3,bucket=x']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('KLN0710');
  }, 300_000);
});
