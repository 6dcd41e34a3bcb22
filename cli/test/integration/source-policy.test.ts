import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeDefinition, image } from '@kiln/llb-core';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { layoutJson, parseRawJson, runKiln, startDaemon, token, unpackLayout, useSandbox, writeTree, type Descriptor, type KilnSandbox } from './build-helpers.js';

// Source policies (--source-policy-file, EXPERIMENTAL_BUILDKIT_SOURCE_POLICY) on real builds:
// runc, a docker-registry on 127.0.0.1 holding an image that differs from the store's busybox.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let registry: TestRegistry;
/** `REG/team/variant@sha256:…`: busybox plus /variant, pushed to the registry. */
let variant: string;
let variantText: string;
const BUSYBOX = 'docker-image://docker.io/library/busybox:latest';
const NO_STACK = /\n\s+at /;

beforeAll(async () => {
  registry = await startRegistry();
  const t = token();
  variantText = `variant-${t}`;
  const ctx = join(sb.dir, `variant-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${variantText} > /variant\n` });
  const ref = `${registry.host}/team/variant:${t}`;
  const pushed = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', ref, '--push']);
  expect(pushed.code, pushed.stderr).toBe(0);
  const digest = (JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { Digest: string }).Digest;
  variant = `${registry.host}/team/variant@${digest}`;
}, 180_000);

afterAll(async () => {
  await registry?.stop();
});

async function policyFile(name: string, rules: unknown[]): Promise<string> {
  const file = join(sb.dir, `${name}-${token()}.json`);
  await writeFile(file, JSON.stringify({ version: 1, rules }, null, 2));
  return file;
}

/** A Dockerfile context whose result says whether its base image had /variant. */
async function probeContext(t: string, from = 'busybox:latest'): Promise<string> {
  const ctx = join(sb.dir, `probe-${t}`);
  await writeTree(ctx, { Dockerfile: `# which base?\nFROM ${from}\nRUN (cat /variant 2>/dev/null || echo plain-busybox) > /seen && echo ${t} > /token\n` });
  return ctx;
}

