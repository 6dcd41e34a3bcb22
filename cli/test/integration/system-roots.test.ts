/**
 * kiln trusts the operating system's CAs as Go's crypto/x509 reads them (buildkitd and the
 * registry clients do): a corporate CA named by SSL_CERT_FILE (or in a directory of
 * SSL_CERT_DIR) and nowhere else (no kiln config `ca`, no NODE_EXTRA_CA_CERTS) is trusted by
 * every TLS connection kiln makes: a registry (push, FROM, `kiln llb`'s lookup), `ADD https://`,
 * an https:// proxy with a registry behind it, and an S3 cache endpoint. The machine's /etc/ssl
 * is not touched: the variables name files of the test.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startProxy, type TestProxy } from '../../../runtime/test/helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { startS3, type TestS3 } from '../../../runtime/test/helpers/s3.js';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const NO_GC = { KILN_GC_KEEP_STORAGE: 'off' };
let pki: { ca: string; cert: string; key: string };
let registry: TestRegistry;
let files: HttpsServer;
let proxy: TestProxy;
let s3: TestS3;
/** The registry under a name that is not localhost (https by default, never proxied: loopback). */
let host: string;
/** `SSL_CERT_FILE` naming the CA: the only place it is. */
let corp: Record<string, string>;
/** A kiln config trusting the CA for the registry `host` alone (for the tests of other servers). */
let baseCa: string;

/** A "corporate" CA and one server certificate it signs, for every server here (127.0.0.1, and the names the proxy resolves). */
function makePki(dir: string): typeof pki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=kiln corporate test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,IP:::ffff:127.0.0.1,DNS:*.proxy.test\nextendedKeyUsage=serverAuth\n');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kiln corporate server');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

beforeAll(async () => {
  const dir = join(sb.dir, 'pki');
  mkdirSync(dir);
  pki = makePki(dir);
  corp = { ...NO_GC, SSL_CERT_FILE: pki.ca };
  const tls = { cert: readFileSync(pki.cert), key: readFileSync(pki.key) };
  files = createHttpsServer(tls, (req, res) => (req.url === '/tool.txt' ? res.end('fetched over corporate TLS\n') : res.writeHead(404).end()));
  [registry, s3] = await Promise.all([
    startRegistry({ tls: { certificate: pki.cert, key: pki.key } }),
    startS3({ buckets: ['corp-cache'], tls: { cert: pki.cert, key: pki.key } }),
    new Promise<void>((r) => files.listen(0, '127.0.0.1', r)),
  ]);
  host = `[::ffff:127.0.0.1]:${registry.port}`;
  proxy = await startProxy({ hosts: { 'reg.proxy.test': registry.port }, tls: { cert: pki.cert, key: pki.key } });
  // The base image goes in trusting the CA through the kiln config (that host only): each test
  // then trusts it through the system's CAs alone.
  baseCa = join(sb.dir, 'base-ca.toml');
  writeFileSync(baseCa, `[registry."${host}"]\nca = ["${pki.ca}"]\n`);
  const push = await runKiln(sb, ['push', 'busybox', `${host}/base:1`, '--root', sb.root, '--config', baseCa], { env: NO_GC });
  if (push.code !== 0) throw new Error(`kiln push failed:\n${push.stderr}`);
}, 120_000);

afterAll(async () => {
  files?.closeAllConnections();
  await Promise.all([registry?.stop(), proxy?.stop(), s3?.stop(), new Promise((r) => (files ? files.close(r) : r(undefined)))]);
});

const md5 = async (p: string): Promise<string> => createHash('md5').update(await readFile(p)).digest('hex');

/** `kiln build` of `dockerfile` into a fresh root, exporting the rootfs. */
async function build(dockerfile: string, env: Record<string, string>, args: readonly string[] = []) {
  const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(ctx, { Dockerfile: dockerfile });
  const out = join(ctx, 'out');
  const r = await runKiln(sb, ['build', ctx, '--root', join(ctx, 'root'), '--progress', 'plain', '-o', `type=local,dest=${out}`, ...args], { env });
  return { r, out, ctx };
}

