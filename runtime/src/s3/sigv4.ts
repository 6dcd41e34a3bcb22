import { createHash, createHmac } from 'node:crypto';

/** AWS credentials a request is signed with. The secret and the token never leave this module's signing. */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Temporary credentials' token, sent as `x-amz-security-token` (and signed). */
  readonly sessionToken?: string;
}

/** A request to sign (AWS Signature Version 4, header form). */
export interface SigV4Request {
  readonly method: string;
  /** The Host header as sent: name, and `:port` when not the scheme's default. */
  readonly host: string;
  /** The path as sent, already percent-encoded (S3 signs it as is, without a second encoding). */
  readonly path: string;
  /** Query parameters, decoded; encoded and sorted here. */
  readonly query?: ReadonlyArray<readonly [string, string]>;
  /** Headers to sign besides `host` and `x-amz-date` (names in any case). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Hex sha256 of the body, or `UNSIGNED-PAYLOAD`. */
  readonly payloadHash: string;
  readonly region: string;
  readonly service: string;
  readonly date: Date;
}

/** What {@link signV4} computed: the headers to send and, for tests, the intermediate strings. */
export interface SigV4Signature {
  /** Headers to add to the request (`authorization`, `x-amz-date`, the token), lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly canonicalRequest: string;
  readonly stringToSign: string;
  readonly signature: string;
}

/** sha256 of the empty body, the payload hash of GET and HEAD. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const hex = (b: Buffer): string => b.toString('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/**
 * URI-encodes as SigV4 wants it: every byte but the unreserved `A-Z a-z 0-9 - . _ ~` as `%XX`
 * (upper-case hex); `/` kept when `keepSlash` (object keys in paths).
 */
export function uriEncode(s: string, keepSlash = false): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The canonical query string: names and values encoded, sorted by name, then value. */
export function canonicalQuery(query: ReadonlyArray<readonly [string, string]>): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** `20130524T000000Z`, the form of `x-amz-date`. */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Signs a request with AWS Signature Version 4 (the `Authorization` header form): canonical
 * request, string to sign over the credential scope `DATE/REGION/SERVICE/aws4_request`, and the
 * HMAC chain from `AWS4` + secret. Every header given is signed, with `host`, `x-amz-date` and,
 * for temporary credentials, `x-amz-security-token`.
 */
export function signV4(req: SigV4Request, creds: AwsCredentials): SigV4Signature {
  const date = amzDate(req.date);
  const day = date.slice(0, 8);
  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k.toLowerCase(), v);
  headers.set('host', req.host);
  headers.set('x-amz-date', date);
  if (creds.sessionToken !== undefined && creds.sessionToken !== '') headers.set('x-amz-security-token', creds.sessionToken);
  const names = [...headers.keys()].sort();
  // Values trimmed, inner runs of spaces folded (the canonical header rule).
  const canonicalHeaders = names.map((n) => `${n}:${(headers.get(n) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [req.method, req.path, canonicalQuery(req.query ?? []), canonicalHeaders, signedHeaders, req.payloadHash].join('\n');
  const scope = `${day}/${req.region}/${req.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, hex(createHash('sha256').update(canonicalRequest, 'utf8').digest())].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), req.region), req.service), 'aws4_request');
  const signature = hex(hmac(key, stringToSign));
  const out: Record<string, string> = {
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    'x-amz-date': date,
  };
  const token = headers.get('x-amz-security-token');
  if (token !== undefined) out['x-amz-security-token'] = token;
  return { headers: out, canonicalRequest, stringToSign, signature };
}
