import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import S3rver from 's3rver';

/**
 * A real S3-compatible server for tests: s3rver (objects on disk, S3's XML errors, multipart and
 * copy) behind a front on 127.0.0.1 that checks every request's AWS Signature Version 4 the way S3
 * does, with AWS's own signer (@smithy/signature-v4, the AWS SDK for JavaScript's), so kiln's
 * hand-written signing is checked by an implementation that is not kiln's: s3rver 3.x only looks
 * the access key id up and skips the V4 signature. The payload hash is checked against the body.
 */
export interface TestS3 {
  /** `http://s3.localhost:PORT`: path style or virtual-hosted (`BUCKET.s3.localhost`); with `tls`, `https://127.0.0.1:PORT` (path style). */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Every request that reached the store (signature accepted): method, bucket and key, query. */
  readonly requests: Array<{ method: string; bucket: string; key: string; query: string }>;
  /** Requests refused (signature, key id, payload hash). */
  readonly refused: Array<{ method: string; path: string; code: string }>;
  stop(): Promise<void>;
}

/** node:crypto as the Hash the signer takes (an HMAC when given a key). */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Uint8Array => (typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
class NodeSha256 {
  readonly #h;
  constructor(secret?: SourceData) {
    this.#h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.#h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.#h.digest());
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

/** `20130524T000000Z` → Date. */
const amzDate = (s: string): Date => new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);

/** Starts s3rver and its signature-checking front (https with `tls`: PEM files of its certificate and key); `buckets` exist from the start. */
export async function startS3(opts: { buckets: readonly string[]; region?: string; accessKeyId?: string; secretAccessKey?: string; tls?: { cert: string; key: string } }): Promise<TestS3> {
  const region = opts.region ?? 'us-east-1';
  const accessKeyId = opts.accessKeyId ?? 'AKIAKILNTEST';
  const secretAccessKey = opts.secretAccessKey ?? 'kiln/test+secret/KEY';
  const dir = await mkdtemp(join(tmpdir(), 'kiln-s3-'));
  const store = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, serviceEndpoint: 'localhost', vhostBuckets: false, configureBuckets: opts.buckets.map((name) => ({ name })) });
  const inner = (await store.run()) as { port: number };
  const requests: TestS3['requests'] = [];
  const refused: TestS3['refused'] = [];

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      const body = await readBody(req);
      const [rawPath = '/', rawQuery = ''] = (req.url ?? '/').split('?', 2);
      const path = rawPath;
      const auth = req.headers['authorization'] ?? '';
      const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
      const no = (status: number, code: string, msg: string): void => {
        refused.push({ method: req.method ?? '', path, code });
        refuse(res, status, code, msg);
      };
      if (m === null) return no(403, 'AccessDenied', 'no AWS4-HMAC-SHA256 authorization');
      const [, keyId, , scopeRegion, signedList = '', given] = m;
      if (keyId !== accessKeyId) return no(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
      if (scopeRegion !== region) return no(400, 'AuthorizationHeaderMalformed', `the region '${scopeRegion ?? ''}' is wrong; expecting '${region}'`);
      const payloadHash = String(req.headers['x-amz-content-sha256'] ?? '');
      if (payloadHash !== 'UNSIGNED-PAYLOAD' && payloadHash !== createHash('sha256').update(body).digest('hex')) return no(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
      const names = signedList.split(';');
      if (!names.includes('host') || !names.includes('x-amz-date') || !names.includes('x-amz-content-sha256')) return no(403, 'AccessDenied', 'host, x-amz-date and x-amz-content-sha256 must be signed');
      const headers: Record<string, string> = {};
      for (const n of names) headers[n] = String(req.headers[n] ?? '');
      const query: Record<string, string> = {};
      for (const [k, v] of new URLSearchParams(rawQuery)) query[k] = v;
      const token = req.headers['x-amz-security-token'];
      const signer = new SignatureV4({
        service: 's3',
        region,
        credentials: { accessKeyId, secretAccessKey, ...(typeof token === 'string' ? { sessionToken: token } : {}) },
        sha256: NodeSha256,
        uriEscapePath: false,
        applyChecksum: true,
      });
      const host = String(req.headers['host'] ?? '');
      const signed = await signer.sign({ method: req.method ?? 'GET', protocol: 'http:', hostname: host.split(':')[0] ?? '', path, query, headers }, { signingDate: amzDate(headers['x-amz-date'] ?? ''), signableHeaders: new Set(names) });
      if (signed.headers['authorization'] !== auth || given === undefined) return no(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
      // Bucket and key as the store sees them: BUCKET.s3.localhost is virtual-hosted.
      const vhost = /^(.+)\.s3\.localhost(:\d+)?$/.exec(host)?.[1];
      const decoded = decodeURIComponent(path).slice(1);
      const slash = decoded.indexOf('/');
      const bucket = vhost ?? (slash < 0 ? decoded : decoded.slice(0, slash));
      const key = vhost !== undefined ? decoded : slash < 0 ? '' : decoded.slice(slash + 1);
      requests.push({ method: req.method ?? '', bucket, key, query: rawQuery });
      // To the store path style, every x-amz header kept but the authorization (it was checked here).
      const fwd = { ...req.headers, host: `127.0.0.1:${inner.port}`, 'content-length': String(body.length) };
      delete fwd['authorization'];
      delete fwd['transfer-encoding'];
      const target = vhost === undefined ? req.url ?? '/' : `/${vhost}${req.url ?? '/'}`;
      const out = request({ host: '127.0.0.1', port: inner.port, method: req.method, path: target, headers: fwd }, (r) => {
        res.writeHead(r.statusCode ?? 500, r.headers);
        r.pipe(res);
      });
      out.on('error', (e) => refuse(res, 500, 'InternalError', e.message));
      out.end(body);
    })().catch((e: unknown) => refuse(res, 500, 'InternalError', e instanceof Error ? e.message : String(e)));
  };
  const front: Server | HttpsServer = opts.tls === undefined ? createServer(handle) : createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, handle);
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const addr = front.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    endpoint: opts.tls === undefined ? `http://s3.localhost:${port}` : `https://127.0.0.1:${port}`,
    region,
    accessKeyId,
    secretAccessKey,
    requests,
    refused,
    stop: async () => {
      front.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
