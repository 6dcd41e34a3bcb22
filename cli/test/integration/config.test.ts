/**
 * The kiln config file (buildkitd.toml's registry and GC keys) through the CLI on real runc and
 * docker-registry: a private CA, insecure, a docker.io mirror, the daemon's own config, and the
 * file's GC policy after a build.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CacheStore } from '@kiln/solver';
import { makeTestPki, type TestPki } from '../../../runtime/test/helpers/pki.js';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { runKiln, startDaemon, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let pki: TestPki;
let tls: TestRegistry;
let plain: TestRegistry;
beforeAll(async () => {
  pki = makeTestPki(await mkdtemp(join(sb.dir, 'pki-')));
  [tls, plain] = await Promise.all([startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey } }), startRegistry()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([tls?.stop(), plain?.stop()]);
});

const NO_GC = { KILN_GC_KEEP_STORAGE: 'off' };
const md5 = async (p: string): Promise<string> => createHash('md5').update(await readFile(p)).digest('hex');

async function configFile(name: string, text: string): Promise<string> {
  const p = join(sb.dir, `${name}-${token()}.toml`);
  await writeFile(p, text);
  return p;
}

/** `kiln build` of a one-line Dockerfile into a fresh root (unless `root`), exporting the rootfs. */
async function buildFrom(image: string, args: readonly string[], root?: string) {
  const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(ctx, { Dockerfile: `FROM ${image}\n` });
  const out = join(ctx, 'out');
  const r = await runKiln(sb, ['build', ctx, '--root', root ?? join(ctx, 'root'), '--progress', 'plain', '-o', `type=local,dest=${out}`, ...args], { env: NO_GC });
  return { r, out };
}

describe('registries from the config file', { timeout: 120_000 }, () => {
  test('a registry with a private CA: refused without config (the certificate problem and the key to set), pulled with ca, or insecure', async () => {
    // ::ffff:127.0.0.1 is the local listener under a name that is not localhost (so https by default).
    const host = `[::ffff:127.0.0.1]:${tls.port}`;
    const withCa = await configFile('ca', `[registry."${host}"]\nca = ["${pki.ca}"]\n`);
    const push = await runKiln(sb, ['push', 'busybox', `${host}/base:1`, '--root', sb.root, '--config', withCa], { env: NO_GC });
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);

    const refused = await buildFrom(`${host}/base:1`, []);
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toContain('TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(refused.r.stderr).toContain(`; set ca (or insecure) under [registry."${host}"] in the kiln config`);

    const trusted = await buildFrom(`${host}/base:1`, ['--config', withCa]);
    expect(trusted.r.stderr).not.toContain("error");
    expect(trusted.r.code).toBe(0);
    expect(await md5(join(trusted.out, 'bin/busybox'))).toBe(await md5('/bin/busybox'));

    const insecure = await buildFrom(`${host}/base:1`, ['--config', await configFile('insecure', `[registry."${host}"]\ninsecure = true\n`)]);
    expect(insecure.r.code).toBe(0);
    expect(await md5(join(insecure.out, 'bin/busybox'))).toBe(await md5('/bin/busybox'));
  });

  test('[registry."docker.io"] mirrors: FROM busybox in a fresh root is pulled from the mirror', async () => {
    const mirror = `127.0.0.1:${plain.port}`;
    const push = await runKiln(sb, ['push', 'busybox', `${mirror}/library/busybox:latest`, '--root', sb.root], { env: NO_GC });
    expect(push.code).toBe(0);
    const cfg = await configFile('mirror', `[registry."docker.io"]\n  mirrors = ["${mirror}"]\n`);
    // Global option before the command, as `kiln --config FILE build`.
    const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
    await writeTree(ctx, { Dockerfile: 'FROM busybox\n' });
    const r = await runKiln(sb, ['--config', cfg, 'build', ctx, '--root', join(ctx, 'root'), '-o', `type=local,dest=${join(ctx, 'out')}`], { env: NO_GC });
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    expect(await md5(join(ctx, 'out', 'bin/busybox'))).toBe(await md5('/bin/busybox'));
  });
});

