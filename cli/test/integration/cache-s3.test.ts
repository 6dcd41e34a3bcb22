import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startS3, type TestS3 } from '../../../runtime/test/helpers/s3.js';
import { compileCli, makeSandbox, requireTools, runKiln, startDaemon, token, writeTree, type KilnSandbox, type TestDaemon } from './build-helpers.js';

// --cache-to / --cache-from type=s3 end to end: real runc builds, an S3-compatible server on
// 127.0.0.1 that checks every request's SigV4 signature with AWS's signer (runtime/test/helpers/s3.ts).
// Each import goes into a fresh kiln root, so a hit can only come from the bucket. Credentials are
// the client's environment, never attributes the test would have to hide.

let s3: TestS3;
let template: KilnSandbox;
const sandboxes: KilnSandbox[] = [];

beforeAll(async () => {
  requireTools();
  compileCli();
  template = await makeSandbox();
  sandboxes.push(template);
  s3 = await startS3({ buckets: ['ci-cache'] });
}, 300_000);

afterAll(async () => {
  await s3?.stop();
  for (const s of sandboxes) await s.cleanup();
});

async function fresh(): Promise<KilnSandbox> {
  const s = await makeSandbox({ copyRootOf: template });
  sandboxes.push(s);
  return s;
}

const aws = (secret = s3.secretAccessKey): Record<string, string> => ({ AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: secret, AWS_REGION: s3.region });
const cache = (name: string, extra = ''): string => `type=s3,bucket=ci-cache,name=${name},endpoint_url=${s3.endpoint},use_path_style=true${extra}`;

async function context(sb: KilnSandbox, t: string): Promise<string> {
  const ctx = join(sb.dir, `ctx-${t}`);
  // Two stages: an import that hits the final steps never fetches the builder's result.
  await writeTree(ctx, {
    Dockerfile: `FROM busybox AS builder\nRUN echo built-${t} > /b.txt\nFROM busybox\nCOPY --from=builder /b.txt /a.txt\nCOPY app.txt /app.txt\nRUN cat /app.txt >> /a.txt\n`,
    'app.txt': `app ${t}\n`,
  });
  return ctx;
}

