import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { LookupFunction } from 'node:net';
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup as dnsLookup } from 'node:dns';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { proxyFailure, proxyRouter } from '../net/proxy-dispatcher.js';
import { ProxyError } from '../net/proxy-error.js';
import { escapeXml, unescapeXml } from './xml.js';
import { proxyFor } from '../net/proxy-env.js';
import { trustedSecureContext } from '../net/trust.js';
import type { TlsSettings } from '../net/undici.js';
import { S3Error } from './errors.js';
import { EMPTY_SHA256, signV4, uriEncode, type AwsCredentials } from './sigv4.js';

/**
 * aws.isVirtualHostableS3Bucket of the SDKs' S3 endpoint rules: 3 to 63 lower-case letters, digits
 * and `-`, starting and ending with a letter or digit, not an IP address; dots (each label so) only
 * when `allowDots` (plain http, where no certificate has to match).
 */
export function virtualHostable(bucket: string, allowDots: boolean): boolean {
  if (bucket.length < 3 || bucket.length > 63 || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return false;
  const label = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
  return allowDots ? bucket.split('.').every((l) => label.test(l)) : label.test(bucket);
}

/** AWS's S3 endpoint of a region: its partition's domain (`amazonaws.com.cn` for the China regions). */
export function awsEndpoint(region: string): string {
  return `https://s3.${region}.${region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com'}`;
}

/** S3's most parts in one multipart upload. */
const MAX_PARTS = 10_000;

/** The part size for a body of `size`: `preferred`, or larger (whole MiB) when that would need more than 10,000 parts. */
export function multipartPartSize(size: number, preferred: number): number {
  const least = Math.ceil(size / MAX_PARTS);
  return least <= preferred ? preferred : Math.ceil(least / MiB) * MiB;
}

/** Options of an {@link S3Client}. */
export interface S3ClientOptions {
  readonly bucket: string;
  readonly region: string;
  /** An S3-compatible service (`http://127.0.0.1:9000`); default AWS's `https://s3.REGION.amazonaws.com`. */
  readonly endpointUrl?: string;
  /** `https://HOST/BUCKET/KEY` instead of `https://BUCKET.HOST/KEY` (only with `endpointUrl`, as BuildKit's s3 client). */
  readonly usePathStyle?: boolean;
  /** Called once, on the first request (a missing key fails the request that needs it, not before). */
  readonly credentials: () => Promise<AwsCredentials>;
  /**
   * A PEM file of the certificate authorities an https endpoint is checked against instead of the
   * system's (`AWS_CA_BUNDLE`, as the AWS SDKs read it); read on the first request.
   */
  readonly caBundle?: string;
  /** Bodies larger than this go as a multipart upload (default 64 MiB). */
  readonly multipartThreshold?: number;
  /** Part size of multipart uploads (default 16 MiB; S3's least is 5 MiB but for the last part). */
  readonly partSize?: number;
}

/** A body to upload: its size, sha256 (hex) when known, and a way to read it (again, on a retry). */
export interface S3Body {
  readonly size: number;
  readonly sha256?: string;
  readonly open: () => Promise<AsyncIterable<Uint8Array>> | AsyncIterable<Uint8Array>;
}

interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  readonly key: string;
  readonly query?: ReadonlyArray<readonly [string, string]>;
  readonly headers?: Readonly<Record<string, string>>;
  /** A body given whole, or streamed (then `payloadHash` is its sha256 or UNSIGNED-PAYLOAD). */
  readonly body?: Uint8Array | S3Body;
  readonly signal?: AbortSignal | undefined;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
}

const MiB = 1 << 20;
const ATTEMPTS = 3;

/**
 * `*.localhost` names are the loopback address (RFC 6761, as curl and browsers resolve them): a
 * virtual-hosted bucket of an endpoint on `localhost` (`BUCKET.localhost:9000`) needs no DNS entry.
 */
const loopbackLookup: LookupFunction = (host, opts, cb) => {
  if (host === 'localhost' || host.endsWith('.localhost')) {
    if (opts.all === true) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
    else cb(null, '127.0.0.1', 4);
    return;
  }
  dnsLookup(host, opts, cb);
};