describe('CONVERT', () => {
  test('FROM busybox:latest pinned to another image by digest: the build runs on that image; cache keys are the converted graph\'s', async () => {
    const t = token();
    const ctx = await probeContext(t);
    const pin = await policyFile('pin', [{ action: 'CONVERT', selector: { identifier: BUSYBOX }, updates: { identifier: `docker-image://${variant}` } }]);
    const out = join(sb.dir, `pin-out-${t}`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--source-policy-file', pin, '--output', `type=local,dest=${out}`]);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(out, 'seen'), 'utf8')).toBe(`${variantText}\n`);
    // The FROM was resolved to the converted image: its vertex is named with that digest.
    const digest = variant.slice(variant.indexOf('@') + 1);
    expect(parseRawJson(r.stderr).some((v) => v.name.includes('FROM') && v.name.includes(digest))).toBe(true);

    // Without the policy the same Dockerfile builds on the store's busybox: nothing of the
    // converted build's cache is taken for it.
    const plainOut = join(sb.dir, `plain-out-${t}`);
    const plain = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--output', `type=local,dest=${plainOut}`]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(await readFile(join(plainOut, 'seen'), 'utf8')).toBe('plain-busybox\n');
    const run = (text: string) => parseRawJson(text).find((v) => v.name.includes('RUN (cat'));
    expect(run(plain.stderr)?.cached).toBe(false);
    expect(run(plain.stderr)?.digest).not.toBe(run(r.stderr)?.digest);

    // With the policy again: every step cached, no container.
    const n = await sb.containersStarted();
    const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--source-policy-file', pin, '--output', `type=local,dest=${out}-2`]);
    expect(again.code, again.stderr).toBe(0);
    expect(run(again.stderr)?.cached).toBe(true);
    expect(run(again.stderr)?.digest).toBe(run(r.stderr)?.digest);
    expect(await sb.containersStarted()).toBe(n);
    expect(await readFile(join(`${out}-2`, 'seen'), 'utf8')).toBe(`${variantText}\n`);

    // The Dockerfile written with the converted image: the same RUN vertex, from the cache.
    const direct = await probeContext(t, variant);
    const written = await runKiln(sb, ['build', direct, '--root', sb.root, '--progress', 'rawjson', '--output', `type=local,dest=${out}-3`]);
    expect(written.code, written.stderr).toBe(0);
    expect(run(written.stderr)?.digest).toBe(run(r.stderr)?.digest);
    expect(run(written.stderr)?.cached).toBe(true);
  }, 180_000);

  test('provenance materials name the converted image, not the one the Dockerfile wrote', async () => {
    const t = token();
    const ctx = await probeContext(t);
    const pin = await policyFile('prov-pin', [{ action: 'CONVERT', selector: { identifier: BUSYBOX }, updates: { identifier: `docker-image://${variant}` } }]);
    const out = join(sb.dir, `prov-${t}.tar`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--source-policy-file', pin, '--provenance', 'mode=max', '--output', `type=oci,dest=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    const layout = await unpackLayout(out);
    const index = await layoutJson<{ manifests: Descriptor[] }>(layout, JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')).manifests[0].digest);
    const att = index.manifests.find((m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest');
    const manifest = await layoutJson<{ layers: Descriptor[] }>(layout, att?.digest ?? '');
    const statement = await layoutJson<{ predicate: { materials: { uri: string; digest: { sha256: string } }[] } }>(layout, manifest.layers[0]?.digest ?? '');
    const digest = variant.slice(variant.indexOf('@sha256:') + 8);
    const used = statement.predicate.materials.filter((m) => m.digest.sha256 === digest);
    expect(used.length).toBeGreaterThan(0);
    expect(used.every((m) => m.uri.includes('team/variant'))).toBe(true);
  }, 120_000);

  test('kiln/ts builds go through the same policy (any frontend), also through a kiln daemon', async () => {
    const t = token();
    const ctx = join(sb.dir, `ts-${t}`);
    await writeTree(ctx, { 'kiln.build.ts': `import { image, sh } from "kiln";\nexport default () => image("busybox").run(sh\`(cat /variant || echo plain-busybox) > /seen; echo ${t} > /token\`);\n` });
    const pin = await policyFile('ts-pin', [{ action: 'CONVERT', selector: { identifier: BUSYBOX }, updates: { identifier: `docker-image://${variant}` } }]);
    const out = join(sb.dir, `ts-out-${t}`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--source-policy-file', pin, '--output', `type=local,dest=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(out, 'seen'), 'utf8')).toBe(`${variantText}\n`);

    // Through a daemon: the client's variable and working directory name the file.
    const sock = join(sb.dir, `kilnd-${t}.sock`);
    const env = { KILN_HOST: `unix://${sock}` };
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${sock}`], env);
    try {
      const deny = await policyFile('ts-deny', [{ action: 'DENY', selector: { identifier: BUSYBOX } }]);
      const viaDaemon = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env: { ...env, EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: basename(deny) }, cwd: sb.dir });
      expect(viaDaemon.code).toBe(1);
      // The policy's code and message, at the image() call of kiln.build.ts.
      expect(viaDaemon.stderr).toContain(`kiln: error KLN0952: kiln.build.ts:2:22: source "${BUSYBOX}" denied by policy: rules[0]`);
      expect(viaDaemon.stderr).not.toMatch(NO_STACK);
      // The daemon ran it (not a fallback process).
      expect(d.log()).toMatch(/started build for client/);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  }, 120_000);

  test('kiln solve: raw LLB has its image source converted by the same policy', async () => {
    const t = token();
    const def = encodeDefinition(await image('busybox').run({ args: ['/bin/sh', '-c', `cat /variant > /seen; echo ${t} > /token`] }).root().marshal());
    const file = join(sb.dir, `solve-${t}.pb`);
    await writeFile(file, def);
    const pin = await policyFile('solve-pin', [{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/busybox:*' }, updates: { identifier: `docker-image://${variant}` } }]);
    const out = join(sb.dir, `solve-out-${t}`);
    const r = await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain', '--source-policy-file', pin, '-o', `type=local,dest=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(out, 'seen'), 'utf8')).toBe(`${variantText}\n`);
    // Denied instead: the op's identifier and the rule are named.
    const deny = await policyFile('solve-deny', [{ action: 'DENY', selector: { identifier: 'docker-image://docker.io/library/*' } }]);
    const denied = await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain', '--source-policy-file', deny]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(`kiln: error KLN0952: source "${BUSYBOX}" denied by policy: rules[0]`);
    expect(denied.stderr).not.toMatch(NO_STACK);
  }, 120_000);
});

describe('DENY and ALLOW', () => {
  test('a wildcard that ends in the tag denies the image pinned to a digest (patterns see it without the digest, as in BuildKit)', async () => {
    const t = token();
    const pinned = `busybox:latest@sha256:${'e'.repeat(64)}`;
    const file = join(sb.dir, `solve-pinned-${t}.pb`);
    await writeFile(file, encodeDefinition(await image(pinned).run({ args: ['/bin/sh', '-c', `echo ${t}`] }).root().marshal()));
    const deny = await policyFile('tag-wildcard', [{ action: 'DENY', selector: { identifier: 'docker-image://docker.io/library/*:latest' } }]);
    const r = await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain', '--source-policy-file', deny]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`kiln: error KLN0952: source "docker-image://docker.io/library/${pinned}" denied by policy: rules[0]`);
  }, 60_000);

  test('a denied FROM fails with the Dockerfile line, the source, the rule and the file; exit 1, no stack trace', async () => {
    const t = token();
    const ctx = await probeContext(t);
    const deny = await policyFile('deny', [{ action: 'DENY', selector: { identifier: 'docker-image://docker.io/library/*' } }]);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--source-policy-file', deny]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.stderr).toContain(`kiln: error KLN0952: Dockerfile:2:1: source "${BUSYBOX}" denied by policy: rules[0] (DENY "docker-image://docker.io/library/*") in ${deny}`);
    expect(r.stderr).toContain('  2 | FROM busybox:latest');
    expect(r.stderr).toMatch(/\nhint: /);
  }, 60_000);

  test('ADD of a denied http URL fails at its line before anything is fetched', async () => {
    const t = token();
    const ctx = join(sb.dir, `http-${t}`);
    // Port 9 (discard) on loopback: a fetch would fail differently; the policy stops it first.
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t}\nADD http://127.0.0.1:9/tool-${t}.tgz /tool.tgz\n` });
    const deny = await policyFile('deny-http', [{ action: 'DENY', selector: { identifier: 'http://*' } }]);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--source-policy-file', deny]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.stderr).toContain(`kiln: error KLN0952: Dockerfile:3:1: source "http://127.0.0.1:9/tool-${t}.tgz" denied by policy: rules[0]`);
    expect(r.stderr).toContain(`  3 | ADD http://127.0.0.1:9/tool-${t}.tgz /tool.tgz`);
    // Nothing ran: the graph is refused whole, before its first step.
    expect(r.stderr).not.toContain(`echo ${t}`);
  }, 60_000);

  test('EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: ALLOW after a wildcard DENY exempts one image, others stay denied', async () => {
    const t = token();
    const policy = await policyFile('allow', [
      { action: 'DENY', selector: { identifier: 'docker-image://*' } },
      { action: 'ALLOW', selector: { identifier: BUSYBOX } },
    ]);
    const env = { EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: policy };
    const out = join(sb.dir, `allow-out-${t}`);
    const ok = await runKiln(sb, ['build', await probeContext(t), '--root', sb.root, '--progress', 'quiet', '--output', `type=local,dest=${out}`], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(await readFile(join(out, 'seen'), 'utf8')).toBe('plain-busybox\n');
    const other = await runKiln(sb, ['build', await probeContext(`${t}b`, variant), '--root', sb.root, '--progress', 'quiet'], { env });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`KLN0952: Dockerfile:2:1: source "docker-image://${variant}" denied by policy: rules[0]`);
    // The flag wins over the variable.
    const none = await policyFile('none', []);
    const flag = await runKiln(sb, ['build', await probeContext(`${t}c`, variant), '--root', sb.root, '--progress', 'quiet', '--source-policy-file', none], { env });
    expect(flag.code, flag.stderr).toBe(0);
  }, 120_000);

  test('kiln bake reads the variable for every target', async () => {
    const t = token();
    const dir = join(sb.dir, `bake-${t}`);
    await writeTree(dir, {
      'docker-bake.hcl': 'target "a" {\n  context = "a"\n}\n',
      'a/Dockerfile': `FROM busybox\nRUN echo ${t}\n`,
    });
    const deny = await policyFile('bake-deny', [{ action: 'DENY', selector: { identifier: BUSYBOX } }]);
    const r = await runKiln(sb, ['bake', '-f', join(dir, 'docker-bake.hcl'), '--root', sb.root, '--progress', 'plain', 'a'], { env: { EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: deny }, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`KLN0952`);
    expect(r.stderr).toContain(`source "${BUSYBOX}" denied by policy: rules[0]`);
    expect(r.stderr).not.toMatch(NO_STACK);
  }, 60_000);
});

describe('bad policy files', () => {
  test('a field the format does not have, and a missing file: KLN0951/KLN0950 naming the file and the JSON path', async () => {
    const ctx = await probeContext(token());
    const bad = await policyFile('bad', [{ action: 'DENY', selector: { identifier: 'docker-image://*' } }, { action: 'PIN', selector: { identifier: BUSYBOX } }]);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--source-policy-file', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`KLN0951: ${bad}: rules[1].action: unknown action "PIN"`);
    expect(r.stderr).toContain('hint: use one of ALLOW, DENY, CONVERT');
    expect(r.stderr).not.toMatch(NO_STACK);
    const missing = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet'], { env: { EXPERIMENTAL_BUILDKIT_SOURCE_POLICY: 'no-such-policy.json' }, cwd: sb.dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('KLN0950: cannot read source policy file no-such-policy.json: no such file');
  }, 60_000);
});
