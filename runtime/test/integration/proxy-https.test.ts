import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { ContentStore, RegistryClient, importOciLayout, openOciLayout, pushImage, type Descriptor, type RegistryHostOptions } from '@kiln/runtime';
import { startProxy, withProxyEnv, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

// An https:// proxy: TLS to the proxy itself, then CONNECT inside it, then the registry's own TLS
// inside the tunnel (TLS in TLS). The proxy's certificate comes from a CA made here with openssl;
// as in Go's transport (one TLSClientConfig for the proxy and the server), a registry host's `ca`
// trusts the proxy on that host's requests. And the S3 cache's AWS_CA_BUNDLE replaces the system
// CAs through a proxy as it does without one.

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const RUNTIME_DIST = new URL('../../dist/index.js', import.meta.url).pathname;
const USER = 'alice';
const PASSWORD = 'p@ss:w0rd-https';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let dir: string;
let pki: Pki;
let store: ContentStore;
let image: Descriptor;
let tls: TestRegistry;
let s3: TestS3;
/** An https:// proxy requiring USER:PASSWORD. */
let proxy: TestProxy;
/** An http:// proxy (for the S3 endpoint's TLS inside its tunnel). */
let httpProxy: TestProxy;
/** TLS fronts that record what they decrypt: the TLS registry's, the S3 server's. */
let registryFront: RecordingFront;
let s3Front: RecordingFront;
let restore: (() => void) | undefined;

interface Pki {
  /** PEM files: the CA that signed `cert`, and another CA that signed nothing here. */
  readonly ca: string;
  readonly otherCa: string;
  /** A server certificate for 127.0.0.1 and *.proxy.test, and its key. */
  readonly cert: string;
  readonly key: string;
}

/** A throw-away PKI made with openssl (P-256, valid two days). */
function makePki(d: string): Pki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: d, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=kiln proxy test CA');
  openssl('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=kiln unrelated CA');
  writeFileSync(join(d, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:*.proxy.test\nextendedKeyUsage=serverAuth\n');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=proxy.test');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  return { ca: join(d, 'ca.pem'), otherCa: join(d, 'other.pem'), cert: join(d, 'server.pem'), key: join(d, 'server.key') };
}

interface RecordingFront {
  readonly port: number;
  /** Everything clients sent, decrypted. */
  received(): string;
  stop(): Promise<void>;
}

/**
 * A TLS server on 127.0.0.1 (the PKI's certificate) that passes each connection on to `port`
 * (over TLS with `upstreamTls`: a registry builds its upload URLs with its own scheme) and
 * records what it decrypts.
 */
async function startFront(port: number, upstreamTls: boolean): Promise<RecordingFront> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createTlsServer({ cert: readFileSync(pki.cert), key: readFileSync(pki.key) }, (c) => {
    const up = upstreamTls ? tlsConnect({ port, host: '127.0.0.1', ca: readFileSync(pki.ca) }) : connect(port, '127.0.0.1');
    for (const s of [c, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => (c.destroy(), up.destroy()));
    }
    c.on('data', (d: Buffer) => chunks.push(d));
    c.pipe(up).pipe(c);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    received: () => Buffer.concat(chunks).toString('latin1'),
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-proxy-https-'));
  pki = makePki(dir);
  store = await ContentStore.open(join(dir, 'store'));
  image = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
  [tls, s3] = await Promise.all([startRegistry({ tls: { certificate: pki.cert, key: pki.key } }), startS3({ buckets: ['cache'] })]);
  [registryFront, s3Front] = await Promise.all([startFront(tls.port, true), startFront(Number(new URL(s3.endpoint).port), false)]);
  // Names only the proxies resolve (127.0.0.1 and localhost would never go through a proxy).
  const hosts = { 'tls.proxy.test': tls.port, 'front.proxy.test': registryFront.port, 's3.proxy.test': s3Front.port };
  [proxy, httpProxy] = await Promise.all([startProxy({ hosts, credentials: `${USER}:${PASSWORD}`, tls: { cert: pki.cert, key: pki.key } }), startProxy({ hosts })]);
});
afterEach(() => {
  restore?.();
  restore = undefined;
  vi.restoreAllMocks();
});
afterAll(async () => {
  await Promise.all([tls?.stop(), s3?.stop(), proxy?.stop(), httpProxy?.stop(), registryFront?.stop(), s3Front?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const client = (host: string, opts: RegistryHostOptions): RegistryClient => new RegistryClient({ retries: 0, hosts: { [host]: opts } });
const proxyUrl = (password = PASSWORD): string => `https://${USER}:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}`;

/** Everything an error shows: its messages and hints down the cause chain. */
function shown(e: unknown): string {
  const out: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause) out.push(c.message, String((c as { hint?: unknown }).hint ?? ''));
  return out.join('\n');
}

describe('an https:// proxy', () => {
  test('push and pull of a TLS registry: CONNECT over TLS with Proxy-Authorization, the host ca trusting proxy and registry', async () => {
    // (an IP address given to TLS as a server name makes Node print DEP0123: kiln gives none)
    const warn = vi.spyOn(process, 'emitWarning');
    const host = `tls.proxy.test:${tls.port}`;
    const ca = readFileSync(pki.ca, 'utf8');
    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl() });
    const before = proxy.log.length;
    await pushImage(client(host, { ca: [ca] }), store, image, [`${host}/app:1`]);
    const got = await client(host, { ca: [ca] }).pull(`${host}/app:1`, await ContentStore.open(join(dir, 'pulled-tls')));
    expect(got.descriptor.digest).toBe(image.digest);
    const log = proxy.log.slice(before);
    expect(log.length).toBeGreaterThan(0);
    expect(log.every((l) => l.line === `CONNECT ${host}` && l.authorization === AUTH)).toBe(true);
    expect(warn).not.toHaveBeenCalled();
  });

  test('Proxy-Authorization goes to the proxy only: the registry gets none of it', async () => {
    const host = `front.proxy.test:${registryFront.port}`;
    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl() });
    const ca = readFileSync(pki.ca, 'utf8');
    await pushImage(client(host, { ca: [ca] }), store, image, [`${host}/front:1`]);
    expect((await client(host, { ca: [ca] }).resolve(`${host}/front:1`)).descriptor.digest).toBe(image.digest);
    const seen = registryFront.received();
    // what the registry got, decrypted: the requests, and none of the proxy's credentials
    expect(seen).toContain('PUT /v2/front/manifests/1 HTTP/1.1');
    expect(seen.toLowerCase()).not.toContain('proxy-authorization');
    expect(seen).not.toContain(AUTH.slice('Basic '.length));
    expect(seen).not.toContain(PASSWORD);
  });

  test('a proxy whose certificate is not trusted: KLN0880 for the proxy handshake, not the registry\'s TLS', async () => {
    const host = `tls.proxy.test:${tls.port}`;
    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl() });
    // no ca for the host: neither the proxy's certificate nor the registry's is trusted; the proxy's comes first
    const e = await client(host, {})
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: expect.stringMatching(new RegExp(`proxy https://127\\.0\\.0\\.1:${proxy.port} \\(from HTTPS_PROXY\\): the TLS handshake with the proxy failed \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE: `)),
      hint: expect.stringContaining('NODE_EXTRA_CA_CERTS'),
      cause: { code: 'KLN0880' },
    });
    expect(shown(e)).not.toContain("registry's TLS certificate");
    expect(shown(e)).not.toContain(PASSWORD);
  });

  test('wrong or missing credentials: a 407 named as the proxy\'s, the password shown nowhere', async () => {
    const host = `tls.proxy.test:${tls.port}`;
    const ca = readFileSync(pki.ca, 'utf8');
    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl(`wrong-${PASSWORD}`) });
    const denied = await client(host, { ca: [ca] })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(denied).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining(`proxy https://127.0.0.1:${proxy.port} (from HTTPS_PROXY) refused the credentials in HTTPS_PROXY (407`) });
    restore();
    restore = withProxyEnv({ https_proxy: `https://127.0.0.1:${proxy.port}` });
    const missing = await client(host, { ca: [ca] })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(missing).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining(`proxy https://127.0.0.1:${proxy.port} (from https_proxy) requires credentials (407`) });
    for (const e of [denied, missing]) {
      expect(shown(e)).not.toContain(PASSWORD);
      expect(shown(e)).not.toContain(encodeURIComponent(PASSWORD));
    }
  });

  test('an https:// URL naming a proxy that speaks no TLS: KLN0880 for the proxy handshake', async () => {
    const host = `tls.proxy.test:${tls.port}`;
    restore = withProxyEnv({ HTTPS_PROXY: `https://127.0.0.1:${httpProxy.port}` });
    const e = await client(host, { ca: [readFileSync(pki.ca, 'utf8')] })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: expect.stringContaining(`proxy https://127.0.0.1:${httpProxy.port} (from HTTPS_PROXY): the TLS handshake with the proxy failed`),
      hint: expect.stringContaining('use an http:// URL in HTTPS_PROXY if the proxy speaks no TLS'),
    });
  });
});

