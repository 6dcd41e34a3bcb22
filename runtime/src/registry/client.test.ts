import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { MediaTypes } from '../image/media-types.js';
import { dockerConfigCredentials, staticCredentials } from './auth.js';
import { RegistryClient } from './client.js';
import { parseReference } from './reference.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A tiny in-test registry that issues auth challenges and misbehaves on purpose. */
async function serve(handler: Handler): Promise<{ server: Server; host: string; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { server, host: `127.0.0.1:${port}`, port };
}

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: digestOf('{}'), size: 2 }, layers: [] }));
const manifestDigest = digestOf(manifest);

function sendManifest(res: ServerResponse, head: boolean, body = manifest): void {
  res.writeHead(200, { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': digestOf(body), 'content-length': String(body.length) });
  res.end(head ? undefined : body);
}

let root: string;
let server: Server | undefined;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-client-'));
});
afterEach(async () => {
  server?.close();
  server = undefined;
  await rm(root, { recursive: true, force: true });
});

describe('RegistryClient auth', () => {
  test('bearer: challenge → token from realm with service, scope and basic creds from docker config; token cached', async () => {
    let tokenRequests = 0;
    const seenScopes: string[] = [];
    const s = await serve((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token') {
        tokenRequests++;
        seenScopes.push(...url.searchParams.getAll('scope'));
        expect(url.searchParams.get('service')).toBe('fake-registry');
        if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cret').toString('base64')}`) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-1', expires_in: 300 }));
        return;
      }
      if (req.headers.authorization !== 'Bearer tok-1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${s.host}/token",service="fake-registry",scope="repository:team/app:pull"` }).end();
        return;
      }
      sendManifest(res, req.method === 'HEAD');
    });
    server = s.server;
    const cfg = join(root, 'config.json');
    await writeFile(cfg, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
    const client = new RegistryClient({ credentials: dockerConfigCredentials(cfg) });
    const r = await client.resolve(`${s.host}/team/app:v1`);
    expect(r.descriptor).toEqual({ mediaType: MediaTypes.ociManifest, digest: manifestDigest, size: manifest.length });
    expect(seenScopes).toEqual(['repository:team/app:pull']);
    await client.resolve(`${s.host}/team/app:v2`);
    expect(tokenRequests).toBe(1);
    // parallel requests for a new scope share one token fetch
    await Promise.all(Array.from({ length: 5 }, (_, i) => client.resolve(`${s.host}/team/other:v${i}`)));
    expect(tokenRequests).toBe(2);
  });

  test('bearer without credentials the token service refuses → UNAUTHORIZED with a login hint', async () => {
    const s = await serve((req, res) => {
      if ((req.url ?? '').startsWith('/token')) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${(server?.address() as { port: number }).port}/token",service="x"` }).end();
    });
    server = s.server;
    await expect(new RegistryClient().resolve(`${s.host}/private/app`)).rejects.toMatchObject({ code: 'UNAUTHORIZED', hint: expect.stringContaining('config.json') });
  });

  test('basic challenge: retried with basic credentials; wrong credentials → UNAUTHORIZED; 403 → DENIED', async () => {
    const good = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    const s = await serve((req, res) => {
      if ((req.url ?? '').includes('/forbidden/')) {
        res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }));
        return;
      }
      if (req.headers.authorization !== good) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
        return;
      }
      sendManifest(res, req.method === 'HEAD');
    });
    server = s.server;
    const ok = new RegistryClient({ credentials: staticCredentials({ [s.host]: { kind: 'basic', username: 'bob', password: 'pw' } }) });
    expect((await ok.resolve(`${s.host}/x/y`)).descriptor.digest).toBe(manifestDigest);
    const bad = new RegistryClient({ credentials: staticCredentials({ [s.host]: { kind: 'basic', username: 'bob', password: 'nope' } }) });
    const err = await bad.resolve(`${s.host}/x/y`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(String((err as Error).message)).not.toContain('nope');
    await expect(ok.resolve(`${s.host}/forbidden/y`)).rejects.toMatchObject({ code: 'DENIED' });
  });
});

