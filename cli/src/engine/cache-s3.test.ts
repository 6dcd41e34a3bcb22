import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { marshalCacheConfig, rootKey, type MarshaledCache } from '@kiln/solver';
import { exportS3Cache, importS3Cache, s3CacheConfig } from './cache-s3.js';
import type { S3CacheLocation } from './cache-s3-spec.js';
import type { KilnEngine } from './engine.js';

// kiln and BuildKit v0.11 sharing a bucket: a cache config written by hand as BuildKit's s3
// exporter writes it (cache/remotecache/s3 Finalize: v1.CacheConfig with each layer's
// LayerAnnotations, json.Marshal; objects at prefix+blobs_prefix+DIGEST and
// prefix+manifests_prefix+NAME) is imported, and the config kiln writes has the same shape.

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const base = sha('base-layer-blob');
const top = sha('top-layer-blob');
const op = sha('run-op');
const root = sha('source-op');
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';

// Go field order and omitempty as BuildKit's types: CacheLayer{blob,parent,annotations},
// LayerAnnotations{mediaType,diffID,size,createdAt}, CacheRecord{layers,digest,inputs}; Go's
// time.Time in UTC with nanoseconds; parent 0 left out; -1 for no parent.
const buildkitConfig = JSON.stringify({
  layers: [
    { blob: base, parent: -1, annotations: { mediaType: GZ, diffID: sha('base-diff'), size: 15, createdAt: '2023-03-01T09:00:00.123456789Z' } },
    { blob: top, annotations: { mediaType: GZ, diffID: sha('top-diff'), size: 14, createdAt: '2023-03-01T09:00:01Z' } },
  ],
  records: [
    { digest: rootKey(root, 0) },
    { layers: [{ layer: 1, createdAt: '2023-03-01T09:00:02.5Z' }], digest: rootKey(op, 0), inputs: [[{ link: 0 }]] },
  ],
});

let server: Server;
let port: number;
const asked: string[] = [];
const objects = new Map<string, string>([
  ['/ci/team/cache/manifests/app', buildkitConfig],
  [`/ci/team/cache/blobs/${base.replace(':', '%3A')}`, 'base-layer-blob'],
  [`/ci/team/cache/blobs/${top.replace(':', '%3A')}`, 'top-layer-blob'],
]);

