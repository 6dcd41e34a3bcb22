import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { ContentStore, RegistryClient, S3Client, importOciLayout, openOciLayout, pushImage, type Descriptor, type RegistryHostOptions } from '@kiln/runtime';
import { startProxy, withProxyEnv, type TestProxy } from '../helpers/proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

// socks5:// and socks5h:// proxies (Go's transport dials both, sending the host name to the
// proxy): kiln's own SOCKS5 client (RFC 1928 CONNECT, RFC 1929 username/password) against a
// SOCKS5 server written here, which alone resolves the test names.

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const USER = 'bob';
const PASSWORD = 's0cks:p@ss';

interface SocksRequest {
  /** The address as sent: a name (ATYP 3) or an IP address (ATYP 1 or 4). */
  readonly host: string;
  readonly type: 'name' | 'ipv4' | 'ipv6';
  readonly port: number;
  /** The RFC 1929 user, when the client authenticated. */
  readonly user: string | undefined;
}

interface TestSocks {
  readonly port: number;
  /** Every CONNECT request that got past authentication. */
  readonly log: SocksRequest[];
  /** Connections accepted (a refused scheme must open none). */
  connections: number;
  stop(): Promise<void>;
}

/**
 * A SOCKS5 server on 127.0.0.1: CONNECT only; with `credentials`, username/password required
 * (no other method accepted); names in `hosts` go to that local port, others get reply 4 (host
 * unreachable).
 */
