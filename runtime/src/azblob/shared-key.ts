import { createHmac } from 'node:crypto';

/** A request to sign with an Azure Storage account key (Shared Key, Blob service, version 2009-09-19 and later). */
export interface SharedKeyRequest {
  readonly method: string;
  /** The URL path as sent, percent-encoded (signed exactly so: "encoded exactly as it is in the URI"). */
  readonly path: string;
  /** Query parameters, decoded (`restype`, `comp`, `blockid`…). */
  readonly query?: ReadonlyArray<readonly [string, string]>;
  /** Every header sent; names in any case. The standard ones and all `x-ms-*` ones are signed. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body's length (0 or absent: the empty string, as since version 2015-02-21). */
  readonly contentLength?: number;
}

/** The standard headers of the string to sign, in its order (Date stays empty: x-ms-date is sent). */
const STANDARD = ['content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date', 'if-modified-since', 'if-match', 'if-none-match', 'if-unmodified-since', 'range'] as const;

/**
 * The Shared Key string to sign of the Blob service ("Authorize with Shared Key", Azure Storage
 * REST reference): the verb, the standard header values (Content-Length empty when 0), the
 * canonicalized `x-ms-*` headers (lower-cased names, sorted, `name:value`) and the canonicalized
 * resource: `/ACCOUNT` + the encoded path, then each query parameter as `\nname:v1,v2` (names
 * lower-cased and sorted, values decoded and sorted), as the Azure SDK for Go builds it.
 */
export function sharedKeyStringToSign(account: string, req: SharedKeyRequest): string {
  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(req.headers)) headers.set(k.toLowerCase(), v);
  const length = req.contentLength === undefined || req.contentLength === 0 ? '' : String(req.contentLength);
  const standard = STANDARD.map((h) => (h === 'content-length' ? length : h === 'date' ? '' : (headers.get(h) ?? '')));
  const msHeaders = [...headers.keys()]
    .filter((k) => k.startsWith('x-ms-'))
    .sort()
    .map((k) => `${k}:${(headers.get(k) ?? '').trim()}\n`)
    .join('');
  const params = new Map<string, string[]>();
  for (const [k, v] of req.query ?? []) {
    const name = k.toLowerCase();
    params.set(name, [...(params.get(name) ?? []), v]);
  }
  const resource = [`/${account}${req.path === '' ? '/' : req.path}`, ...[...params.keys()].sort().map((k) => `${k}:${[...(params.get(k) ?? [])].sort().join(',')}`)].join('\n');
  return [req.method, ...standard, `${msHeaders}${resource}`].join('\n');
}

/**
 * The `Authorization` header of a request signed with an account key (`SharedKey ACCOUNT:SIGNATURE`,
 * the signature the base64 HMAC-SHA256 of the string to sign under the base64-decoded key).
 */
export function sharedKeyAuthorization(account: string, key: string, req: SharedKeyRequest): string {
  const signature = createHmac('sha256', Buffer.from(key, 'base64')).update(sharedKeyStringToSign(account, req), 'utf8').digest('base64');
  return `SharedKey ${account}:${signature}`;
}

/** Whether `key` reads as an account key: base64 (standard alphabet, padded), as the Go SDK's NewSharedKeyCredential decodes it. */
export function isAccountKey(key: string): boolean {
  return key.length > 0 && key.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(key);
}