/**
 * A small S3 client (the calls a BuildKit cache needs: HEAD, GET, PUT, copy, multipart upload),
 * every request signed with AWS Signature Version 4. Bodies are streamed: a blob is sent with its
 * known sha256 as the payload hash (S3 checks it), a large one in parts of {@link S3ClientOptions.partSize}
 * (only one part is held in memory). Requests that fail to connect or get a 5xx are tried again
 * (three attempts, as the AWS SDKs' standard retryer). Errors name `s3://bucket/key`, never a secret.
 */
export class S3Client {
  readonly bucket: string;
  readonly region: string;
  readonly #base: URL;
  readonly #pathStyle: boolean;
  readonly #credentials: () => Promise<AwsCredentials>;
  #creds: Promise<AwsCredentials> | undefined;
  readonly #threshold: number;
  readonly #partSize: number;
  readonly #caBundle: string | undefined;
  #ca: Promise<Buffer> | undefined;
  /** The CA bundle as TLS settings of proxied requests (one object: the proxy router is kept per settings). */
  #proxyTls: TlsSettings | undefined;
  /** S3's clock minus ours (ms), learnt from a RequestTimeTooSkewed answer, as the AWS SDKs correct it. */
  #clockOffset = 0;

  constructor(opts: S3ClientOptions) {
    this.bucket = opts.bucket;
    this.region = opts.region;
    const endpoint = opts.endpointUrl !== undefined && opts.endpointUrl !== '' ? opts.endpointUrl : undefined;
    this.#base = new URL(endpoint === undefined ? awsEndpoint(opts.region) : /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`);
    // As the AWS SDKs' endpoint rules: a bucket that is no host name (upper case, `_`; a host name
    // is lower-cased on the way, which names another bucket) or whose dots do not fit the TLS
    // wildcard certificate (https), or an endpoint that is an IP address, is addressed by path.
    const ip = /^\d+\.\d+\.\d+\.\d+$|^\[/.test(this.#base.hostname);
    this.#pathStyle = (endpoint !== undefined && opts.usePathStyle === true) || ip || !virtualHostable(opts.bucket, this.#base.protocol === 'http:');
    this.#credentials = opts.credentials;
    this.#caBundle = opts.caBundle === '' ? undefined : opts.caBundle;
    this.#threshold = opts.multipartThreshold ?? 64 * MiB;
    this.#partSize = opts.partSize ?? 16 * MiB;
  }

  /** `s3://bucket/key`, for messages. */
  describe(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** Size and modification time of an object; undefined when there is none. */
  async head(key: string, signal?: AbortSignal): Promise<{ size: number; lastModified: Date } | undefined> {
    const a = await this.#call({ method: 'HEAD', key, signal }, true);
    if (a === undefined) return undefined;
    a.body.resume();
    return { size: Number(a.headers['content-length'] ?? 0), lastModified: new Date(String(a.headers['last-modified'] ?? '')) };
  }

  /** An object read whole, refused past `limit` bytes; undefined when there is none. */
  async getSmall(key: string, limit: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const a = await this.#call({ method: 'GET', key, signal }, true);
    if (a === undefined) return undefined;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of a.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > limit) {
        a.body.destroy();
        throw new S3Error('S3_ERROR', `${this.describe(key)} is larger than ${limit} bytes`);
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  /** Streams an object (S3_NOT_FOUND when there is none). */
  async open(key: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const a = await this.#call({ method: 'GET', key, signal });
    return a.body;
  }

  /** Writes an object: in one request, or as a multipart upload above the threshold. */
  async put(key: string, body: Uint8Array | S3Body, signal?: AbortSignal): Promise<void> {
    if (body instanceof Uint8Array || body.size <= this.#threshold) {
      (await this.#call({ method: 'PUT', key, body, headers: { 'content-type': 'application/octet-stream' }, signal })).body.resume();
      return;
    }
    await this.#multipart(key, body, signal);
  }

  /**
   * Copies an object onto itself with new metadata (`updated-at`), which renews its modification
   * time (BuildKit's `touch`, so lifecycle rules that expire old objects keep blobs still in use).
   */
  async touch(key: string, signal?: AbortSignal): Promise<void> {
    const a = await this.#call({
      method: 'PUT',
      key,
      headers: { 'x-amz-copy-source': `/${uriEncode(this.bucket)}/${uriEncode(key, true)}`, 'x-amz-metadata-directive': 'REPLACE', 'x-amz-meta-updated-at': new Date().toISOString() },
      signal,
    });
    await this.#checkBodyError(a, key);
  }

  async #multipart(key: string, body: S3Body, signal?: AbortSignal): Promise<void> {
    const init = await this.#call({ method: 'POST', key, query: [['uploads', '']], headers: { 'content-type': 'application/octet-stream' }, signal });
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await text(init.body))?.[1];
    if (uploadId === undefined) throw new S3Error('S3_ERROR', `${this.describe(key)}: CreateMultipartUpload answered without an UploadId`);
    try {
      const parts: string[] = [];
      let n = 0;
      for await (const chunk of fixedChunks(await body.open(), multipartPartSize(body.size, this.#partSize))) {
        n++;
        const a = await this.#call({ method: 'PUT', key, query: [['partNumber', String(n)], ['uploadId', uploadId]], body: chunk, signal });
        a.body.resume();
        const etag = a.headers['etag'];
        if (typeof etag !== 'string') throw new S3Error('S3_ERROR', `${this.describe(key)}: part ${n} was stored without an ETag`);
        parts.push(etag);
      }
      const xml = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(e)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const done = await this.#call({ method: 'POST', key, query: [['uploadId', uploadId]], body: Buffer.from(xml), headers: { 'content-type': 'application/xml' }, signal });
      // CompleteMultipartUpload can answer 200 with an <Error> body.
      await this.#checkBodyError(done, key);
    } catch (e) {
      await this.#call({ method: 'DELETE', key, query: [['uploadId', uploadId]] }, true).then((a) => a?.body.resume(), () => undefined);
      throw e;
    }
  }

  async #checkBodyError(a: Answer, key: string): Promise<void> {
    const t = await text(a.body);
    if (/<Error>/.test(t)) throw this.#error(key, a.status, t);
  }

  /** One request, tried again on a failed connection or a 5xx. `missingOk`: a 404 is undefined. */
  async #call(c: Call, missingOk: true): Promise<Answer | undefined>;
  async #call(c: Call, missingOk?: false): Promise<Answer>;
  async #call(c: Call, missingOk = false): Promise<Answer | undefined> {
    let skewed = false;
    for (let attempt = 1; ; attempt++) {
      c.signal?.throwIfAborted();
      let a: Answer;
      try {
        a = await this.#send(c);
      } catch (e) {
        // The proxy is as wrong on the next attempt.
        if (e instanceof ProxyError) throw new S3Error('S3_UNREACHABLE', `${c.method} ${this.describe(c.key)}: ${e.message}`, { hint: e.hint, cause: e });
        const code = (e as NodeJS.ErrnoException).code;
        // A certificate that is not trusted stays so: not tried again (nor is kiln's own error).
        const untrusted = /CERT|SSL|TLS|ISSUER|LEAF_SIGNATURE/.test(code ?? '');
        if (c.signal?.aborted === true || attempt >= ATTEMPTS || untrusted || e instanceof S3Error) {
          if (e instanceof S3Error || c.signal?.aborted === true) throw e;
          const why = untrusted ? `the TLS certificate of ${this.#base.host} is not trusted` : `${this.#base.host} did not answer`;
          throw new S3Error('S3_UNREACHABLE', `${c.method} ${this.describe(c.key)}: ${why} (${code ?? (e instanceof Error ? e.message : String(e))})`, {
            hint: untrusted ? "the endpoint's certificate is not trusted: AWS_CA_BUNDLE=FILE names a PEM file of its certificate authorities" : 'check endpoint_url (and use_path_style) or the network',
            cause: e,
          });
        }
        await sleep(100 * 2 ** attempt, undefined, c.signal === undefined ? {} : { signal: c.signal });
        continue;
      }
      if (a.status >= 200 && a.status < 300) return a;
      let body = c.method === 'HEAD' ? '' : await text(a.body).catch(() => '');
      if (c.method === 'HEAD') {
        a.body.resume();
        // A HEAD answer has no body, so no error code: the same request as a one-byte GET says
        // why (SignatureDoesNotMatch, AccessDenied, a region redirect).
        if (a.status !== 404 && a.status < 500) body = await this.#send({ ...c, method: 'GET', headers: { ...c.headers, range: 'bytes=0-0' } }).then((g) => text(g.body), () => '');
      }
      if (a.status === 404 && missingOk && !/<Code>NoSuchBucket<\/Code>/.test(body)) return undefined;
      // A clock more than 15 minutes off: S3 says its time (<ServerTime>, else the Date header);
      // signed again with that offset once, as the AWS SDKs do (BuildKit's build goes on there).
      if (!skewed && /<Code>RequestTimeTooSkewed<\/Code>/.test(body)) {
        const server = Date.parse(/<ServerTime>([^<]*)<\/ServerTime>/.exec(body)?.[1] ?? String(a.headers['date'] ?? ''));
        if (!Number.isNaN(server)) {
          skewed = true;
          this.#clockOffset = server - Date.now();
          continue;
        }
      }
      if (a.status >= 500 && attempt < ATTEMPTS) {
        await sleep(100 * 2 ** attempt, undefined, c.signal === undefined ? {} : { signal: c.signal });
        continue;
      }
      throw this.#error(c.key, a.status, body, c.method, a.headers['x-amz-bucket-region']);
    }
  }

  #error(key: string, status: number, body: string, method?: string, bucketRegion?: string | string[]): S3Error {
    const s3Code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
    const msg = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
    const what = `${method === undefined ? '' : `${method} `}${this.describe(key)}`;
    const detail = `${status}${s3Code === undefined ? '' : ` ${s3Code}`}${msg === undefined ? '' : `: ${unescapeXml(msg)}`}`;
    const opts = { status, ...(s3Code === undefined ? {} : { s3Code }) };
    if (status === 404) return new S3Error('S3_NOT_FOUND', `${what}: not found (${detail})`, { ...opts, ...(s3Code === 'NoSuchBucket' ? { hint: `create the bucket ${this.bucket} first` } : {}) });
    if (s3Code === 'RequestTimeTooSkewed') {
      return new S3Error('S3_DENIED', `${what}: ${detail}`, { ...opts, hint: "this machine's clock is more than 15 minutes off S3's: set it right (NTP, e.g. timedatectl set-ntp true)" });
    }
    if (status === 403 || status === 401) {
      return new S3Error('S3_DENIED', `${what}: access denied (${detail})`, {
        ...opts,
        hint: 'check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ~/.aws/credentials, or access_key_id=/secret_access_key=) and their permissions on the bucket',
      });
    }
    if (status === 301 || s3Code === 'PermanentRedirect' || s3Code === 'AuthorizationHeaderMalformed') {
      // S3 names the bucket's region in x-amz-bucket-region (a HEAD's 301 has nothing else).
      const region = typeof bucketRegion === 'string' && bucketRegion !== '' ? bucketRegion : undefined;
      const hint = region === undefined ? `the bucket may be in another region than ${this.region}: set region=` : `the bucket is in ${region}, not ${this.region}: set region=${region}`;
      return new S3Error('S3_ERROR', `${what}: ${detail}`, { ...opts, hint });
    }
    return new S3Error('S3_ERROR', `${what}: ${detail}`, opts);
  }

