import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProxyError } from '../net/proxy-error.js';
import { tlsProblem } from '../net/tls-problem.js';
import { proxiedGlobalFetch } from '../net/proxy-fetch.js';
import { uriEncode } from '../s3/sigv4.js';
import { unescapeXml } from '../s3/xml.js';
import { AzblobError, type AzblobErrorDetail } from './errors.js';
import { sharedKeyAuthorization } from './shared-key.js';

/**
 * How requests are authorized: signed with an account key (Shared Key), or carrying a SAS token
 * (the query string of a shared access signature, `sv=…&sig=…`) and no Authorization header.
 */
export type AzureCredential = { readonly kind: 'shared-key'; readonly key: string } | { readonly kind: 'sas'; readonly token: string };

/** Options of an {@link AzblobClient}. */
export interface AzblobClientOptions {
  /** The account's blob endpoint, without a query: `https://ACCOUNT.blob.core.windows.net`, or an emulator's `http://127.0.0.1:10000/ACCOUNT`. */
  readonly accountUrl: string;
  /** The account a Shared Key signature names. */
  readonly accountName: string;
  readonly container: string;
  /** Asked once, on the first request; the secret lives in the closure only. */
  readonly credential: () => AzureCredential;
  /** Blobs up to this size go in one Put Blob, larger ones as blocks of it (default 16 MiB). */
  readonly blockSize?: number;
}

/** A blob to upload: its size and a way to read it (again, on a retry). */
export interface AzblobBody {
  readonly size: number;
  readonly open: () => Promise<AsyncIterable<Uint8Array>> | AsyncIterable<Uint8Array>;
}

interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT';
  /** The blob; undefined for the container itself. */
  readonly blob?: string;
  readonly query?: ReadonlyArray<readonly [string, string]>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  readonly signal?: AbortSignal | undefined;
}

/** The service version of every request (the Azure SDK for Go's azblob of BuildKit v0.11 sends it too). */
const VERSION = '2020-10-02';
const MiB = 1 << 20;
const ATTEMPTS = 3;
/** Block blobs hold at most 50,000 blocks. */
const MAX_BLOCKS = 50_000;

/** The block size for a blob of `size`: `preferred`, or larger (whole MiB) when that would need more than 50,000 blocks. */
export function blockSizeFor(size: number, preferred: number): number {
  const least = Math.ceil(size / MAX_BLOCKS);
  return least <= preferred ? preferred : Math.ceil(least / MiB) * MiB;
}

/** The `n`-th block's ID: base64 of a fixed-length name, as every ID of a blob must have one length. */
export const blockId = (n: number): string => Buffer.from(`kiln-block-${String(n).padStart(6, '0')}`).toString('base64');

/**
 * A small Azure Blob Storage client for one container (the calls a BuildKit cache needs: container
 * properties and create, blob properties, get, Put Blob, Put Block and Put Block List), each
 * request signed with the account key (Shared Key) or carrying a SAS token. Requests go through
 * kiln's fetch (HTTP(S)_PROXY and NO_PROXY as Go reads them, kiln's CAs). A blob larger than one
 * block is streamed in blocks (one in memory), each with its Content-MD5, which the service checks.
 * Failed connections and 5xx answers are tried again (three attempts). Errors name the blob's URL,
 * never the key or the SAS token.
 */
export class AzblobClient {
  readonly container: string;
  readonly #base: URL;
  readonly #account: string;
  readonly #credential: () => AzureCredential;
  #cred: AzureCredential | undefined;
  readonly #blockSize: number;

  constructor(opts: AzblobClientOptions) {
    this.container = opts.container;
    this.#base = new URL(opts.accountUrl);
    this.#base.search = '';
    this.#account = opts.accountName;
    this.#credential = opts.credential;
    this.#blockSize = opts.blockSize ?? 16 * MiB;
  }

