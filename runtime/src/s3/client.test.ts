import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../../test/helpers/pki.js';
import { afterEach, describe, expect, test } from 'vitest';
import { S3Client, awsEndpoint, multipartPartSize, virtualHostable } from './client.js';

// The client's requests as a bare HTTP server on 127.0.0.1 sees them (no S3 behind it): the
// host and path it addresses, and how it reacts to S3 answers no real S3 gives on demand.

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly host: string;
  readonly amzDate: string;
}

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
  server = undefined;
});

async function serve(handle: (req: IncomingMessage, res: ServerResponse, seen: Seen[]) => void): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', amzDate: String(req.headers['x-amz-date'] ?? '') });
    handle(req, res, seen);
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return { port: (server?.address() as AddressInfo).port, seen };
}

const ok = (req: IncomingMessage, res: ServerResponse): void => {
  req.resume();
  req.on('end', () => res.writeHead(200, { etag: '"e"' }).end());
};

const client = (port: number, bucket: string, usePathStyle = false): S3Client =>
  new S3Client({ bucket, region: 'us-east-1', endpointUrl: `http://s3.localhost:${port}`, usePathStyle, credentials: () => Promise.resolve({ accessKeyId: 'AKID', secretAccessKey: 'secret' }) });

/** `20130524T000000Z` → ms. */
const amzMs = (s: string): number => Date.parse(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);

describe('S3 client addressing', () => {
  test('a bucket that is no host name goes by path, whatever use_path_style says (the SDKs’ rule)', async () => {
    const { port, seen } = await serve(ok);
    // Upper case would be lower-cased as a host name: another bucket.
    await client(port, 'CI_Cache').put('k', Buffer.from('x'));
    await client(port, 'ci-cache').put('k', Buffer.from('x'));
    expect(seen.map((s) => [s.host, s.url])).toEqual([
      [`s3.localhost:${port}`, '/CI_Cache/k'],
      [`ci-cache.s3.localhost:${port}`, '/k'],
    ]);
    // An endpoint that is an IP address has no bucket host names (MinIO at http://127.0.0.1:9000).
    await new S3Client({ bucket: 'ci-cache', region: 'us-east-1', endpointUrl: `http://127.0.0.1:${port}`, credentials: () => Promise.resolve({ accessKeyId: 'AKID', secretAccessKey: 'secret' }) }).put('k', Buffer.from('x'));
    expect(seen[2]).toMatchObject({ host: `127.0.0.1:${port}`, url: '/ci-cache/k' });
    expect(virtualHostable('ci.cache', true)).toBe(true);
    // Over https a dotted name does not match *.s3.REGION.amazonaws.com's certificate.
    expect(virtualHostable('ci.cache', false)).toBe(false);
    expect(virtualHostable('192.168.1.1', true)).toBe(false);
    expect(virtualHostable('ab', false)).toBe(false);
    expect(virtualHostable('-ab', false)).toBe(false);
  });

  test('a key with . and .. segments is asked for (and signed) as it is, not resolved', async () => {
    const { port, seen } = await serve(ok);
    await client(port, 'b', true).put('cache/../blobs/./sha256:ab', Buffer.from('x'));
    expect(seen.map((s) => s.url)).toEqual(['/b/cache/../blobs/./sha256%3Aab']);
  });
});

describe('S3 client answers', () => {
  test('RequestTimeTooSkewed: signed again with the server’s time, as the AWS SDKs do', async () => {
    const ahead = 3_600_000; // the server's clock is an hour ahead
    const { port, seen } = await serve((req, res) => {
      const skew = Math.abs(amzMs(String(req.headers['x-amz-date'])) - (Date.now() + ahead));
      if (skew < 15 * 60_000) return ok(req, res);
      req.resume();
      const server = new Date(Date.now() + ahead).toISOString();
      res.writeHead(403, { 'content-type': 'application/xml' }).end(
        `<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message><ServerTime>${server}</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds></Error>`,
      );
    });
    const c = client(port, 'b', true);
    await c.put('k', Buffer.from('x'));
    expect(seen).toHaveLength(2);
    // The offset is kept: the next request is right the first time.
    await c.put('k2', Buffer.from('x'));
    expect(seen).toHaveLength(3);
  });

  test('a clock S3 keeps refusing: the error says to set the clock, not to check the keys', async () => {
    const { port } = await serve((req, res) => {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>');
    });
    await expect(client(port, 'b', true).put('k', Buffer.from('x'))).rejects.toMatchObject({ s3Code: 'RequestTimeTooSkewed', hint: expect.stringContaining('clock') });
  });

  test('a bucket in another region: the hint names the region S3 gives (x-amz-bucket-region), for HEAD too', async () => {
    const { port } = await serve((req, res) => {
      req.resume();
      res.writeHead(301, { 'content-type': 'application/xml', 'x-amz-bucket-region': 'eu-central-1' });
      res.end(req.method === 'HEAD' ? undefined : '<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message></Error>');
    });
    await expect(client(port, 'b', true).head('k')).rejects.toMatchObject({ s3Code: 'PermanentRedirect', hint: 'the bucket is in eu-central-1, not us-east-1: set region=eu-central-1' });
  });

  test('an answer before the body is sent (then the connection closed) stops reading the streamed body', async () => {
    const { port } = await serve((req, res) => {
      res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' }).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      req.socket.destroy();
    });
    let closed = false;
    const size = 48 << 20; // one PUT (under the multipart threshold)
    const open = async function* (): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < size; i += 1 << 20) yield Buffer.alloc(1 << 20);
      } finally {
        closed = true;
      }
    };
    await expect(client(port, 'b', true).put('k', { size, open })).rejects.toBeTruthy();
    // The source is closed (a file descriptor of the content store, in an export), not left waiting for a drain.
    for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(true);
  });
});