describe('RegistryClient resilience and verification', () => {
  test('retries 503s with backoff, then succeeds', async () => {
    let calls = 0;
    const s = await serve((req, res) => {
      if (++calls <= 2) {
        res.writeHead(503).end();
        return;
      }
      sendManifest(res, req.method === 'HEAD');
    });
    server = s.server;
    const client = new RegistryClient({ retryBaseMs: 5 });
    expect((await client.resolve(`${s.host}/a/b`)).descriptor.digest).toBe(manifestDigest);
    expect(calls).toBe(3);
    const failing = await serve((_req, res) => res.writeHead(500).end());
    const e = await new RegistryClient({ retryBaseMs: 1, retries: 2 }).resolve(`${failing.host}/a/b`).catch((x: unknown) => x);
    failing.server.close();
    expect(e).toMatchObject({ code: 'REGISTRY_ERROR' });
  });

  test('a dropped connection during a blob download resumes with a Range request; bytes verified on ingest', async () => {
    const blob = randomBytes(256 * 1024);
    const digest = digestOf(blob);
    const ranges: string[] = [];
    let dropped = false;
    const s = await serve((req, res) => {
      if (req.headers.range !== undefined) {
        ranges.push(req.headers.range);
        const start = Number(/bytes=(\d+)-/.exec(req.headers.range)?.[1]);
        res.writeHead(206, { 'content-length': String(blob.length - start), 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` });
        res.end(blob.subarray(start));
        return;
      }
      if (!dropped) {
        dropped = true;
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.write(blob.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
    server = s.server;
    const store = await ContentStore.open(root);
    const ref = parseReference(`${s.host}/a/b`);
    const info = await store.ingest(new RegistryClient().openBlob(ref, { mediaType: 'application/octet-stream', digest, size: blob.length }), { expected: digest });
    expect(info.digest).toBe(digest);
    expect(ranges.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(ranges[0] ?? '')?.[1])).toBeGreaterThan(0);
  });

  test('a registry serving wrong bytes → DIGEST_MISMATCH (manifest by digest, blob ingest)', async () => {
    const other = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const s = await serve((req, res) => {
      if ((req.url ?? '').includes('/blobs/')) {
        res.writeHead(200).end('tampered');
        return;
      }
      res.writeHead(200, { 'content-type': MediaTypes.ociManifest, 'content-length': String(other.length) });
      res.end(req.method === 'HEAD' ? undefined : other);
    });
    server = s.server;
    const client = new RegistryClient();
    await expect(client.resolve(`${s.host}/a/b@${manifestDigest}`)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const ref = parseReference(`${s.host}/a/b`);
    await expect(client.fetchManifest(ref, { mediaType: MediaTypes.ociManifest, digest: manifestDigest, size: manifest.length })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const store = await ContentStore.open(root);
    await expect(store.ingest(client.openBlob(ref, { mediaType: 'x', digest: manifestDigest, size: 8 }), { expected: manifestDigest })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(await store.has(manifestDigest)).toBe(false);
  });

  test('unreachable registry → REGISTRY_UNREACHABLE', async () => {
    const s = await serve(() => undefined);
    const host = s.host;
    await new Promise((r) => s.server.close(r));
    await expect(new RegistryClient({ retries: 1, retryBaseMs: 1 }).resolve(`${host}/a/b`)).rejects.toMatchObject({ code: 'REGISTRY_UNREACHABLE' });
  });
});

describe('RegistryClient reads manifests with a size limit', () => {
  // A registry double whose manifest GET streams 512 MiB (HEAD gives no digest, so resolve GETs).
  function flood() {
    let pulled = 0;
    const fetch = (async (_input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      if (init?.method === 'HEAD') return new Response(null, { status: 200 });
      let left = 512 << 20;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (left <= 0) return c.close();
          left -= 1 << 20;
          pulled += 1 << 20;
          c.enqueue(new Uint8Array(1 << 20));
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': MediaTypes.ociManifest } });
    }) as typeof globalThis.fetch;
    return { client: new RegistryClient({ fetch }), pulled: () => pulled };
  }

  test('fetchManifest stops at the descriptor size; resolve (GET fallback) at the manifest limit', async () => {
    const a = flood();
    await expect(a.client.fetchManifest(parseReference('127.0.0.1:9/app:1'), { mediaType: MediaTypes.ociManifest, digest: manifestDigest, size: manifest.length })).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(a.pulled()).toBeLessThan(16 << 20);
    const b = flood();
    await expect(b.client.resolve('127.0.0.1:9/app:1')).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(b.pulled()).toBeLessThan(16 << 20);
  });
});