  /** The URL of a blob (of the container without one), for messages: names as they are, no SAS token. */
  describe(blob?: string): string {
    return `${this.#base.origin}${this.#base.pathname.replace(/\/+$/, '')}/${this.container}${blob === undefined ? '' : `/${blob}`}`;
  }

  /**
   * Checks that the container exists (Get Container Properties); with `create`, a missing one is
   * made (BuildKit's exporter does so). A SAS token that may not read the container's properties
   * (a container SAS for blobs) is let through: the blob requests say whether it works.
   */
  async ensureContainer(create: boolean, signal?: AbortSignal): Promise<void> {
    try {
      await this.#call({ method: 'HEAD', query: [['restype', 'container']], signal });
    } catch (e) {
      if (!(e instanceof AzblobError)) throw e;
      if (e.code === 'AZBLOB_DENIED' && this.#cred?.kind === 'sas') return;
      if (e.azureCode !== 'ContainerNotFound' || !create) throw e;
      try {
        await this.#call({ method: 'PUT', query: [['restype', 'container']], signal });
      } catch (c) {
        // Another exporter made it meanwhile.
        if (!(c instanceof AzblobError && c.azureCode === 'ContainerAlreadyExists')) throw c;
      }
    }
  }

  /** Whether a blob exists (Get Blob Properties). */
  async exists(blob: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#optional({ method: 'HEAD', blob, signal })) !== undefined;
  }

  /** A blob read whole, refused past `limit` bytes; undefined when there is none. */
  async getSmall(blob: string, limit: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const res = await this.#optional({ method: 'GET', blob, signal });
    if (res === undefined) return undefined;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of bodyOf(res)) {
      n += c.length;
      if (n > limit) {
        await res.body?.cancel().catch(() => undefined);
        throw new AzblobError('AZBLOB_ERROR', `${this.describe(blob)} is larger than ${limit} bytes`);
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  /** Streams a blob (AZBLOB_NOT_FOUND when there is none). */
  async open(blob: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    return bodyOf(await this.#call({ method: 'GET', blob, signal }));
  }

  /** Writes a blob whole (Put Blob), replacing what is there: last writer wins. */
  async put(blob: string, bytes: Buffer, signal?: AbortSignal): Promise<void> {
    await this.#putBlob(blob, bytes, {}, signal);
  }

  /**
   * Writes a blob unless it exists (`If-None-Match: *`, as BuildKit uploads content-addressed
   * blobs): in one Put Blob up to the block size, else block by block and a Put Block List.
   * Returns false when the blob was there already. Blocks of an upload that fails are left
   * uncommitted, which the service discards after a week.
   */
  async putIfAbsent(blob: string, body: AzblobBody, signal?: AbortSignal): Promise<boolean> {
    const ifAbsent = { 'if-none-match': '*' };
    try {
      if (body.size <= this.#blockSize) {
        const whole = await firstBlock(await body.open(), Math.max(body.size, 1), signal);
        await this.#putBlob(blob, whole ?? Buffer.alloc(0), ifAbsent, signal);
        return true;
      }
      const ids: string[] = [];
      for await (const block of blocks(await body.open(), blockSizeFor(body.size, this.#blockSize))) {
        const id = blockId(ids.length);
        await this.#call({ method: 'PUT', blob, query: [['comp', 'block'], ['blockid', id]], body: block, headers: { 'content-md5': md5(block) }, signal });
        ids.push(id);
      }
      const list = Buffer.from(`<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`);
      await this.#call({ method: 'PUT', blob, query: [['comp', 'blocklist']], body: list, headers: { ...ifAbsent, 'content-type': 'application/xml', 'content-md5': md5(list) }, signal });
      return true;
    } catch (e) {
      // Written meanwhile by another exporter (or by this request, whose answer was lost).
      if (e instanceof AzblobError && e.azureCode === 'BlobAlreadyExists') return false;
      throw e;
    }
  }

  async #putBlob(blob: string, bytes: Buffer, headers: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<void> {
    await this.#call({ method: 'PUT', blob, body: bytes, headers: { ...headers, 'x-ms-blob-type': 'BlockBlob', 'content-type': 'application/octet-stream', 'content-md5': md5(bytes) }, signal });
  }

  /** {@link #call}, a 404 for a missing blob undefined (a missing container stays an error). */
  async #optional(c: Call): Promise<Response | undefined> {
    try {
      return await this.#call(c);
    } catch (e) {
      if (e instanceof AzblobError && e.code === 'AZBLOB_NOT_FOUND' && e.azureCode !== 'ContainerNotFound') return undefined;
      throw e;
    }
  }

  /** `/PATH-OF-ACCOUNT-URL/CONTAINER[/BLOB]`, encoded (each byte but the unreserved ones and `/`). */
  #path(blob?: string): string {
    const base = this.#base.pathname.replace(/\/+$/, '');
    return `${base}/${uriEncode(this.container)}${blob === undefined ? '' : `/${uriEncode(blob, true)}`}`;
  }

  /** One request, tried again on a failed connection or a 5xx. */
  async #call(c: Call): Promise<Response> {
    const cred = (this.#cred ??= this.#credential());
    const path = this.#path(c.blob);
    const query = c.query ?? [];
    const search = [...query.map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`), ...(cred.kind === 'sas' ? [cred.token] : [])].join('&');
    const url = `${this.#base.origin}${path}${search === '' ? '' : `?${search}`}`;
    const what = `${c.method} ${this.describe(c.blob)}`;
    for (let attempt = 1; ; attempt++) {
      c.signal?.throwIfAborted();
      const headers: Record<string, string> = { ...c.headers, 'x-ms-date': new Date().toUTCString(), 'x-ms-version': VERSION };
      if (cred.kind === 'shared-key') headers['authorization'] = sharedKeyAuthorization(this.#account, cred.key, { method: c.method, path, query, headers, ...(c.body === undefined ? {} : { contentLength: c.body.length }) });
      let res: Response;
      try {
        res = await proxiedGlobalFetch(url, { method: c.method, headers, redirect: 'error', ...(c.body === undefined ? {} : { body: c.body }), ...(c.signal === undefined ? {} : { signal: c.signal }) });
      } catch (e) {
        if (c.signal?.aborted === true) throw e;
        // The proxy is as wrong on the next attempt.
        if (e instanceof ProxyError) throw new AzblobError('AZBLOB_UNREACHABLE', `${what}: ${e.message}`, { hint: e.hint, cause: e });
        const code = networkCode(e);
        // A TLS failure (read as the registry client reads it) stays so: not tried again.
        const tls = tlsProblem(e);
        if (attempt < ATTEMPTS && tls === undefined) {
          await sleep(100 * 2 ** attempt, undefined, c.signal === undefined ? {} : { signal: c.signal });
          continue;
        }
        const host = this.#base.host;
        const untrusted = tls?.kind === 'untrusted';
        throw new AzblobError('AZBLOB_UNREACHABLE', `${what}: ${untrusted ? `the TLS certificate of ${host} is not trusted` : tls !== undefined ? `TLS with ${host} failed` : `${host} did not answer`} (${code})`, {
          hint: untrusted ? "add the endpoint's certificate authority to the system's CA store (update-ca-certificates), or name a PEM file of it in NODE_EXTRA_CA_CERTS" : 'check account_url or the network',
          cause: e,
        });
      }
      if (res.ok) return res;
      const body = c.method === 'HEAD' ? '' : await errorText(res);
      if (c.method === 'HEAD') await res.body?.cancel().catch(() => undefined);
      if (res.status >= 500 && attempt < ATTEMPTS) {
        await sleep(100 * 2 ** attempt, undefined, c.signal === undefined ? {} : { signal: c.signal });
        continue;
      }
      throw this.#error(what, res, body, cred);
    }
  }

  #error(what: string, res: Response, body: string, cred: AzureCredential): AzblobError {
    const azureCode = res.headers.get('x-ms-error-code') ?? /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
    // Azure's <Message> goes on with RequestId and Time lines (and, for a bad signature, a
    // detail with the string to sign): only its first line is quoted.
    const message = /<Message>([^<\r\n]*)/.exec(body)?.[1];
    const text = `${res.status}${azureCode === undefined ? '' : ` ${azureCode}`}${message === undefined ? '' : `: ${unescapeXml(message)}`}`;
    const detail: AzblobErrorDetail = { status: res.status, ...(azureCode === undefined ? {} : { azureCode }) };
    if (azureCode === 'ContainerNotFound') {
      return new AzblobError('AZBLOB_NOT_FOUND', `${what}: the container ${this.container} does not exist (${text})`, { ...detail, hint: `an export (--cache-to) creates it; container= names another (default buildkit-cache)` });
    }
    if (res.status === 404) return new AzblobError('AZBLOB_NOT_FOUND', `${what}: not found (${text})`, detail);
    if (res.status === 401 || res.status === 403) {
      const clock = /date|time/i.test(message ?? '') && /too old|skew|not within|in the future/i.test(body);
      const ip = /^\d+(?:\.\d+){3}$|^\[/.test(this.#base.hostname) && this.#account === this.#base.hostname.split('.')[0];
      const hint = clock
        ? "this machine's clock is off the service's by more than 15 minutes: set it right (NTP, e.g. timedatectl set-ntp true)"
        : cred.kind === 'sas'
          ? 'the SAS token in account_url was refused: check its permissions (r for --cache-from; r, w and c for --cache-to), its resource types and its expiry (se=)'
          : ip
            ? `the account name was taken from account_url's host (${this.#account}): name the account with account_name= (an emulator's is devstoreaccount1)`
            : `check secret_access_key (a key of account ${this.#account}) and the account name (account_name=, else the first label of account_url's host)`;
      return new AzblobError('AZBLOB_DENIED', `${what}: access denied (${text})`, { ...detail, hint });
    }
    return new AzblobError('AZBLOB_ERROR', `${what}: ${text}`, detail);
  }
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('base64');

/** A response's body as a Node stream (Buffers), empty when it has none. */
function bodyOf(res: Response): AsyncIterable<Buffer> {
  return res.body === null ? Readable.from([]) : Readable.fromWeb(res.body as Parameters<typeof Readable.fromWeb>[0]);
}

/** The start of an error answer (an error document is small; more is not kept). */
async function errorText(res: Response): Promise<string> {
  const head = await firstBlock(bodyOf(res), 64 * 1024).catch(() => undefined);
  await res.body?.cancel().catch(() => undefined);
  return head?.toString('utf8') ?? '';
}

/** The error code of a failed fetch (undici's TypeError wraps the socket's error as its cause), else the innermost message. */
function networkCode(e: unknown): string {
  let inner = e instanceof Error ? e.message : String(e);
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    inner = c.message;
  }
  return inner;
}

/** The first `size` bytes of a stream (fewer when it is shorter; undefined when empty): small bodies and error documents. */
async function firstBlock(src: AsyncIterable<Uint8Array>, size: number, signal?: AbortSignal): Promise<Buffer | undefined> {
  for await (const block of blocks(src, size)) {
    signal?.throwIfAborted();
    return block;
  }
  return undefined;
}

/**
 * A stream cut into blocks of `size` bytes (the last one shorter; none for an empty stream): the
 * pieces of a block are gathered and joined once it is full.
 */
async function* blocks(src: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let held = 0;
  for await (const chunk of src) {
    let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (held + rest.length >= size) {
      const take = size - held;
      yield Buffer.concat([...pending, rest.subarray(0, take)], size);
      pending = [];
      held = 0;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      pending.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield Buffer.concat(pending, held);
}