async function build(sb: KilnSandbox, ctx: string, extra: readonly string[], env: Record<string, string>, expectOk = true) {
  const before = await sb.containersStarted();
  const out = join(sb.dir, `out-${token()}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`, ...extra], { env });
  if (expectOk && r.code !== 0) throw new Error(`kiln build failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const file = r.code === 0 ? await readFile(join(out, 'a.txt'), 'utf8') : '';
  return { ...r, containers: (await sb.containersStarted()) - before, file };
}

const puts = (from: number, prefix: string): string[] => s3.requests.slice(from).filter((r) => r.method === 'PUT' && r.key.startsWith(prefix)).map((r) => r.key);

describe('type=s3 cache', () => {
  test('mode=max into a bucket; a fresh root imports it and runs no container; a second export writes no blob again', async () => {
    const t = token();
    const a = await fresh();
    const ctx = await context(a, t);
    const mark = s3.requests.length;
    const first = await build(a, ctx, ['--cache-to', cache(`app-${t};app-${t}-alias`, ',mode=max')], aws());
    expect(first.containers).toBe(2);
    expect(first.stderr).toContain('exporting cache');
    const blobs = puts(mark, 'blobs/');
    expect(blobs.length).toBeGreaterThanOrEqual(2);
    expect(blobs.every((k) => /^blobs\/sha256:[0-9a-f]{64}$/.test(k))).toBe(true);
    expect(puts(mark, 'manifests/').sort()).toEqual([`manifests/app-${t}`, `manifests/app-${t}-alias`]);
    // The manifest is BuildKit's s3 cache config: each layer's descriptor in its annotations.
    const r = await fetchManifest(`app-${t}`);
    expect(r.layers.length).toBe(blobs.length);
    for (const l of r.layers) {
      expect(l.annotations).toEqual({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffID: expect.stringMatching(/^sha256:/), size: expect.any(Number), createdAt: expect.stringMatching(/Z$/) });
      expect(blobs).toContain(`blobs/${l.blob}`);
    }
    expect(r.records.some((rec) => (rec.layers ?? []).length > 0)).toBe(true);

    const b = await fresh();
    const second = await build(b, ctx, ['--cache-from', cache(`app-${t}`)], aws());
    expect(second.containers).toBe(0);
    expect(second.file).toBe(first.file);
    expect(second.stderr).toContain(`importing cache manifest from s3://ci-cache/manifests/app-${t}`);

    // Exporting the same cache again from the importing root: every blob is there already, and
    // none is downloaded for it (the builder's layer, never fetched by the import, included).
    const mark2 = s3.requests.length;
    await build(b, ctx, ['--cache-from', cache(`app-${t}`), '--cache-to', cache(`app-${t}`, ',mode=max')], aws());
    expect(puts(mark2, 'blobs/')).toEqual([]);
    expect(s3.requests.slice(mark2).filter((q) => q.method === 'GET' && q.key.startsWith('blobs/'))).toEqual([]);
    expect(s3.requests.slice(mark2).filter((q) => q.method === 'HEAD').length).toBe(blobs.length);
    expect(puts(mark2, 'manifests/')).toEqual([`manifests/app-${t}`]);

    // kiln bake: a target's cache-from value is the same s3 cache.
    const c = await fresh();
    const out = join(c.dir, 'bake-out');
    const hcl = join(c.dir, 'docker-bake.hcl');
    await writeTree(c.dir, { 'docker-bake.hcl': `target "app" {\n  context = "${ctx}"\n  cache-from = ["${cache(`app-${t}`)}"]\n  output = ["type=local,dest=${out}"]\n}\n` });
    const before = await c.containersStarted();
    const baked = await runKiln(c, ['bake', '-f', hcl, '--root', c.root, '--progress', 'plain', '--allow', 'fs=*', 'app'], { env: aws() });
    expect(baked.code, baked.stderr.slice(-2000)).toBe(0);
    expect((await c.containersStarted()) - before).toBe(0);
    expect(await readFile(join(out, 'a.txt'), 'utf8')).toBe(first.file);
    expect(s3.refused).toEqual([]);
  });

  test('a wrong secret key: the export fails naming the cause, the import is a warning; the key is never printed', async () => {
    const t = token();
    const a = await fresh();
    const ctx = await context(a, t);
    const wrong = `wrong/${t}/SECRET`;
    const exp = await build(a, ctx, ['--cache-to', cache(`bad-${t}`)], aws(wrong), false);
    expect(exp.code).not.toBe(0);
    expect(exp.stderr).toMatch(/KLN0711.*failed to export cache to s3:\/\/ci-cache\/manifests\/bad-[0-9a-z]+: .*403 SignatureDoesNotMatch/);
    expect(exp.stderr).toContain('hint: check the credentials');
    expect(exp.stderr).not.toContain(wrong);
    // With ignore-error=true the build succeeds with a warning.
    const ign = await build(a, ctx, ['--cache-to', cache(`bad-${t}`, ',ignore-error=true')], aws(wrong));
    expect(ign.stderr).toMatch(/WARNING: .*SignatureDoesNotMatch.*\(ignored: ignore-error=true\)/);
    // An import with the wrong key warns and builds without the cache; a secret given as an attribute is masked.
    const b = await fresh();
    const imp = await build(b, ctx, ['--cache-from', cache(`whatever-${t}`, `,access_key_id=${s3.accessKeyId},secret_access_key=${wrong}`)], { AWS_REGION: s3.region });
    expect(imp.containers).toBe(2);
    expect(imp.stderr).toMatch(/WARNING: failed to import cache s3:\/\/ci-cache\/manifests\/whatever-[0-9a-z]+: .*SignatureDoesNotMatch/);
    expect(imp.stderr).not.toContain(wrong);
    expect(s3.refused.filter((r) => r.code === 'SignatureDoesNotMatch').length).toBeGreaterThanOrEqual(3);
  });

  test('through kiln daemon: the credentials are the client\'s environment, not the daemon\'s', async () => {
    const t = token();
    const a = await fresh();
    const ctx = await context(a, t);
    await build(a, ctx, ['--cache-to', cache(`d-${t}`, ',mode=max')], aws());
    const b = await fresh();
    const socket = join(b.dir, `run-${t}`, 'kilnd.sock');
    // The daemon has no AWS variables and a HOME without ~/.aws.
    const d: TestDaemon = await startDaemon(b, ['--root', b.root, '--addr', `unix://${socket}`], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', HOME: b.dir });
    try {
      const r = await build(b, ctx, ['--cache-from', cache(`d-${t}`)], { ...aws(), KILN_HOST: `unix://${socket}` });
      expect(r.containers).toBe(0);
      expect(d.log()).toContain('build');
      // Without them in the client's environment the daemon has none to use: a warning, the steps run.
      const none = await build(b, await context(b, `${t}-2`), ['--cache-from', cache(`d-${t}`)], { AWS_REGION: s3.region, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', HOME: b.dir, KILN_HOST: `unix://${socket}` });
      expect(none.stderr).toMatch(/WARNING: failed to import cache .*no AWS credentials/);
      expect(none.containers).toBe(2);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });
});

interface S3CacheConfig {
  layers: Array<{ blob: string; parent?: number; annotations?: Record<string, unknown> }>;
  records: Array<{ digest: string; layers?: Array<{ layer: number }> }>;
}

/** The cache config object as the bucket holds it, read straight from the store through the signing front. */
async function fetchManifest(name: string): Promise<S3CacheConfig> {
  const { S3Client } = await import('@kiln/runtime');
  const c = new S3Client({ bucket: 'ci-cache', region: s3.region, endpointUrl: s3.endpoint, usePathStyle: true, credentials: () => Promise.resolve({ accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }) });
  const bytes = await c.getSmall(`manifests/${name}`, 1 << 20);
  return JSON.parse(bytes?.toString() ?? '{}') as S3CacheConfig;
}