async function startSocks(opts: { hosts: Readonly<Record<string, number>>; credentials?: { user: string; password: string } }): Promise<TestSocks> {
  const sockets = new Set<Socket>();
  const state: TestSocks = { port: 0, log: [], connections: 0, stop: () => Promise.resolve() };
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const serve = async (c: Socket): Promise<void> => {
    const read = (n: number): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const tryRead = (): void => {
          const b = c.read(n) as Buffer | null;
          if (b === null) return;
          c.off('readable', tryRead);
          c.off('close', closed);
          resolve(b);
        };
        const closed = (): void => reject(new Error('closed'));
        c.on('readable', tryRead);
        c.once('close', closed);
        tryRead();
      });
    const [version, count] = await read(2);
    if (version !== 5) return void c.destroy();
    const methods = [...(await read(count ?? 0))];
    let user: string | undefined;
    if (opts.credentials !== undefined) {
      if (!methods.includes(2)) return void c.end(Buffer.from([5, 0xff]));
      c.write(Buffer.from([5, 2]));
      const [, ulen] = await read(2);
      user = (await read(ulen ?? 0)).toString();
      const [plen] = await read(1);
      const password = plen === 0 ? '' : (await read(plen ?? 0)).toString();
      const ok = user === opts.credentials.user && password === opts.credentials.password;
      c.write(Buffer.from([1, ok ? 0 : 1]));
      if (!ok) return void c.end();
    } else c.write(Buffer.from([5, 0]));
    const [, command, , atyp] = await read(4);
    let host: string;
    let type: SocksRequest['type'];
    if (atyp === 1) [host, type] = [[...(await read(4))].join('.'), 'ipv4'];
    else if (atyp === 4) [host, type] = [(await read(16)).toString('hex').replace(/(.{4})(?!$)/g, '$1:'), 'ipv6'];
    else [host, type] = [(await read((await read(1))[0] ?? 0)).toString(), 'name'];
    const port = (await read(2)).readUInt16BE();
    state.log.push({ host, type, port, user });
    const target = opts.hosts[host];
    // reply 7 (command not supported) / 4 (host unreachable), bound address 0.0.0.0:0
    if (command !== 1 || target === undefined) return void c.end(Buffer.from([5, command !== 1 ? 7 : 4, 0, 1, 0, 0, 0, 0, 0, 0]));
    const up = connect(target, '127.0.0.1', () => {
      c.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
      up.pipe(c).pipe(up);
    });
    track(up);
    up.on('error', () => c.destroy());
  };
  const server: Server = createServer((c) => {
    state.connections++;
    track(c);
    serve(c).catch(() => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(state, {
    port: (server.address() as { port: number }).port,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
}

let dir: string;
let ca: string;
let store: ContentStore;
let image: Descriptor;
let plain: TestRegistry;
let tls: TestRegistry;
let s3: TestS3;
/** Without authentication, and with USER:PASSWORD required. */
let open: TestSocks;
let guarded: TestSocks;
/** An HTTP proxy, to be named by a socks5:// URL by mistake. */
let http: TestProxy;
let restore: (() => void) | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-proxy-socks-'));
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=kiln socks test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:tls.socks.test\nextendedKeyUsage=serverAuth\n');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=tls.socks.test');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');
  ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
  store = await ContentStore.open(join(dir, 'store'));
  image = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
  [plain, tls, s3] = await Promise.all([startRegistry(), startRegistry({ tls: { certificate: join(dir, 'server.pem'), key: join(dir, 'server.key') } }), startS3({ buckets: ['cache'] })]);
  const hosts = { 'registry.socks.test': plain.port, 'tls.socks.test': tls.port, 's3.socks.test': Number(new URL(s3.endpoint).port) };
  [open, guarded, http] = await Promise.all([startSocks({ hosts }), startSocks({ hosts, credentials: { user: USER, password: PASSWORD } }), startProxy({ hosts })]);
});
afterEach(() => {
  restore?.();
  restore = undefined;
  vi.restoreAllMocks();
});
afterAll(async () => {
  await Promise.all([plain?.stop(), tls?.stop(), s3?.stop(), open?.stop(), guarded?.stop(), http?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const client = (host: string, opts: RegistryHostOptions): RegistryClient => new RegistryClient({ retries: 0, hosts: { [host]: opts } });
const guardedUrl = (scheme: string, password = PASSWORD): string => `${scheme}://${USER}:${encodeURIComponent(password)}@127.0.0.1:${guarded.port}`;

/** Everything an error shows: its messages and hints down the cause chain. */
function shown(e: unknown): string {
  const out: string[] = [];
  for (let c: unknown = e; c instanceof Error; c = c.cause) out.push(c.message, String((c as { hint?: unknown }).hint ?? ''));
  return out.join('\n');
}

describe('socks5:// and socks5h:// proxies', () => {
  test('push and pull of a plain-http registry through socks5://: the name goes to the proxy, which resolves it; no warning printed', async () => {
    const warn = vi.spyOn(process, 'emitWarning');
    const host = `registry.socks.test:${plain.port}`;
    restore = withProxyEnv({ HTTP_PROXY: `socks5://127.0.0.1:${open.port}` });
    const before = open.log.length;
    await pushImage(client(host, { plainHttp: true }), store, image, [`${host}/app:1`]);
    const got = await client(host, { plainHttp: true }).pull(`${host}/app:1`, await ContentStore.open(join(dir, 'pulled-plain')));
    expect(got.descriptor.digest).toBe(image.digest);
    const log = open.log.slice(before);
    expect(log.length).toBeGreaterThan(0);
    expect(log.every((r) => r.type === 'name' && r.host === 'registry.socks.test' && r.port === plain.port && r.user === undefined)).toBe(true);
    // (undici's SOCKS5 agent prints an ExperimentalWarning: kiln does not use it)
    expect(warn).not.toHaveBeenCalled();
  });

  test('a TLS registry through socks5h:// with a user and password (RFC 1929): the host ca applies inside the tunnel', async () => {
    const host = `tls.socks.test:${tls.port}`;
    restore = withProxyEnv({ HTTPS_PROXY: guardedUrl('socks5h') });
    const before = guarded.log.length;
    await pushImage(client(host, { ca: [ca] }), store, image, [`${host}/app:1`]);
    const got = await client(host, { ca: [ca] }).pull(`${host}/app:1`, await ContentStore.open(join(dir, 'pulled-tls')));
    expect(got.descriptor.digest).toBe(image.digest);
    const log = guarded.log.slice(before);
    expect(log.length).toBeGreaterThan(0);
    expect(log.every((r) => r.type === 'name' && r.host === 'tls.socks.test' && r.port === tls.port && r.user === USER)).toBe(true);
    // without the ca, the registry's certificate (not the proxy) is what fails
    const e = await client(host, {})
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining('TLS certificate is not trusted') });
  });

  test('S3 requests go through socks5:// too', async () => {
    restore = withProxyEnv({ HTTP_PROXY: `socks5://127.0.0.1:${open.port}` });
    const before = open.log.length;
    const c = new S3Client({
      bucket: 'cache',
      region: s3.region,
      endpointUrl: `http://s3.socks.test:${new URL(s3.endpoint).port}`,
      usePathStyle: true,
      credentials: () => Promise.resolve({ accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }),
    });
    await c.put('blobs/socks', Buffer.from('hello through socks'));
    expect((await c.getSmall('blobs/socks', 1024))?.toString()).toBe('hello through socks');
    expect(open.log.slice(before).every((r) => r.host === 's3.socks.test')).toBe(true);
    expect(open.log.length).toBeGreaterThan(before);
  });

  test('failures at the proxy are KLN0880, naming it and its variable, never the password', async () => {
    const host = `registry.socks.test:${plain.port}`;
    const resolve = (): Promise<unknown> =>
      client(host, { plainHttp: true })
        .resolve(`${host}/app:1`)
        .catch((x: unknown) => x);
    const proxyAt = `socks5://127.0.0.1:${guarded.port}`;

    restore = withProxyEnv({ HTTP_PROXY: guardedUrl('socks5', `wrong-${PASSWORD}`) });
    const denied = await resolve();
    expect(denied).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: `HEAD http://${host}/v2/app/manifests/1: proxy ${proxyAt} (from HTTP_PROXY) refused the credentials in HTTP_PROXY`,
      cause: { code: 'KLN0880' },
    });
    restore();

    restore = withProxyEnv({ http_proxy: proxyAt });
    const missing = await resolve();
    expect(missing).toMatchObject({ message: expect.stringContaining(`proxy ${proxyAt} (from http_proxy) requires credentials`), hint: `give them in the proxy URL: http_proxy=socks5://USER:PASSWORD@127.0.0.1:${guarded.port}` });
    restore();

    restore = withProxyEnv({ HTTP_PROXY: guardedUrl('socks5') });
    const unknown = await client('elsewhere.test', { plainHttp: true })
      .resolve('elsewhere.test/app:1')
      .catch((x: unknown) => x);
    expect(unknown).toMatchObject({
      message: expect.stringContaining(`proxy ${proxyAt} (from HTTP_PROXY) would not open a connection to elsewhere.test:80 (SOCKS5: host unreachable)`),
      hint: expect.stringContaining('to reach elsewhere.test without a proxy, add it to NO_PROXY'),
    });
    restore();

    // an IPv6 address goes as one (ATYP 4), not as a bracketed name
    restore = withProxyEnv({ HTTP_PROXY: guardedUrl('socks5') });
    const before = guarded.log.length;
    const v6 = await client('[2001:db8::5]:5000', { plainHttp: true })
      .resolve('[2001:db8::5]:5000/app:1')
      .catch((x: unknown) => x);
    expect(guarded.log.slice(before)).toEqual([{ host: '2001:0db8:0000:0000:0000:0000:0000:0005', type: 'ipv6', port: 5000, user: USER }]);
    expect(v6).toMatchObject({ message: expect.stringContaining(`would not open a connection to [2001:db8::5]:5000 (SOCKS5: host unreachable)`) });
    restore();

    const closed = await closedPort();
    restore = withProxyEnv({ HTTP_PROXY: `socks5://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${closed}` });
    const refused = await resolve();
    expect(refused).toMatchObject({ message: expect.stringContaining(`proxy socks5://127.0.0.1:${closed} (from HTTP_PROXY) refused the connection`) });
    restore();

    // an HTTP proxy named as a SOCKS5 one
    restore = withProxyEnv({ HTTP_PROXY: `socks5://127.0.0.1:${http.port}` });
    const notSocks = await resolve();
    expect(notSocks).toMatchObject({ message: expect.stringContaining(`proxy socks5://127.0.0.1:${http.port} (from HTTP_PROXY) does not speak SOCKS5`) });

    for (const e of [denied, missing, unknown, v6, refused, notSocks]) {
      expect(shown(e)).not.toContain(PASSWORD);
      expect(shown(e)).not.toContain(encodeURIComponent(PASSWORD));
    }
  });

  test('socks4:// is refused before any connection (Go supports SOCKS5 only)', async () => {
    const host = `registry.socks.test:${plain.port}`;
    restore = withProxyEnv({ HTTP_PROXY: `socks4://127.0.0.1:${open.port}` });
    const before = open.connections;
    const e = await client(host, { plainHttp: true })
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      message: expect.stringContaining("HTTP_PROXY names a socks4 proxy, which kiln does not support (as Go's net/http)"),
      hint: 'use a SOCKS5 proxy (socks5://HOST:PORT) or an HTTP one (http://HOST:PORT) in HTTP_PROXY, or unset it',
      cause: { code: 'KLN0880' },
    });
    expect(open.connections).toBe(before);
  });
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