beforeAll(async () => {
  server = createServer((req, res) => {
    asked.push(`${req.method ?? ''} ${req.url ?? ''}`);
    const body = objects.get(req.url ?? '');
    if (body === undefined) res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
    else res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const location = (): S3CacheLocation => ({
  bucket: 'ci',
  region: 'us-east-1',
  prefix: 'team/',
  blobsPrefix: 'cache/blobs/',
  manifestsPrefix: 'cache/manifests/',
  names: ['app', 'other'],
  endpointUrl: `http://127.0.0.1:${port}`,
  usePathStyle: true,
  credentials: () => Promise.resolve({ accessKeyId: 'AKID', secretAccessKey: 'secret' }),
});

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

describe('s3 cache shared with BuildKit v0.11', () => {
  test('a config BuildKit wrote is imported: layer descriptors from the annotations, blobs at prefix+blobs_prefix+sha256:…', async () => {
    const imp = await importS3Cache(location());
    // The first name is read.
    expect(asked).toEqual(['GET /ci/team/cache/manifests/app']);
    const [id] = imp.walkLinks(rootKey(root, 0), { input: 0, output: 0, digest: op, selector: '' });
    expect(id).toBeDefined();
    const [res] = imp.results(id as string);
    expect(res?.createdAtText).toBe('2023-03-01T09:00:02.5Z');
    expect(res?.layers).toEqual([
      { mediaType: GZ, digest: base, size: 15, annotations: { 'containerd.io/uncompressed': sha('base-diff'), 'buildkit/createdat': '2023-03-01T09:00:00.123456789Z' } },
      { mediaType: GZ, digest: top, size: 14, annotations: { 'containerd.io/uncompressed': sha('top-diff'), 'buildkit/createdat': '2023-03-01T09:00:01Z' } },
    ]);
    expect(await text(await imp.open(res?.layers[1] as NonNullable<typeof res>['layers'][number]))).toBe('top-layer-blob');
  });

  test('the config kiln writes is BuildKit’s shape, byte for byte for the same cache', () => {
    const parsed = JSON.parse(buildkitConfig) as { layers: Array<{ blob: string; annotations: { diffID: string; createdAt: string } }> };
    const cache: MarshaledCache = {
      config: {
        layers: [
          { blob: base, parent: -1 },
          { blob: top, parent: 0 },
        ],
        records: [
          { digest: rootKey(root, 0), inputs: [], results: [] },
          { digest: rootKey(op, 0), inputs: [[{ selector: '', link: 0 }]], results: [{ layer: 1, createdAt: '2023-03-01T09:00:02.5Z' }] },
        ],
      },
      layers: [
        // kiln's own layers carry buildkit/createdat in local time with an offset; BuildKit writes t.UTC().
        { mediaType: GZ, digest: base, size: 15, annotations: { 'containerd.io/uncompressed': sha('base-diff'), 'buildkit/createdat': '2023-03-01T10:00:00.123456789+01:00' } },
        { mediaType: GZ, digest: top, size: 14, annotations: { 'containerd.io/uncompressed': sha('top-diff'), 'buildkit/createdat': parsed.layers[1]?.annotations.createdAt ?? '' } },
      ],
    };
    expect(marshalCacheConfig(s3CacheConfig(cache))).toBe(buildkitConfig);
  });
});

describe('s3 cache export', () => {
  test('the first failed blob stops the other uploads: a multipart upload in flight is aborted before the export fails', async () => {
    const small = sha('small blob');
    const big = sha('big blob');
    const seen: string[] = [];
    const srv = createServer((req, res) => {
      const what = `${req.method ?? ''} ${req.url ?? ''}`;
      seen.push(what);
      req.resume();
      req.on('end', () => {
        if (req.method === 'HEAD') return res.writeHead(404).end();
        if (what.includes('?uploads')) return res.end('<InitiateMultipartUploadResult><UploadId>U-big</UploadId></InitiateMultipartUploadResult>');
        if (what.includes('?partNumber=')) return setTimeout(() => res.writeHead(200, { etag: '"p"' }).end(), 1000);
        if (req.method === 'DELETE') return res.writeHead(204).end();
        // The small blob fails once the big one is being sent.
        if (req.method === 'PUT') return setTimeout(() => res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'), 300);
        return res.end('<CompleteMultipartUploadResult/>');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const bigSize = 80 << 20; // above the 64 MiB multipart threshold
      const engine = {
        content: {
          readStream: (d: string) =>
            (async function* (): AsyncGenerator<Uint8Array> {
              if (d === small) yield Buffer.from('small blob');
              else for (let i = 0; i < bigSize; i += 1 << 20) yield Buffer.alloc(1 << 20);
            })(),
        },
      } as unknown as KilnEngine;
      const layer = (digest: string, size: number) => ({ mediaType: GZ, digest, size, annotations: { 'containerd.io/uncompressed': sha(`${digest}-diff`), 'buildkit/createdat': '2023-03-01T09:00:00Z' } });
      const cache: MarshaledCache = {
        config: { layers: [{ blob: small, parent: -1 }, { blob: big, parent: -1 }], records: [{ digest: rootKey(op, 0), inputs: [], results: [{ layer: 1, createdAt: '2023-03-01T09:00:00Z' }] }] },
        layers: [layer(small, 10), layer(big, bigSize)],
      };
      const spec = { ...location(), endpointUrl: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, prefix: 'x/', uploadParallelism: 2, touchRefreshMs: 86_400_000 };
      await expect(exportS3Cache(engine, spec, cache, { onStatus: () => undefined })).rejects.toMatchObject({ s3Code: 'AccessDenied' });
      // By the time the export fails, the big blob's upload was aborted, not completed or left open.
      const bigKey = `/ci/x/cache/blobs/${big.replace(':', '%3A')}`;
      expect(seen).toContain(`DELETE ${bigKey}?uploadId=U-big`);
      expect(seen.filter((r) => r.startsWith(`POST ${bigKey}?uploadId=`))).toEqual([]);
      expect(seen.some((r) => r.includes('manifests/'))).toBe(false);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