describe("the system's CAs (SSL_CERT_FILE, SSL_CERT_DIR), as Go reads them", { timeout: 180_000 }, () => {
  test('a registry: refused without them; push, and FROM pulls, with SSL_CERT_FILE and with SSL_CERT_DIR', async () => {
    const push = await runKiln(sb, ['push', 'busybox', `${host}/pushed:1`, '--root', sb.root], { env: corp });
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);

    const refused = await build(`FROM ${host}/base:1\n`, NO_GC);
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toContain('TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(refused.r.stderr).toContain("or for every host in the system's CA store (update-ca-certificates, or SSL_CERT_FILE=FILE in kiln's environment)");

    const viaFile = await build(`FROM ${host}/base:1\n`, corp);
    expect(viaFile.r.stderr).not.toContain('error');
    expect(viaFile.r.code).toBe(0);
    expect(await md5(join(viaFile.out, 'bin/busybox'))).toBe(await md5('/bin/busybox'));

    // A directory of CA files (c_rehash's layout: a hash link to a file beside it), not the bundle.
    const certs = join(sb.dir, `certs-${token()}`);
    mkdirSync(certs);
    writeFileSync(join(certs, 'corp.pem'), readFileSync(pki.ca));
    execFileSync('ln', ['-s', 'corp.pem', join(certs, '0a1b2c3d.0')]);
    const viaDir = await build(`FROM ${host}/base:1\n`, { ...NO_GC, SSL_CERT_DIR: `${join(sb.dir, 'missing')}:${certs}` });
    expect(viaDir.r.code).toBe(0);
    expect(await md5(join(viaDir.out, 'bin/busybox'))).toBe(await md5('/bin/busybox'));
  });

  test("kiln llb's image lookup (node:https, not fetch): the same trust", async () => {
    const ctx = await mkdtemp(join(sb.dir, 'llb-'));
    await writeTree(ctx, { Dockerfile: `FROM ${host}/base:1\n` });
    const llb = await runKiln(sb, ['llb', ctx], { env: corp });
    expect(llb.stderr).toBe('');
    expect(llb.code).toBe(0);
    expect(llb.stdout).toMatch(new RegExp(`docker-image://${host.replace(/[[\]:.]/g, '\\$&')}/base(:1)?@sha256:[0-9a-f]{64}`));
    const llbRefused = await runKiln(sb, ['llb', ctx], { env: NO_GC });
    expect(llbRefused.code).toBe(1);
    expect(llbRefused.stderr).toContain('TLS certificate is not trusted');
  });

  test('ADD https:// from a server whose CA is in SSL_CERT_FILE', async () => {
    const url = `https://127.0.0.1:${(files.address() as AddressInfo).port}/tool.txt`;
    // (the base image trusted through the kiln config: only the download depends on SSL_CERT_FILE)
    const ok = await build(`FROM ${host}/base:1\nADD ${url} /tool.txt\n`, corp, ['--config', baseCa]);
    expect(ok.r.stderr).not.toContain('ERROR');
    expect(ok.r.code).toBe(0);
    expect(await readFile(join(ok.out, 'tool.txt'), 'utf8')).toBe('fetched over corporate TLS\n');
    // An SSL_CERT_FILE that cannot be read adds nothing (and no default bundle is read instead).
    const refused = await build(`FROM ${host}/base:1\nADD ${url} /tool.txt\n`, { ...NO_GC, SSL_CERT_FILE: join(sb.dir, 'missing.pem') }, ['--config', baseCa]);
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toContain(`failed to fetch ${url}: fetch failed (unable to verify the first certificate)`);
    expect(refused.r.stderr).toContain("hint: the server's certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate): add its certificate authority to the system's CA store");
  });

  test('through an https:// proxy: the proxy and the registry behind it, both trusted through SSL_CERT_FILE', async () => {
    const env = { ...corp, HTTPS_PROXY: proxy.url };
    const behind = `reg.proxy.test:${registry.port}`;
    const mark = proxy.log.length;
    const ok = await build(`FROM ${behind}/base:1\n`, env);
    expect(ok.r.stderr).not.toContain('error');
    expect(ok.r.code).toBe(0);
    expect(await md5(join(ok.out, 'bin/busybox'))).toBe(await md5('/bin/busybox'));
    expect(new Set(proxy.log.slice(mark).map((l) => l.line))).toEqual(new Set([`CONNECT ${behind}`]));
    // Without it: the handshake with the proxy fails first (KLN0880), naming SSL_CERT_FILE as a way.
    const refused = await build(`FROM ${behind}/base:1\n`, { ...NO_GC, HTTPS_PROXY: proxy.url });
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toContain('the TLS handshake with the proxy failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(refused.r.stderr).toContain('SSL_CERT_FILE=FILE');
  });

  test('an S3 cache at an https endpoint: exported and imported with SSL_CERT_FILE (AWS_CA_BUNDLE unset)', async () => {
    // (AWS_CA_BUNDLE empty: unset, as the AWS SDKs read it; a bundle would replace every other CA)
    const aws = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region, AWS_CA_BUNDLE: '' };
    const t = token();
    const cache = `type=s3,bucket=corp-cache,name=app-${t},endpoint_url=${s3.endpoint},use_path_style=true`;
    const dockerfile = `FROM ${host}/base:1\nRUN echo ${t} > /made\n`;
    // (the base image trusted through the kiln config: only S3 depends on SSL_CERT_FILE)
    const exported = await build(dockerfile, { ...corp, ...aws }, ['--config', baseCa, '--cache-to', cache]);
    expect(exported.r.stderr).not.toContain('ERROR');
    expect(exported.r.code).toBe(0);
    expect(s3.requests.some((r) => r.method === 'PUT' && r.key === `manifests/app-${t}`)).toBe(true);
    const imported = await build(dockerfile, { ...corp, ...aws }, ['--config', baseCa, '--cache-from', cache]);
    expect(imported.r.code).toBe(0);
    expect(imported.r.stderr).toContain(`importing cache manifest from s3://corp-cache/manifests/app-${t}`);
    expect(await readFile(join(imported.out, 'made'), 'utf8')).toBe(`${t}\n`);
  });
});
