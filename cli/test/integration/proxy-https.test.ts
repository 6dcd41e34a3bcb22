import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startProxy, type TestProxy } from '../../../runtime/test/helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// kiln behind an https:// proxy, end to end: TLS to the proxy (its CA trusted the way Node
// trusts a CA for a whole process, NODE_EXTRA_CA_CERTS), CONNECT with the proxy's credentials,
// then the registry: a plain-http one (tunnelled: an https:// proxy tunnels http URLs too) and a
// TLS one (its own CA in the kiln config, TLS inside the proxy's TLS). The plain registry sits
// behind a front that records what it receives: the proxy's credentials never reach it.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
const PASSWORD = `pp-${token()}`;
const AUTH = `Basic ${Buffer.from(`carol:${PASSWORD}`).toString('base64')}`;
const NO_GC = { KILN_GC_KEEP_STORAGE: 'off' };
let pki: { proxyCa: string; proxyCert: string; proxyKey: string; registryCa: string; registryCert: string; registryKey: string };
let plain: TestRegistry;
let tls: TestRegistry;
let front: { port: number; received: Buffer[]; server: Server; sockets: Set<Socket> };
let proxy: TestProxy;
let frontHost: string;
let tlsHost: string;
let config: string;

/** Two CAs made with openssl: one for the proxy's certificate (127.0.0.1), one for the registry's (*.proxy.test). */
function makePki(dir: string): typeof pki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const issue = (ca: string, name: string, san: string): void => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  for (const ca of ['proxy-ca', 'registry-ca']) openssl('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=kiln ${ca}`);
  issue('proxy-ca', 'proxy', 'IP:127.0.0.1');
  issue('registry-ca', 'registry', 'DNS:*.proxy.test');
  const p = (f: string): string => join(dir, f);
  return { proxyCa: p('proxy-ca.pem'), proxyCert: p('proxy.pem'), proxyKey: p('proxy.key'), registryCa: p('registry-ca.pem'), registryCert: p('registry.pem'), registryKey: p('registry.key') };
}

beforeAll(async () => {
  const dir = join(sb.dir, 'pki');
  await mkdir(dir);
  pki = makePki(dir);
  [plain, tls] = await Promise.all([startRegistry(), startRegistry({ tls: { certificate: pki.registryCert, key: pki.registryKey } })]);
  // A TCP front to the plain registry that records the bytes it is sent.
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    const up = connect(plain.port, '127.0.0.1');
    for (const s of [c, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => (c.destroy(), up.destroy()));
    }
    c.on('data', (d: Buffer) => received.push(d));
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  front = { port: (server.address() as { port: number }).port, received, server, sockets };
  proxy = await startProxy({ hosts: { 'front.proxy.test': front.port, 'tls.proxy.test': tls.port }, credentials: `carol:${PASSWORD}`, tls: { cert: pki.proxyCert, key: pki.proxyKey } });
  frontHost = `front.proxy.test:${front.port}`;
  tlsHost = `tls.proxy.test:${tls.port}`;
  config = join(sb.dir, 'kiln.toml');
  writeFileSync(config, `[registry."${frontHost}"]\nhttp = true\n\n[registry."${tlsHost}"]\nca = ["${pki.registryCa}"]\n`);
}, 60_000);

afterAll(async () => {
  for (const s of front?.sockets ?? []) s.destroy();
  await Promise.all([plain?.stop(), tls?.stop(), proxy?.stop(), new Promise((r) => (front?.server ? front.server.close(r) : r(undefined)))]);
});

/** Files under `dir` that hold `secret`. */
function filesHolding(dir: string, secret: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...filesHolding(p, secret));
    else if (st.isFile() && readFileSync(p).includes(secret)) out.push(p);
  }
  return out;
}

test('push, a build FROM the plain registry and its push to the TLS one, all through an https:// proxy with credentials; they reach the proxy only', { timeout: 180_000 }, async () => {
  const proxyUrl = `https://carol:${PASSWORD}@127.0.0.1:${proxy.port}`;
  const env = { ...NO_GC, HTTPS_PROXY: proxyUrl, HTTP_PROXY: proxyUrl, NODE_EXTRA_CA_CERTS: pki.proxyCa };
  const push = await runKiln(sb, ['push', 'busybox', `${frontHost}/base:1`, '--root', sb.root, '--config', config], { env });
  expect(push.stderr).toBe('');
  expect(push.code).toBe(0);

  const ctx = join(sb.dir, 'ctx');
  await writeTree(ctx, { Dockerfile: `FROM ${frontHost}/base:1\nRUN echo via-https-proxy > /proof\n` });
  const build = await runKiln(sb, ['build', ctx, '--root', join(sb.dir, 'root2'), '--config', config, '--progress=plain', '-o', `type=image,name=${tlsHost}/app:1,push=true`], { env });
  expect(build.stderr).not.toContain(PASSWORD);
  expect(build.code).toBe(0);

  // Every request went through a CONNECT tunnel of the proxy, with its credentials.
  expect(new Set(proxy.log.map((l) => l.line))).toEqual(new Set([`CONNECT ${frontHost}`, `CONNECT ${tlsHost}`]));
  expect(proxy.log.every((l) => l.authorization === AUTH)).toBe(true);
  // What the plain registry got (in plain: the tunnel is the proxy's): requests, none of the proxy's credentials.
  const seen = Buffer.concat(front.received).toString('latin1');
  expect(seen).toMatch(/^(GET|HEAD) \/v2\/base\/manifests\/1 HTTP\/1\.1\r$/m);
  expect(seen.toLowerCase()).not.toContain('proxy-authorization');
  expect(seen).not.toContain(AUTH.slice('Basic '.length));
  expect(seen).not.toContain(PASSWORD);
  // The image the build pushed to the TLS registry (read directly, not through the proxy).
  const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://127.0.0.1:${tls.port}/app:1`], { encoding: 'utf8' })) as { history: { created_by?: string }[] };
  expect(cfg.history.some((h) => h.created_by?.includes('echo via-https-proxy') === true)).toBe(true);
  expect(filesHolding(sb.root, PASSWORD)).toEqual([]);
  expect(filesHolding(join(sb.dir, 'root2'), PASSWORD)).toEqual([]);
});

test("without the proxy's CA: KLN0880 for the handshake with the proxy, with the way to trust it", async () => {
  const proxyUrl = `https://carol:${PASSWORD}@127.0.0.1:${proxy.port}`;
  const r = await runKiln(sb, ['push', 'busybox', `${tlsHost}/refused:1`, '--root', sb.root, '--config', config], { env: { ...NO_GC, HTTPS_PROXY: proxyUrl } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`proxy https://127.0.0.1:${proxy.port} (from HTTPS_PROXY): the TLS handshake with the proxy failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE: `);
  expect(r.stderr).toContain("hint: trust the proxy's certificate authority (NODE_EXTRA_CA_CERTS=FILE");
  expect(r.stderr).not.toContain(PASSWORD);
});
