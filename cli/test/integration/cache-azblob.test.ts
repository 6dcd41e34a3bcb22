import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { AzblobClient } from '@kiln/runtime';
import { useAzurite, type TestAzurite } from '../../../runtime/test/helpers/azurite.js';
import { makeSandbox, runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// --cache-to / --cache-from type=azblob end to end: real runc builds, Azurite (the Azure Storage
// emulator, which checks every Shared Key signature) on 127.0.0.1. The import goes into a fresh
// kiln root, so a hit can only come from the container. The account URL and name come from the
// caller's BUILDKIT_AZURE_STORAGE_* variables, the key from the attribute.

let template: KilnSandbox;
useSandbox((sb) => (template = sb));
let az: TestAzurite;
useAzurite((a) => (az = a));
const roots: KilnSandbox[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => r.cleanup()));
});

const env = (): Record<string, string> => ({ BUILDKIT_AZURE_STORAGE_ACCOUNT_URL: az.accountUrl, BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME: az.accountName });
const cache = (name: string, extra = '', key = az.accountKey): string => `type=azblob,container=ci-cache,prefix=team,name=${name},secret_access_key=${key}${extra}`;

/** A kiln root of its own (a copy of the template's: busybox only), and a build in it that counts the containers it starts. */
async function root() {
  const sb = await makeSandbox({ copyRootOf: template });
  roots.push(sb);
  return {
    sb,
    async build(ctx: string, flags: readonly string[]) {
      const out = join(sb.dir, `out-${token()}`);
      const started = await sb.containersStarted();
      const run = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`, ...flags], { env: env() });
      return { run, containers: (await sb.containersStarted()) - started, file: () => readFile(join(out, 'a.txt'), 'utf8') };
    },
  };
}

/** Blob names of the successful writes (Put Blob, Put Block List) in the container since `from`. */
const written = (from: number): string[] =>
  az.requests
    .slice(from)
    .filter((r) => r.method === 'PUT' && r.status === 201 && !r.path.includes('comp=block&') && !r.path.includes('restype=container'))
    .map((r) => r.path.replace(/\?.*$/, '').replace(`/${az.accountName}/ci-cache/`, ''));

describe('type=azblob cache', () => {
  test('mode=max into a container it creates; a fresh root imports it and runs no container; a wrong key fails the export', async () => {
    const t = token();
    const a = await root();
    const ctx = join(a.sb.dir, `ctx-${t}`);
    // Two stages: an import that hits the final steps never fetches the builder's result.
    await writeTree(ctx, {
      Dockerfile: `FROM busybox AS builder\nRUN echo built-${t} > /b.txt\nFROM busybox\nCOPY --from=builder /b.txt /a.txt\nCOPY app.txt /app.txt\nRUN cat /app.txt >> /a.txt\n`,
      'app.txt': `app ${t}\n`,
    });
    const mark = az.requests.length;
    const first = await a.build(ctx, ['--cache-to', cache(`app-${t};app-${t}-alias`, ',mode=max')]);
    expect(first.run.code, first.run.stderr.slice(-3000)).toBe(0);
    expect(first.containers).toBe(2);
    expect(first.run.stderr).toContain('exporting cache');
    // The container did not exist: the export made it (as BuildKit's createContainerClient).
    expect(az.requests.slice(mark).filter((r) => r.method === 'PUT' && r.path === `/${az.accountName}/ci-cache?restype=container`).map((r) => r.status)).toEqual([201]);
    const puts = written(mark);
    const blobs = puts.filter((k) => k.startsWith('team/blobs/'));
    expect(blobs.length).toBeGreaterThanOrEqual(2);
    expect(blobs.every((k) => /^team\/blobs\/sha256:[0-9a-f]{64}$/.test(k))).toBe(true);
    // The manifests last, after every blob.
    expect(puts.slice(blobs.length).sort()).toEqual([`team/manifests/app-${t}`, `team/manifests/app-${t}-alias`]);

    // The config is BuildKit's s3/azblob cache config: each layer's descriptor in its annotations.
    const c = new AzblobClient({ accountUrl: az.accountUrl, accountName: az.accountName, container: 'ci-cache', credential: () => ({ kind: 'shared-key', key: az.accountKey }) });
    const config = JSON.parse((await c.getSmall(`team/manifests/app-${t}`, 1 << 20))?.toString() ?? '{}') as { layers: Array<{ blob: string; annotations?: Record<string, unknown> }>; records: Array<{ layers?: unknown[] }> };
    expect(config.layers.length).toBe(blobs.length);
    for (const l of config.layers) {
      expect(l.annotations).toEqual({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffID: expect.stringMatching(/^sha256:/), size: expect.any(Number), createdAt: expect.stringMatching(/Z$/) });
      expect(blobs).toContain(`team/blobs/${l.blob}`);
    }
    expect(config.records.some((r) => (r.layers ?? []).length > 0)).toBe(true);

    const b = await root();
    const second = await b.build(ctx, ['--cache-from', cache(`app-${t}`)]);
    expect(second.run.code, second.run.stderr.slice(-3000)).toBe(0);
    expect(second.containers).toBe(0);
    expect(await second.file()).toBe(await first.file());
    expect(second.run.stderr).toContain(`importing cache manifest from ${az.accountUrl}/ci-cache/team/manifests/app-${t}`);
    expect(second.run.stderr).toMatch(/CACHED/);

    // A wrong key: the export fails naming Azure's refusal and what to check; the key is never printed.
    const wrong = Buffer.from(`wrong-${t}-key-of-some-length`).toString('base64');
    const bad = await a.build(ctx, ['--cache-to', cache(`bad-${t}`, '', wrong)]);
    expect(bad.run.code).not.toBe(0);
    expect(bad.run.stderr).toMatch(new RegExp(`KLN0711.*failed to export cache to ${az.accountUrl.replace(/[.]/g, '\\.')}/ci-cache/team/manifests/bad-${t}: .*access denied \\(403 Auth`));
    expect(bad.run.stderr).toContain('hint: check secret_access_key');
    expect(bad.run.stderr).not.toContain(wrong);
  });
});