describe('a push with registry.insecure=true', { timeout: 60_000 }, () => {
  test('reaches a plain-http registry under a non-localhost address (https tried first, then plain http)', async () => {
    const host = `[::ffff:127.0.0.1]:${plain.port}`;
    const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
    await writeTree(ctx, { Dockerfile: `FROM busybox\nCOPY a /a\n`, a: 'pushed\n' });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '-o', `type=image,name=${host}/pushed:1,push=true,registry.insecure=true`], { env: NO_GC });
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    const res = await fetch(`http://127.0.0.1:${plain.port}/v2/pushed/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.status).toBe(200);
  });
});

describe('kiln daemon and the config file', { timeout: 120_000 }, () => {
  test('the daemon serves clients of its own config; a client with another config runs in its own process', async () => {
    const mirror = `127.0.0.1:${plain.port}`;
    await runKiln(sb, ['push', 'busybox', `${mirror}/library/busybox:latest`, '--root', sb.root], { env: NO_GC });
    // A CA file named relative to the config: part of the config the daemon serves.
    const cfgDir = await mkdtemp(join(sb.dir, 'dcfg-'));
    await writeFile(join(cfgDir, 'ca.pem'), await readFile(pki.ca));
    const cfg = join(cfgDir, 'kiln.toml');
    await writeFile(cfg, `debug = true\n[registry."docker.io"]\nmirrors = ["${mirror}"]\n[registry."unused.example"]\nca = ["ca.pem"]\n`);
    const root = await mkdtemp(join(sb.dir, 'droot-'));
    const socket = join(root, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', root, '--addr', `unix://${socket}`, '--config', cfg], NO_GC);
    try {
      expect(d.log()).toContain(`WARNING: ${cfg}: ignoring keys kiln does not use: debug`);
      expect(d.log()).toContain(`; config ${cfg}; `);
      // Builds the daemon ran: one exit line each.
      const served = (): number => d.log().match(/build: client pid \d+ → exit/g)?.length ?? 0;
      const build = async (args: readonly string[], env: Record<string, string> = {}) => {
        const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
        await writeTree(ctx, { Dockerfile: 'FROM busybox\n' });
        return runKiln(sb, ['build', ctx, '--root', root, '-o', `type=local,dest=${join(ctx, 'out')}`, ...args], { env: { ...NO_GC, ...env, KILN_HOST: `unix://${socket}` } });
      };
      // Same file: served by the daemon (its log names the command).
      expect((await build(['--config', cfg])).code).toBe(0);
      for (let i = 0; i < 50 && served() !== 1; i++) await sleep(20);
      expect(served()).toBe(1);
      // Another file (here: the same settings, other bytes, as after an edit): declined, so the
      // client builds in its own process with it (the daemon serves no second build).
      const other = await build(['--config', await configFile('edited', `[registry."docker.io"]\nmirrors = ["${mirror}"] # edited\n`)]);
      expect(other.code).toBe(0);
      await sleep(100);
      expect(served()).toBe(1);
      // The daemon's own file again, through KILN_CONFIG this time: served.
      expect((await build([], { KILN_CONFIG: cfg })).code).toBe(0);
      for (let i = 0; i < 50 && served() !== 2; i++) await sleep(20);
      expect(served()).toBe(2);
      // The config file untouched but the CA it names replaced: another config, declined.
      await writeFile(join(cfgDir, 'ca.pem'), await readFile(pki.serverCert));
      expect((await build(['--config', cfg])).code).toBe(0);
      await sleep(100);
      expect(served()).toBe(2);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });
});

describe('GC from the config file', { timeout: 120_000 }, () => {
  /** The cache's total as `kiln du` counts it. */
  const cacheTotal = (): number => {
    const store = CacheStore.open({ path: join(sb.root, 'cache', 'solver.db') });
    try {
      return store.totalSize();
    } finally {
      store.close();
    }
  };

  test('[[worker.oci.gcpolicy]] keepBytes is the cap after a build; KILN_GC_KEEP_STORAGE overrides the file', async () => {
    const cfg = await configFile('gc', '[worker.oci]\n  platforms = ["linux/amd64"]\n  [[worker.oci.gcpolicy]]\n    all = true\n    keepBytes = "1MB"\n');
    const build = async (name: string, env: Record<string, string>) => {
      const ctx = join(sb.dir, `${name}-${token()}`);
      await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN head -c 3000000 /dev/urandom > /big.bin && echo ${name} > /t.txt\n` });
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--config', cfg, '-o', `type=local,dest=${ctx}-out`], { env });
      expect(r.code).toBe(0);
      return r;
    };
    // The environment's setting wins over the file (off: nothing collected).
    const kept = await build('env-off', { KILN_GC_KEEP_STORAGE: 'off' });
    expect(kept.stderr.match(/WARNING: .*ignoring keys kiln does not use: worker\.oci\.platforms\n/g)?.length).toBe(1);
    expect(cacheTotal()).toBeGreaterThan(3_000_000);
    await build('file', {});
    expect(cacheTotal()).toBeLessThanOrEqual(1024 * 1024);
  });
});
