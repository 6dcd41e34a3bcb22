import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { defaultAwsCredentials, splitCsvFields, type AwsCredentialContext, type AwsCredentials } from '@kiln/runtime';
import { callerEnv, callerPath, type CliIo } from '../io.js';

/**
 * Where a command's s3 credentials come from: its caller's environment, HOME and directory (a
 * daemon's client's, not the daemon's own, as registry credentials).
 */
export function callerAwsContext(io: CliIo): AwsCredentialContext {
  const env = callerEnv(io);
  return { env, home: env['HOME'] ?? homedir(), cwd: callerPath(io, '.') };
}

/**
 * Where an s3 cache lives (BuildKit v0.11 cache/remotecache/s3 getConfig): objects
 * `PREFIX + MANIFESTS_PREFIX + NAME` (the cache config) and `PREFIX + BLOBS_PREFIX + DIGEST`.
 */
export interface S3CacheLocation {
  readonly bucket: string;
  readonly region: string;
  readonly prefix: string;
  readonly blobsPrefix: string;
  readonly manifestsPrefix: string;
  /** `name=a;b`: an export writes each, an import reads the first. */
  readonly names: readonly string[];
  readonly endpointUrl?: string;
  readonly usePathStyle: boolean;
  /** `AWS_CA_BUNDLE` of the caller's environment (a path from the caller's directory): the CAs an https endpoint is checked against. */
  readonly caBundle?: string;
  /**
   * The credentials, resolved on first use: `access_key_id`/`secret_access_key`/`session_token`
   * when both keys are given, else the caller's environment and AWS files. The secrets live in
   * this closure only, so no spec printed, logged or recorded can hold them.
   */
  readonly credentials: () => Promise<AwsCredentials>;
}

/** An s3 `--cache-to`: its location, and how blobs are uploaded. */
export interface S3CacheExport extends S3CacheLocation {
  /** Blobs uploaded at once (`upload_parallelism`, default 4). */
  readonly uploadParallelism: number;
  /** A blob already there and older than this is touched (`touch_refresh`, Go duration, default 24h). */
  readonly touchRefreshMs: number;
}

/** Attributes whose values are secrets: masked wherever a cache value is shown. */
const SECRET_ATTRS = new Set(['secret_access_key', 'session_token']);

/**
 * A `--cache-to`/`--cache-from` value for messages: secret attributes' values replaced by `xxxxx`,
 * and the signature of a SAS token (an azblob `account_url`'s `sig=`).
 */
export function redactCacheValue(value: string): string {
  const masked = value.replace(/([?&]sig=)[^&,"]*/gi, '$1xxxxx');
  // Keys are case-insensitive (the CSV parser lower-cases them, as buildx): SECRET_ACCESS_KEY= is one.
  const lower = masked.toLowerCase();
  if (![...SECRET_ATTRS].some((k) => lower.includes(k))) return masked;
  try {
    return splitCsvFields(masked)
      .map(([k, v]) => (SECRET_ATTRS.has(k) ? `${k}=xxxxx` : `${k}=${v}`))
      .join(',');
  } catch {
    return masked.replace(/((?:secret_access_key|session_token)=)[^,"]*/gi, '$1xxxxx');
  }
}

/** `s3://bucket/KEY` of the manifest an s3 location names first. */
export function s3ManifestUrl(loc: S3CacheLocation): string {
  return `s3://${loc.bucket}/${loc.prefix}${loc.manifestsPrefix}${loc.names[0] ?? ''}`;
}

const UNITS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration (`24h`, `1h30m`, `90s`) in ms; undefined when it is not one. */
export function parseGoDuration(s: string): number | undefined {
  const m = /^([-+]?)((?:\d*\.?\d+(?:ns|us|µs|μs|ms|s|m|h))+|0)$/.exec(s);
  if (m === null) return undefined;
  if (m[2] === '0') return 0;
  let ms = 0;
  for (const [, n, u] of (m[2] as string).matchAll(/(\d*\.?\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(n) * (UNITS[u as string] ?? 0);
  return m[1] === '-' ? -ms : ms;
}

/** strconv.ParseBool. */
const goBool = (v: string): boolean | undefined => (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v) ? true : ['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v) ? false : undefined);

/**
 * The s3 attributes of a cache value, as BuildKit v0.11's getConfig reads them: `bucket` (else
 * `AWS_BUCKET`) and `region` (else `AWS_REGION`) required; `prefix`, `manifests_prefix` (default
 * `manifests/`), `blobs_prefix` (`blobs/`), `name` (`;`-separated, default `buildkit`),
 * `endpoint_url`, `use_path_style`, the credentials; for an export `upload_parallelism` (a
 * positive integer) and `touch_refresh`. A malformed boolean or duration is ignored, as there.
 * Returns why the value is unusable instead of throwing (an export's error, an import's warning).
 */
export function parseS3Attrs(a: ReadonlyMap<string, string>, aws: AwsCredentialContext | undefined, exporting: boolean): S3CacheExport | string {
  const env = aws?.env ?? process.env;
  const bucket = a.get('bucket') ?? env['AWS_BUCKET'];
  if (bucket === undefined) return 'type=s3 needs bucket= (or AWS_BUCKET)';
  const region = a.get('region') ?? env['AWS_REGION'];
  if (region === undefined) return 'type=s3 needs region= (or AWS_REGION)';
  const name = a.get('name');
  const names = name === undefined ? ['buildkit'] : name.split(';');
  const par = a.get('upload_parallelism');
  let uploadParallelism = 4;
  if (exporting && par !== undefined) {
    if (!/^[+-]?\d+$/.test(par) || Number(par) <= 0) return 'upload_parallelism must be a positive integer';
    uploadParallelism = Number(par);
  }
  const touch = a.get('touch_refresh');
  const touchRefreshMs = (touch === undefined ? undefined : parseGoDuration(touch)) ?? 24 * 3_600_000;
  const endpointUrl = a.get('endpoint_url');
  const id = a.get('access_key_id') ?? '';
  const secret = a.get('secret_access_key') ?? '';
  const token = a.get('session_token') ?? '';
  const ctx: AwsCredentialContext = aws ?? { env: process.env, home: homedir(), cwd: process.cwd() };
  const ca = ctx.env['AWS_CA_BUNDLE'];
  // BuildKit takes static credentials only when both keys are given; otherwise the SDK's chain.
  const credentials = id !== '' && secret !== '' ? () => Promise.resolve({ accessKeyId: id, secretAccessKey: secret, ...(token === '' ? {} : { sessionToken: token }) }) : () => defaultAwsCredentials(ctx);
  return {
    bucket,
    region,
    prefix: a.get('prefix') ?? '',
    manifestsPrefix: a.get('manifests_prefix') ?? 'manifests/',
    blobsPrefix: a.get('blobs_prefix') ?? 'blobs/',
    names,
    ...(endpointUrl === undefined || endpointUrl === '' ? {} : { endpointUrl }),
    usePathStyle: goBool(a.get('use_path_style') ?? '') ?? false,
    ...(ca === undefined || ca === '' ? {} : { caBundle: resolve(ctx.cwd, ca) }),
    credentials,
    uploadParallelism,
    touchRefreshMs,
  };
}
