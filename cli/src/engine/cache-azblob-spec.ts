import { isAccountKey, type AzureCredential } from '@kiln/runtime';

/**
 * Where an azblob cache lives (BuildKit v0.11 cache/remotecache/azblob getConfig): blobs
 * `PREFIX/MANIFESTS_PREFIX/NAME` (the cache config) and `PREFIX/BLOBS_PREFIX/DIGEST` of a
 * container, the parts joined as Go's filepath.Join joins them.
 */
export interface AzblobCacheLocation {
  /** The account's blob endpoint, without its query (a SAS token there goes to `credential`). */
  readonly accountUrl: string;
  readonly accountName: string;
  readonly container: string;
  readonly prefix: string;
  readonly blobsPrefix: string;
  readonly manifestsPrefix: string;
  /** `name=a;b`: an export writes each, an import reads each (BuildKit's azblob importer loads them all). */
  readonly names: readonly string[];
  /**
   * The account key or the SAS token. The secret lives in this closure only, so no spec printed,
   * logged or recorded can hold it.
   */
  readonly credential: () => AzureCredential;
}

/** An azblob `--cache-to`: its location (BuildKit's azblob exporter has no attributes of its own). */
export type AzblobCacheExport = AzblobCacheLocation;

/** Why azblob attributes are unusable, and what to do. */
export interface AzblobSpecError {
  readonly why: string;
  readonly hint: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Go's filepath.Join on Linux: the non-empty parts joined with `/` and cleaned (no empty or `.`
 * segments, `..` taking the one before it away, no trailing slash).
 */
export function goPathJoin(...parts: readonly string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  if (joined === '') return '';
  const rooted = joined.startsWith('/');
  const out: string[] = [];
  for (const seg of joined.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg !== '..') out.push(seg);
    else if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (!rooted) out.push('..');
  }
  const path = `${rooted ? '/' : ''}${out.join('/')}`;
  return path === '' ? '.' : path;
}

/** The blob holding a cache config (utils.go manifestKey). */
export const azblobManifestKey = (loc: Pick<AzblobCacheLocation, 'prefix' | 'manifestsPrefix'>, name: string): string => goPathJoin(loc.prefix, loc.manifestsPrefix, name);

/** The blob holding a layer (utils.go blobKey). */
export const azblobBlobKey = (loc: Pick<AzblobCacheLocation, 'prefix' | 'blobsPrefix'>, digest: string): string => goPathJoin(loc.prefix, loc.blobsPrefix, digest);

/** `ACCOUNT_URL/CONTAINER/KEY` of the manifest an azblob location names first (no SAS token). */
export function azblobManifestUrl(loc: AzblobCacheLocation): string {
  return `${loc.accountUrl.replace(/\/+$/, '')}/${loc.container}/${azblobManifestKey(loc, loc.names[0] ?? '')}`;
}

/** Azure's container names: 3 to 63 lower-case letters, digits and single hyphens inside, or `$root`. */
const CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*$|^\$root$/;

/**
 * The azblob attributes of a cache value, as BuildKit v0.11's getConfig reads them: `account_url`
 * (else `BUILDKIT_AZURE_STORAGE_ACCOUNT_URL`) required; `account_name` (else
 * `BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME`, else the first label of the URL's host), `container`
 * (else `BUILDKIT_AZURE_STORAGE_CONTAINER`, else `buildkit-cache`), `prefix` (else
 * `BUILDKIT_AZURE_STORAGE_PREFIX`), `manifests_prefix` (`manifests`), `blobs_prefix` (`blobs`),
 * `name` (`;`-separated, default `buildkit`) and `secret_access_key`. The variables are the
 * caller's (`env`), as the s3 cache's. Without a key, a SAS token in `account_url` authorizes the
 * requests (BuildKit would ask DefaultAzureCredential: Azure AD, which kiln does not). Returns why
 * the value is unusable instead of throwing (an export's error, an import's warning).
 */