describe('S3 client retries and interrupts', () => {
  test('a 5xx answer to a streamed PUT: the body is opened again and sent whole', async () => {
    const got: number[] = [];
    const { port } = await serve((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => {
        got.push(n);
        if (got.length === 1) res.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
        else res.writeHead(200).end();
      });
    });
    let opened = 0;
    const size = 3 << 20;
    const open = async function* (): AsyncGenerator<Uint8Array> {
      opened++;
      for (let i = 0; i < size; i += 1 << 20) yield Buffer.alloc(1 << 20);
    };
    await client(port, 'b', true).put('k', { size, open });
    expect({ opened, got }).toEqual({ opened: 2, got: [size, size] });
  });

  test('an interrupted multipart upload is aborted (AbortMultipartUpload), not left in the bucket', async () => {
    const ac = new AbortController();
    const { port, seen } = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'POST') return res.end('<InitiateMultipartUploadResult><UploadId>U-1</UploadId></InitiateMultipartUploadResult>');
        if (req.method === 'DELETE') return res.writeHead(204).end();
        // The first part: Ctrl-C while it is sent.
        ac.abort(new Error('interrupted'));
      });
    });
    const c = new S3Client({ bucket: 'b', region: 'us-east-1', endpointUrl: `http://127.0.0.1:${port}`, multipartThreshold: 1 << 20, partSize: 1 << 20, credentials: () => Promise.resolve({ accessKeyId: 'AKID', secretAccessKey: 'secret' }) });
    const open = async function* (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 4; i++) yield Buffer.alloc(1 << 20);
    };
    await expect(c.put('k', { size: 4 << 20, open }, ac.signal)).rejects.toBeTruthy();
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['POST /b/k?uploads', 'PUT /b/k?partNumber=1&uploadId=U-1', 'DELETE /b/k?uploadId=U-1']);
  });
});

test('AWS_CA_BUNDLE: an https endpoint whose CA is not the system\'s is trusted through the bundle, and only then', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-s3-ca-'));
  const pki = makeTestPki(dir);
  const tls = createTlsServer({ cert: await readFile(pki.serverCert), key: await readFile(pki.serverKey) }, (req, res) => ok(req, res));
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  try {
    const port = (tls.address() as AddressInfo).port;
    const c = (caBundle?: string): S3Client =>
      new S3Client({ bucket: 'b', region: 'us-east-1', endpointUrl: `https://127.0.0.1:${port}`, ...(caBundle === undefined ? {} : { caBundle }), credentials: () => Promise.resolve({ accessKeyId: 'AKID', secretAccessKey: 'secret' }) });
    await c(pki.ca).put('k', Buffer.from('x'));
    await expect(c().put('k', Buffer.from('x'))).rejects.toMatchObject({ code: 'S3_UNREACHABLE', hint: expect.stringContaining('AWS_CA_BUNDLE') });
    await expect(c(join(dir, 'missing.pem')).put('k', Buffer.from('x'))).rejects.toMatchObject({ message: expect.stringContaining('missing.pem cannot be read') });
  } finally {
    await new Promise<void>((r) => tls.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
});

test('AWS endpoints by partition', () => {
  expect(awsEndpoint('eu-west-1')).toBe('https://s3.eu-west-1.amazonaws.com');
  expect(awsEndpoint('us-gov-west-1')).toBe('https://s3.us-gov-west-1.amazonaws.com');
  expect(awsEndpoint('cn-north-1')).toBe('https://s3.cn-north-1.amazonaws.com.cn');
});

describe('multipart part size', () => {
  test('16 MiB parts, larger ones when 10,000 of them would not hold the blob', () => {
    const MiB = 1 << 20;
    expect(multipartPartSize(200 * MiB, 16 * MiB)).toBe(16 * MiB);
    const big = 300 * 1024 * MiB; // 300 GiB
    const part = multipartPartSize(big, 16 * MiB);
    expect(Math.ceil(big / part)).toBeLessThanOrEqual(10_000);
    expect(part % MiB).toBe(0);
    expect(multipartPartSize(10_000 * 16 * MiB, 16 * MiB)).toBe(16 * MiB);
  });
});