  #url(key: string, query: ReadonlyArray<readonly [string, string]>): { url: URL; path: string } {
    const basePath = this.#base.pathname.replace(/\/+$/, '');
    const url = new URL(this.#base.href);
    const path = this.#pathStyle ? `${basePath}/${uriEncode(this.bucket)}/${uriEncode(key, true)}` : `${basePath}/${uriEncode(key, true)}`;
    if (!this.#pathStyle) url.hostname = `${this.bucket}.${url.hostname}`;
    // The path is sent as signed (see #send), not through URL's pathname, which would resolve
    // `.`/`..` segments of a key and so ask for (and sign) another object.
    url.search = query.map(([k, v]) => (v === '' ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`)).join('&');
    return { url, path };
  }

  async #send(c: Call): Promise<Answer> {
    const creds = await (this.#creds ??= this.#credentials());
    const { url, path } = this.#url(c.key, c.query ?? []);
    const bundle = this.#caBundle;
    const ca =
      bundle === undefined || url.protocol !== 'https:'
        ? undefined
        : await (this.#ca ??= readFile(bundle).catch((e: unknown) => {
            throw new S3Error('S3_ERROR', `AWS_CA_BUNDLE ${bundle} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { hint: 'name a PEM file of certificate authorities, or unset AWS_CA_BUNDLE' });
          }));
    const whole = c.body instanceof Uint8Array ? c.body : undefined;
    const stream = c.body !== undefined && !(c.body instanceof Uint8Array) ? c.body : undefined;
    const payloadHash = whole !== undefined ? createHash('sha256').update(whole).digest('hex') : stream !== undefined ? (stream.sha256 ?? 'UNSIGNED-PAYLOAD') : EMPTY_SHA256;
    const signed = { ...c.headers, 'x-amz-content-sha256': payloadHash };
    const sig = signV4({ method: c.method, host: url.host, path, query: c.query ?? [], headers: signed, payloadHash, region: this.region, service: 's3', date: new Date(Date.now() + this.#clockOffset) }, creds);
    const length = whole?.length ?? stream?.size;
    const headers: OutgoingHttpHeaders = { ...signed, ...sig.headers, host: url.host, ...(length === undefined ? (c.method === 'PUT' || c.method === 'POST' ? { 'content-length': 0 } : {}) : { 'content-length': length }) };
    // HTTP(S)_PROXY and NO_PROXY of this process, as the AWS SDK's transport reads them (Go's rules).
    const proxy = proxyFor(url);
    const body = stream === undefined ? undefined : await stream.open();
    if (proxy !== undefined) return this.#sendProxied(url, path, c, headers, whole ?? body, ca);
    return new Promise<Answer>((resolve, reject) => {
      const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
      const target = {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        ...(url.port === '' ? {} : { port: Number(url.port) }),
        path: `${path}${url.search}`,
      };
      // https: AWS_CA_BUNDLE alone (as `ca`, which also keys the agent's pooled connections apart),
      // else kiln's CAs (Node's, the system's: see trust.ts), one context for every connection.
      const trust = url.protocol !== 'https:' ? {} : ca === undefined ? { secureContext: trustedSecureContext() } : { ca };
      const req = send({ ...target, method: c.method, headers, lookup: loopbackLookup, ...trust, ...(c.signal === undefined ? {} : { signal: c.signal }) }, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.on('error', reject);
      if (whole !== undefined) req.end(whole);
      else if (body !== undefined) {
        void (async () => {
          try {
            // S3 may answer (an error) and close before the body is sent: then stop reading it
            // (leaving the loop closes the source), rather than wait for a drain that never comes.
            for await (const chunk of body) {
              if (req.destroyed) break;
              if (!req.write(chunk)) await drainOrClose(req);
            }
            if (!req.destroyed) req.end();
          } catch (e) {
            req.destroy(e instanceof Error ? e : new Error(String(e)));
          }
        })();
      } else req.end();
    });
  }

  /** {@link #send} through the environment's proxy: undici's request (the signed path sent as it is). */
  async #sendProxied(url: URL, path: string, c: Call, headers: OutgoingHttpHeaders, body: Uint8Array | AsyncIterable<Uint8Array> | undefined, ca: Buffer | undefined): Promise<Answer> {
    // The bundle replaces the system's CAs, as on the direct path (Node's `ca`), for the proxy's TLS too.
    const tls = ca === undefined ? undefined : (this.#proxyTls ??= { ca: [ca.toString('utf8')], caOnly: true });
    const dispatcher = await proxyRouter(tls);
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : String(v);
    try {
      const res = await dispatcher.request({ origin: url.origin, path: `${path}${url.search}`, method: c.method, headers: h, ...(body === undefined ? {} : { body: body instanceof Uint8Array ? body : Readable.from(body, { objectMode: false }) }), ...(c.signal === undefined ? {} : { signal: c.signal }) });
      return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body };
    } catch (e) {
      throw proxyFailure(e, url) ?? e;
    }
  }
}

/** Resolves when a request can take more body, or is gone. */
function drainOrClose(req: ClientRequest): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

/** Re-chunks a stream into buffers of exactly `size` bytes (the last one shorter, never empty but for an empty stream). */
async function* fixedChunks(src: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.alloc(size);
  let n = 0;
  let any = false;
  for await (const c of src) {
    let off = 0;
    while (off < c.length) {
      const take = Math.min(size - n, c.length - off);
      buf.set(c.subarray(off, off + take), n);
      n += take;
      off += take;
      if (n === size) {
        any = true;
        yield buf;
        buf = Buffer.alloc(size);
        n = 0;
      }
    }
  }
  if (n > 0 || !any) yield buf.subarray(0, n);
}

async function text(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    // An error document is small; a longer body is not kept.
    if ((n += c.length) <= 64 * 1024) chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

