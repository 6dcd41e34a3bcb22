import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { S3Client, type S3Error } from '@kiln/runtime';
import { startS3, type TestS3 } from '../helpers/s3.js';

// The S3 client against s3rver behind a front that checks each request's SigV4 signature with
// AWS's own signer (see helpers/s3.ts): what kiln signs is what S3 would accept.

let s3: TestS3;
beforeAll(async () => {
  s3 = await startS3({ buckets: ['kiln-cache', 'other'] });
});
afterAll(async () => {
  await s3?.stop();
});

const client = (o: { pathStyle?: boolean; secret?: string; token?: string; threshold?: number; region?: string } = {}): S3Client =>
  new S3Client({
    bucket: 'kiln-cache',
    region: o.region ?? s3.region,
    endpointUrl: s3.endpoint,
    usePathStyle: o.pathStyle ?? true,
    credentials: () => Promise.resolve({ accessKeyId: s3.accessKeyId, secretAccessKey: o.secret ?? s3.secretAccessKey, ...(o.token === undefined ? {} : { sessionToken: o.token }) }),
    ...(o.threshold === undefined ? {} : { multipartThreshold: o.threshold, partSize: 5 << 20 }),
  });

async function all(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('S3 client (SigV4 checked by AWS signer)', () => {
  test('put, head, get whole and streamed; path-style and virtual-hosted; keys with : and /', async () => {
    for (const pathStyle of [true, false]) {
      const c = client({ pathStyle });
      const key = `p/blobs/sha256:${pathStyle ? 'a' : 'b'} x+y`;
      await c.put(key, Buffer.from('hello s3'));
      expect(await c.head(key)).toMatchObject({ size: 8 });
      expect((await c.getSmall(key, 100))?.toString()).toBe('hello s3');
      expect((await all(await c.open(key))).toString()).toBe('hello s3');
      expect(await c.head('p/none')).toBeUndefined();
      expect(await c.getSmall('p/none', 100)).toBeUndefined();
      await expect(c.open('p/none')).rejects.toMatchObject({ code: 'S3_NOT_FOUND', s3Code: 'NoSuchKey' });
      await expect(c.getSmall(key, 3)).rejects.toMatchObject({ code: 'S3_ERROR' });
    }
    // Path style went to 127.0.0.1/kiln-cache/…, virtual-hosted to kiln-cache.s3.localhost/…: both reached the bucket.
    expect(s3.requests.filter((r) => r.method === 'PUT').map((r) => [r.bucket, r.key])).toEqual([
      ['kiln-cache', 'p/blobs/sha256:a x+y'],
      ['kiln-cache', 'p/blobs/sha256:b x+y'],
    ]);
    expect(s3.refused).toEqual([]);
  });

  test('a streamed body is sent with its sha256; a large one as a multipart upload, one part in memory', async () => {
    const data = randomBytes(11 << 20);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const open = async function* (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < data.length; i += 1 << 20) yield data.subarray(i, i + (1 << 20));
    };
    const before = s3.requests.length;
    await client({ threshold: 8 << 20 }).put('big', { size: data.length, sha256, open });
    const calls = s3.requests.slice(before).map((r) => `${r.method} ${r.query.replace(/uploadId=[^&]+/, 'uploadId=ID')}`);
    expect(calls).toEqual(['POST uploads', 'PUT partNumber=1&uploadId=ID', 'PUT partNumber=2&uploadId=ID', 'PUT partNumber=3&uploadId=ID', 'POST uploadId=ID']);
    expect(createHash('sha256').update(await all(await client().open('big'))).digest('hex')).toBe(sha256);
    // Below the threshold: one PUT streaming the body, its hash the one given.
    await client().put('small-stream', { size: data.length, sha256, open });
    expect(s3.requests.at(-1)).toMatchObject({ method: 'PUT', key: 'small-stream', query: '' });
    // A body that is not what its hash says is refused by the service (S3 checks x-amz-content-sha256).
    await expect(client().put('lie', { size: 3, sha256: 'a'.repeat(64), open: async function* () { yield Buffer.from('abc'); } })).rejects.toMatchObject({ code: 'S3_ERROR', s3Code: 'XAmzContentSHA256Mismatch' });
  });

  test('touch copies an object onto itself (a new modification time), content kept', async () => {
    const c = client();
    await c.put('old', Buffer.from('keep me'));
    const before = s3.requests.length;
    await c.touch('old');
    expect(s3.requests.slice(before)).toEqual([{ method: 'PUT', bucket: 'kiln-cache', key: 'old', query: '' }]);
    expect((await c.getSmall('old', 100))?.toString()).toBe('keep me');
  });

  test('a wrong secret, a session token and a wrong region: what S3 answers, and no secret in the error', async () => {
    const err = (await client({ secret: 'WRONG-secret-123' }).put('x', Buffer.from('x')).catch((e: unknown) => e)) as S3Error;
    expect(err).toMatchObject({ code: 'S3_DENIED', s3Code: 'SignatureDoesNotMatch', status: 403 });
    expect(err.message).toContain('PUT s3://kiln-cache/x');
    expect(`${err.message} ${err.hint ?? ''}`).not.toContain('WRONG-secret-123');
    expect(s3.refused.at(-1)).toMatchObject({ code: 'SignatureDoesNotMatch' });
    // A HEAD answer has no body: the client asks again to name the cause.
    await expect(client({ secret: 'WRONG-secret-123' }).head('x')).rejects.toMatchObject({ code: 'S3_DENIED', s3Code: 'SignatureDoesNotMatch', message: expect.stringContaining('HEAD s3://kiln-cache/x') });
    // A session token is sent and signed (the front signs it too).
    const refusals = s3.refused.length;
    await client({ token: 'session/token+1' }).put('t', Buffer.from('t'));
    expect(s3.refused.length).toBe(refusals);
    await expect(client({ region: 'eu-west-1' }).put('r', Buffer.from('r'))).rejects.toMatchObject({ s3Code: 'AuthorizationHeaderMalformed' });
  });

  test('no server: S3_UNREACHABLE after its retries, naming the object', async () => {
    const c = new S3Client({ bucket: 'b', region: 'us-east-1', endpointUrl: 'http://127.0.0.1:9', usePathStyle: true, credentials: () => Promise.resolve({ accessKeyId: 'a', secretAccessKey: 's' }) });
    await expect(c.head('k')).rejects.toMatchObject({ code: 'S3_UNREACHABLE', message: expect.stringContaining('s3://b/k') });
  });
});