export function parseAzblobAttrs(a: ReadonlyMap<string, string>, env: Env): AzblobCacheLocation | AzblobSpecError {
  const given = a.get('account_url') ?? env['BUILDKIT_AZURE_STORAGE_ACCOUNT_URL'];
  if (given === undefined) return { why: 'type=azblob needs account_url= (or BUILDKIT_AZURE_STORAGE_ACCOUNT_URL)', hint: 'e.g. account_url=https://ACCOUNT.blob.core.windows.net' };
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    url = new URL('invalid:');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return { why: `account_url is not an http(s) URL`, hint: 'e.g. account_url=https://ACCOUNT.blob.core.windows.net (an emulator: http://127.0.0.1:10000/devstoreaccount1)' };
  }
  // utils.go: the first label of the host (an IP address gives its first number: account_name= then).
  const accountName = a.get('account_name') ?? env['BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME'] ?? url.hostname.split('.')[0] ?? '';
  if (accountName === '') return { why: 'no account name in account_url, account_name= or BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME', hint: 'set account_name=ACCOUNT' };
  const container = a.get('container') ?? env['BUILDKIT_AZURE_STORAGE_CONTAINER'] ?? 'buildkit-cache';
  if (!CONTAINER.test(container)) return { why: `container ${JSON.stringify(container)} is no Azure container name`, hint: 'a container name is 3 to 63 lower-case letters, digits and single hyphens, starting with a letter or digit (default buildkit-cache)' };
  const name = a.get('name');
  const loc: Omit<AzblobCacheLocation, 'credential'> = {
    accountUrl: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
    accountName,
    container,
    prefix: a.get('prefix') ?? env['BUILDKIT_AZURE_STORAGE_PREFIX'] ?? '',
    manifestsPrefix: a.get('manifests_prefix') ?? 'manifests',
    blobsPrefix: a.get('blobs_prefix') ?? 'blobs',
    names: name === undefined ? ['buildkit'] : name.split(';'),
  };
  // A key that climbs out of the container (`..`) would address another one: the URL resolves it.
  const keys = [...loc.names.map((n) => azblobManifestKey(loc, n)), azblobBlobKey(loc, 'sha256:0')];
  const outside = keys.find((k) => k === '' || k === '.' || k === '..' || k.startsWith('../'));
  if (outside !== undefined) return { why: `${JSON.stringify(outside)} names no blob in the container`, hint: 'remove the ".." from prefix=, manifests_prefix=, blobs_prefix= or name=' };
  const key = a.get('secret_access_key') ?? '';
  const sas = url.search.replace(/^\?/, '');
  if (key !== '' && sas !== '') return { why: 'account_url carries a query (a SAS token) and secret_access_key= is given', hint: 'authorize with one of them: the account key, or the SAS token in account_url' };
  if (key !== '') {
    if (!isAccountKey(key)) return { why: 'secret_access_key is not an account key (base64)', hint: 'give key1 or key2 of the storage account (az storage account keys list), as it is shown' };
    return { ...loc, credential: () => ({ kind: 'shared-key', key }) };
  }
  if (sas !== '') return { ...loc, credential: () => ({ kind: 'sas', token: sas }) };
  const ad = ['AZURE_CLIENT_SECRET', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_CLIENT_ID'].find((v) => env[v] !== undefined && env[v] !== '');
  return {
    why: `type=azblob needs secret_access_key= or a SAS token in account_url${ad === undefined ? '' : ` (${ad} is set, but kiln does not get Azure AD tokens)`}`,
    hint: 'kiln signs with the account key (secret_access_key=) or sends a SAS token given in account_url (https://ACCOUNT.blob.core.windows.net/?sv=…&sig=…, e.g. from az storage account generate-sas); it does not read Azure AD credentials (DefaultAzureCredential: service principals, managed identity, az login)',
  };
}