/**
 * Runs S3Client (the built runtime) in a child process, where NODE_EXTRA_CA_CERTS can put a CA
 * into Node's default store (it is read at startup): a PUT and a GET at `endpoint`. Resolves
 * with the body read back, or the error's code and message.
 */
function s3InChild(endpoint: string, env: Record<string, string>): Promise<string> {
  const script = `
    const { S3Client } = await import(${JSON.stringify(RUNTIME_DIST)});
    const c = new S3Client({ bucket: 'cache', region: ${JSON.stringify(s3.region)}, endpointUrl: ${JSON.stringify(endpoint)}, usePathStyle: true,
      caBundle: process.env.AWS_CA_BUNDLE,
      credentials: () => Promise.resolve({ accessKeyId: ${JSON.stringify(s3.accessKeyId)}, secretAccessKey: ${JSON.stringify(s3.secretAccessKey)} }) });
    try {
      await c.put('blobs/ca', Buffer.from('trusted'));
      process.stdout.write('ok ' + (await c.getSmall('blobs/ca', 100)).toString());
    } catch (e) {
      process.stdout.write('error ' + e.code + ': ' + e.message);
    }`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('S3 through a proxy: AWS_CA_BUNDLE', () => {
  test('replaces the system CAs as without a proxy: a CA in the default store (NODE_EXTRA_CA_CERTS) but not in the bundle is not trusted', async () => {
    const proxied = `https://s3.proxy.test:${s3Front.port}`;
    const direct = `https://127.0.0.1:${s3Front.port}`;
    const env = { HTTPS_PROXY: httpProxy.url, NODE_EXTRA_CA_CERTS: pki.ca };
    // The CA that signed the endpoint's certificate is in Node's default store: trusted without a bundle, both ways...
    expect(await s3InChild(direct, env)).toBe('ok trusted');
    const before = httpProxy.log.length;
    expect(await s3InChild(proxied, env)).toBe('ok trusted');
    const tunnels = httpProxy.log.slice(before).map((l) => l.line);
    expect(tunnels.length).toBeGreaterThan(0);
    expect(tunnels.every((l) => l === `CONNECT s3.proxy.test:${s3Front.port}`)).toBe(true);
    // ...and not with a bundle of another CA, which replaces the store: directly and through the proxy alike.
    const other = { ...env, AWS_CA_BUNDLE: pki.otherCa };
    expect(await s3InChild(direct, other)).toMatch(/^error S3_UNREACHABLE: PUT s3:\/\/cache\/blobs\/ca: the TLS certificate of (127\.0\.0\.1|s3\.proxy\.test):\d+ is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/);
    expect(await s3InChild(proxied, other)).toMatch(/^error S3_UNREACHABLE: PUT s3:\/\/cache\/blobs\/ca: the TLS certificate of (127\.0\.0\.1|s3\.proxy\.test):\d+ is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/);
    // The bundle of the endpoint's CA: trusted both ways.
    const own = { ...env, AWS_CA_BUNDLE: pki.ca };
    expect(await s3InChild(direct, own)).toBe('ok trusted');
    expect(await s3InChild(proxied, own)).toBe('ok trusted');
  });
});
