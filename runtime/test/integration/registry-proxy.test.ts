import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, RegistryClient, S3Client, importOciLayout, openOciLayout, pushImage, type Descriptor, type RegistryHostOptions } from '@kiln/runtime';
import { makeTestPki } from '../helpers/pki.js';
import { startProxy, withProxyEnv, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
// The proxy's user and password, URL-encoded in the variables: '@' and ':' in a password.
const USER = 'alice';
const PASSWORD = 'p@ss:w0rd';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let dir: string;
let store: ContentStore;
let image: Descriptor;
let plain: TestRegistry;
let tls: TestRegistry;
let s3: TestS3;
let proxy: TestProxy;
/** `http://alice:p%40ss%3Aw0rd@127.0.0.1:PORT`: the proxy URL with its credentials. */
let proxyUrl: string;
let restore: (() => void) | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-reg-proxy-'));
  const pki = makeTestPki(dir);
  store = await ContentStore.open(join(dir, 'store'));
  image = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
  [plain, tls, s3] = await Promise.all([startRegistry(), startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey } }), startS3({ buckets: ['cache'] })]);
  // Names only the proxy resolves: kiln reaches them through it or not at all. (127.0.0.1 and
  // localhost would never go through a proxy: Go's rules, which kiln follows, exempt them.)
  proxy = await startProxy({
    hosts: { 'registry.proxy.test': plain.port, 'tls.proxy.test': tls.port, 's3.proxy.test': Number(new URL(s3.endpoint).port) },
    credentials: `${USER}:${PASSWORD}`,
  });
  proxyUrl = `http://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${proxy.port}`;
});
afterEach(() => {
  restore?.();
  restore = undefined;
});
afterAll(async () => {
  await Promise.all([plain?.stop(), tls?.stop(), s3?.stop(), proxy?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const client = (host: string, opts: RegistryHostOptions): RegistryClient => new RegistryClient({ retries: 0, hosts: { [host]: opts } });

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

/** Everything an error shows: its messages and hints down the cause chain. */
function shown(e: unknown): string {
  const out: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause) out.push(c.message, String((c as { hint?: unknown }).hint ?? ''));
  return out.join('\n');
}

describe('registry requests through HTTP_PROXY / HTTPS_PROXY', () => {
  test('push and pull of a plain-http registry go through HTTP_PROXY, with its credentials', async () => {
    const host = `registry.proxy.test:${plain.port}`;
    restore = withProxyEnv({ HTTP_PROXY: proxyUrl });
    await pushImage(client(host, { plainHttp: true }), store, image, [`${host}/app:1`]);
    const got = await client(host, { plainHttp: true }).pull(`${host}/app:1`, await ContentStore.open(join(dir, 'pulled-http')));
    expect(got.descriptor.digest).toBe(image.digest);
    const lines = proxy.log.map((l) => l.line);
    // forwarded as absolute-form requests (no CONNECT for http), uploads and the pull's manifest and blobs included
    expect(lines).toContain(`PUT http://${host}/v2/app/manifests/1`);
    expect(lines.some((l) => l.startsWith(`PATCH http://${host}/v2/app/blobs/uploads/`) || l.startsWith(`PUT http://${host}/v2/app/blobs/uploads/`))).toBe(true);
    expect(lines.some((l) => /^(GET|HEAD) http:\/\/registry\.proxy\.test:\d+\/v2\/app\/manifests\/1$/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith(`GET http://${host}/v2/app/blobs/sha256:`))).toBe(true);
    expect(lines.some((l) => l.startsWith('CONNECT'))).toBe(false);
    expect(proxy.log.every((l) => l.authorization === AUTH)).toBe(true);
  });

  test('an https registry is reached through a CONNECT tunnel of HTTPS_PROXY, its TLS settings applying inside', async () => {
    const host = `tls.proxy.test:${tls.port}`;
    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl, HTTP_PROXY: 'http://127.0.0.1:1' });
    const before = proxy.log.length;
    // The certificate names 127.0.0.1, not tls.proxy.test: refused as the registry's TLS problem (not the proxy's)...
    const e = await client(host, { plainHttp: false })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining('TLS certificate is not trusted') });
    // ...and served with the host's insecure = true, which the tunnelled connection honours.
    await pushImage(client(host, { plainHttp: false, insecure: true }), store, image, [`${host}/app:1`]);
    expect((await client(host, { plainHttp: false, insecure: true }).resolve(`${host}/app:1`)).descriptor.digest).toBe(image.digest);
    const lines = proxy.log.slice(before).map((l) => l.line);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.every((l) => l === `CONNECT ${host}`)).toBe(true);
  });

  test('NO_PROXY exempts a host: the request goes direct (and this name resolves only at the proxy)', async () => {
    const host = `registry.proxy.test:${plain.port}`;
    restore = withProxyEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: 'example.com,.proxy.test' });
    const before = proxy.log.length;
    const e = await client(host, { plainHttp: true })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'REGISTRY_UNREACHABLE', hint: expect.stringContaining('does not resolve') });
    expect(proxy.log.length).toBe(before);
  });

  test('a refused proxy, wrong credentials, a refused tunnel: errors name the proxy and its variable, never the password', async () => {
    const host = `registry.proxy.test:${plain.port}`;
    const port = await closedPort();
    restore = withProxyEnv({ http_proxy: `http://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}` });
    const refused = await client(host, { plainHttp: true })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(refused).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: `HEAD http://${host}/v2/app/manifests/1: proxy http://127.0.0.1:${port} (from http_proxy) refused the connection`,
      hint: `start the proxy or correct http_proxy; to reach registry.proxy.test without a proxy, add it to NO_PROXY`,
      cause: { code: 'KLN0880' },
    });
    restore();

    restore = withProxyEnv({ HTTP_PROXY: `http://${USER}:wrong-${encodeURIComponent(PASSWORD)}@127.0.0.1:${proxy.port}` });
    const denied = await client(host, { plainHttp: true })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(denied).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining(`proxy http://127.0.0.1:${proxy.port} (from HTTP_PROXY) refused the credentials in HTTP_PROXY`) });
    restore();

    restore = withProxyEnv({ HTTPS_PROXY: proxyUrl });
    const tunnel = await client('elsewhere.test', {})
      .resolve('elsewhere.test/app:1')
      .catch((x: unknown) => x);
    expect(tunnel).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining(`proxy http://127.0.0.1:${proxy.port} (from HTTPS_PROXY) would not open a connection to elsewhere.test:443 (403)`) });
    for (const e of [refused, denied, tunnel]) {
      expect(shown(e)).not.toContain(PASSWORD);
      expect(shown(e)).not.toContain(encodeURIComponent(PASSWORD));
    }
  });
});

test('S3 requests go through the proxy too', async () => {
  restore = withProxyEnv({ HTTP_PROXY: proxyUrl });
  const before = proxy.log.length;
  const c = new S3Client({
    bucket: 'cache',
    region: s3.region,
    endpointUrl: `http://s3.proxy.test:${new URL(s3.endpoint).port}`,
    usePathStyle: true,
    credentials: () => Promise.resolve({ accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }),
  });
  await c.put('blobs/a', Buffer.from('hello through a proxy'));
  expect((await c.getSmall('blobs/a', 1024))?.toString()).toBe('hello through a proxy');
  expect(proxy.log.slice(before).map((l) => l.line)).toEqual([expect.stringMatching(/^PUT http:\/\/s3\.proxy\.test:\d+\/cache\/blobs\/a$/), expect.stringMatching(/^GET http:\/\/s3\.proxy\.test:\d+\/cache\/blobs\/a$/)]);
  expect(s3.requests.map((r) => `${r.method} ${r.key}`)).toEqual(expect.arrayContaining(['PUT blobs/a', 'GET blobs/a']));
});
