import { describe, expect, test } from 'vitest';
import { digestOf } from '../content/digest.js';
import { MediaTypes } from '../image/media-types.js';
import { RegistryClient } from './client.js';
import { hostScheme, parseMirror, pullEndpoints } from './hosts.js';
import { parseReference } from './reference.js';

describe('hostScheme', () => {
  test('localhost is plain http unless http = false; other hosts https unless http = true', () => {
    expect(hostScheme('127.0.0.1:5000', undefined)).toBe('http');
    expect(hostScheme('localhost:5000', {})).toBe('http');
    expect(hostScheme('127.0.0.1:5000', { plainHttp: false })).toBe('https');
    expect(hostScheme('reg.example:5000', undefined)).toBe('https');
    expect(hostScheme('reg.example:5000', { plainHttp: true })).toBe('http');
    expect(hostScheme('[::ffff:127.0.0.1]:5000', undefined)).toBe('https');
  });

  test('insecure with plain http: https first, then http (BuildKit httpFallback); insecure alone: https', () => {
    expect(hostScheme('reg.example', { insecure: true, plainHttp: true })).toBe('https-then-http');
    expect(hostScheme('localhost:5000', { insecure: true })).toBe('https-then-http');
    expect(hostScheme('reg.example', { insecure: true })).toBe('https');
  });
});

describe('mirrors', () => {
  test('a mirror is host[:port] with an optional path prefix (BuildKit extractMirrorHostAndPath)', () => {
    expect(parseMirror('mirror.local:5000')).toEqual({ domain: 'mirror.local:5000', prefix: '', mirror: true });
    expect(parseMirror('core.harbor.domain/proxy.docker.io')).toEqual({ domain: 'core.harbor.domain', prefix: 'proxy.docker.io/', mirror: true });
    expect(parseMirror('https://m.example/a/b/')).toEqual({ domain: 'm.example', prefix: 'a/b/', mirror: true });
    expect(parseMirror('https://bob:pw@m.example:5000/p')).toEqual({ domain: 'm.example:5000', prefix: 'p/', mirror: true });
  });

  test('pulls try the mirrors in order, then the host', () => {
    expect(pullEndpoints('docker.io', { 'docker.io': { mirrors: ['a:1', 'b/p'] } }).map((e) => `${e.domain}|${e.prefix}`)).toEqual(['a:1|', 'b|p/', 'docker.io|']);
    expect(pullEndpoints('quay.io', { 'docker.io': { mirrors: ['a:1'] } })).toEqual([{ domain: 'quay.io', prefix: '', mirror: false }]);
  });

  // A fake network: which URLs were asked, and the answers of each host.
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: digestOf('{}'), size: 2 }, layers: [] }));
  function network(hostsWithImage: readonly string[], down: readonly string[] = []) {
    const asked: string[] = [];
    const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = new URL(String(input));
      asked.push(`${init?.method ?? 'GET'} ${url.href}`);
      if (down.includes(url.host)) throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
      const has = hostsWithImage.some((h) => url.href.startsWith(h));
      if (!has) return new Response(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] }), { status: 404 });
      if (url.pathname.includes('/blobs/')) return new Response('{}', { status: 200 });
      return new Response(init?.method === 'HEAD' ? null : manifest, {
        status: 200,
        headers: { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': digestOf(manifest), 'content-length': String(manifest.length) },
      });
    }) as typeof globalThis.fetch;
    return { fetch, asked };
  }

  test('resolve and blobs come from the first mirror that has them, under its path prefix', async () => {
    const net = network(['http://127.0.0.2:2/v2/proxy/library/busybox']);
    const client = new RegistryClient({ fetch: net.fetch, hosts: { 'docker.io': { mirrors: ['127.0.0.1:1', '127.0.0.2:2/proxy'] } } });
    const ref = parseReference('busybox');
    const { ref: resolved, descriptor } = await client.resolve(ref);
    expect(resolved).toEqual(ref);
    expect(descriptor.digest).toBe(digestOf(manifest));
    const config = await client.fetchBlob(ref, { mediaType: MediaTypes.ociConfig, digest: digestOf('{}'), size: 2 });
    expect(config.toString()).toBe('{}');
    // The first mirror was asked and lacked it; the registry itself never was.
    expect(net.asked).toContain('HEAD http://127.0.0.1:1/v2/library/busybox/manifests/latest');
    expect(net.asked).toContain(`GET http://127.0.0.2:2/v2/proxy/library/busybox/blobs/${digestOf('{}')}`);
    expect(net.asked.some((a) => a.includes('registry-1.docker.io'))).toBe(false);
  });

  test('a mirror that is down or lacks the image falls through to the registry, at once (no retries)', async () => {
    const net = network(['http://127.0.0.1:9/v2/app'], ['127.0.0.3:3']);
    const client = new RegistryClient({ fetch: net.fetch, retryBaseMs: 1000, hosts: { '127.0.0.1:9': { mirrors: ['127.0.0.3:3', '127.0.0.4:4'] } } });
    const t0 = Date.now();
    const { descriptor } = await client.resolve('127.0.0.1:9/app:1');
    expect(descriptor.digest).toBe(digestOf(manifest));
    expect(Date.now() - t0).toBeLessThan(900);
    expect(net.asked.filter((a) => a.includes('127.0.0.3:3'))).toHaveLength(1);
    expect(net.asked.filter((a) => a.includes('127.0.0.4:4'))).toHaveLength(1);
  });

  test('when nothing has it, the registry\'s own error is thrown', async () => {
    const net = network([], ['127.0.0.3:3']);
    const client = new RegistryClient({ fetch: net.fetch, hosts: { '127.0.0.1:9': { mirrors: ['127.0.0.3:3'] } } });
    await expect(client.resolve('127.0.0.1:9/app:1')).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN', message: expect.stringContaining('127.0.0.1:9/app:1') });
  });
});

describe('insecure hosts that may be plain http', () => {
  test('https first; a TLS failure showing plain http switches the host to http for good', async () => {
    const asked: string[] = [];
    const fetch = (async (input: string | URL | Request): Promise<Response> => {
      asked.push(String(input));
      if (String(input).startsWith('https:')) throw new TypeError('fetch failed', { cause: Object.assign(new Error('wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }) });
      return new Response(null, { status: 200, headers: { 'docker-content-digest': digestOf('x'), 'content-type': MediaTypes.ociManifest, 'content-length': '1' } });
    }) as typeof globalThis.fetch;
    const client = new RegistryClient({ fetch, tlsFetch: () => fetch, hosts: { 'reg.example': { plainHttp: true, insecure: true } } });
    await client.resolve('reg.example/a:1');
    await client.resolve('reg.example/a:2');
    expect(asked).toEqual(['https://reg.example/v2/a/manifests/1', 'http://reg.example/v2/a/manifests/1', 'http://reg.example/v2/a/manifests/2']);
  });

  test('requests in flight when the host falls back switch to http too', async () => {
    const asked: string[] = [];
    const fetch = (async (input: string | URL | Request): Promise<Response> => {
      asked.push(String(input));
      await new Promise((r) => setTimeout(r, 5));
      if (String(input).startsWith('https:')) throw new TypeError('fetch failed', { cause: Object.assign(new Error('x:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/x.c:350:'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }) });
      return new Response(null, { status: 200, headers: { 'docker-content-digest': digestOf('x'), 'content-type': MediaTypes.ociManifest, 'content-length': '1' } });
    }) as typeof globalThis.fetch;
    const client = new RegistryClient({ fetch, tlsFetch: () => fetch, hosts: { 'reg.example': { plainHttp: true, insecure: true } } });
    await Promise.all([client.resolve('reg.example/a:1'), client.resolve('reg.example/a:2'), client.resolve('reg.example/a:3')]);
    expect(asked.filter((u) => u.startsWith('https:'))).toHaveLength(3);
    expect(asked.filter((u) => u.startsWith('http:'))).toHaveLength(3);
  });

  test('a plain-http answer to https names OpenSSL\'s reason and the http key', async () => {
    const fetch = (async (): Promise<Response> => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('80FC:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/ssl3_record.c:350:'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }) });
    }) as typeof globalThis.fetch;
    const e = await new RegistryClient({ fetch }).resolve('reg.example/a:1').catch((x: unknown) => x);
    expect(e).toMatchObject({ message: expect.stringContaining('does not speak TLS (ERR_SSL_WRONG_VERSION_NUMBER: wrong version number); set http = true under [registry."reg.example"]') });
  });

  test('an untrusted certificate fails at once, naming the problem and the config key', async () => {
    let calls = 0;
    const fetch = (async (): Promise<Response> => {
      calls++;
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }) });
    }) as typeof globalThis.fetch;
    const e = await new RegistryClient({ fetch, retryBaseMs: 1 }).resolve('reg.example/a:1').catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: expect.stringContaining('SELF_SIGNED_CERT_IN_CHAIN'),
      hint: expect.stringContaining('[registry."reg.example"] ca = ['),
    });
    expect(calls).toBe(1);
  });
});
