import { describe, expect, test } from 'vitest';
import type { AwsCredentialContext } from '@kiln/runtime';
import { parseCacheExportSpecs, parseCacheImportSpecs, type CacheExportSpec, type CacheImportSpec } from './cache-spec.js';
import { azblobBlobKey, azblobManifestKey, azblobManifestUrl, goPathJoin } from './cache-azblob-spec.js';
import { redactCacheValue } from './cache-s3-spec.js';

// BuildKit v0.11 cache/remotecache/azblob/utils.go getConfig, attribute by attribute.

const ctx = (env: Record<string, string> = {}): AwsCredentialContext => ({ env, home: '/nonexistent', cwd: '/' });
const exportSpec = (v: string, env?: Record<string, string>): CacheExportSpec => {
  const specs = parseCacheExportSpecs(v, ctx(env));
  expect(specs).toHaveLength(1);
  return specs[0] as CacheExportSpec;
};
const importSpec = (v: string, env?: Record<string, string>): CacheImportSpec | { readonly warning: string } => {
  const specs = parseCacheImportSpecs(v, ctx(env));
  expect(specs).toHaveLength(1);
  return specs[0] as CacheImportSpec | { readonly warning: string };
};
const key = Buffer.from('an account key of 32 bytes......').toString('base64');

describe('type=azblob', () => {
  test('defaults: container buildkit-cache, prefixes manifests and blobs, name buildkit, the account from the host', () => {
    const s = exportSpec(`type=azblob,account_url=https://myaccount.blob.core.windows.net,secret_access_key=${key}`);
    expect(s).toEqual({
      type: 'azblob',
      accountUrl: 'https://myaccount.blob.core.windows.net',
      accountName: 'myaccount',
      container: 'buildkit-cache',
      prefix: '',
      manifestsPrefix: 'manifests',
      blobsPrefix: 'blobs',
      names: ['buildkit'],
      credential: expect.any(Function),
      mode: 'min',
      compression: 'gzip',
      ociMediaTypes: true,
    });
    if (s.type !== 'azblob') throw new Error('not azblob');
    expect(s.credential()).toEqual({ kind: 'shared-key', key });
    expect(azblobManifestUrl(s)).toBe('https://myaccount.blob.core.windows.net/buildkit-cache/manifests/buildkit');
    expect(azblobBlobKey(s, 'sha256:ab')).toBe('blobs/sha256:ab');
  });

  test('every attribute, and the BUILDKIT_AZURE_STORAGE_* variables (of the caller) when an attribute is absent', () => {
    const s = importSpec(`type=azblob,account_url=http://127.0.0.1:10000/devstoreaccount1/,account_name=devstoreaccount1,container=ci-cache,prefix=team/,manifests_prefix=m,blobs_prefix=b/,name=main;pr-1,secret_access_key=${key}`);
    expect(s).toMatchObject({ type: 'azblob', accountUrl: 'http://127.0.0.1:10000/devstoreaccount1', accountName: 'devstoreaccount1', container: 'ci-cache', prefix: 'team/', names: ['main', 'pr-1'] });
    if ('warning' in s || s.type !== 'azblob') throw new Error('not azblob');
    // filepath.Join: one slash between the parts, whatever they end with.
    expect(azblobManifestKey(s, 'pr-1')).toBe('team/m/pr-1');
    expect(azblobBlobKey(s, 'sha256:ab')).toBe('team/b/sha256:ab');

    const env = { BUILDKIT_AZURE_STORAGE_ACCOUNT_URL: 'https://envaccount.blob.core.windows.net', BUILDKIT_AZURE_STORAGE_CONTAINER: 'env-cache', BUILDKIT_AZURE_STORAGE_PREFIX: 'p', BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME: 'named' };
    expect(importSpec(`type=azblob,secret_access_key=${key}`, env)).toMatchObject({ accountUrl: 'https://envaccount.blob.core.windows.net', accountName: 'named', container: 'env-cache', prefix: 'p' });
    // Attributes win over the variables.
    expect(importSpec(`type=azblob,account_url=https://a.blob.core.windows.net,container=attr-cache,prefix=,secret_access_key=${key}`, env)).toMatchObject({ accountName: 'named', container: 'attr-cache', prefix: '' });
    // An IP address host gives its first number, as in BuildKit (account_name= is needed there).
    expect(importSpec(`type=azblob,account_url=http://127.0.0.1:10000/devstoreaccount1,secret_access_key=${key}`)).toMatchObject({ accountName: '127' });
  });

  test('goPathJoin is Go’s filepath.Join', () => {
    expect(goPathJoin('', 'manifests', 'app')).toBe('manifests/app');
    expect(goPathJoin('a/', '/b//', 'c/')).toBe('a/b/c');
    expect(goPathJoin('a', '../x', './y')).toBe('x/y');
    expect(goPathJoin('/root', '..', '..', 'z')).toBe('/z');
    expect(goPathJoin('..', 'm', 'n')).toBe('../m/n');
    expect(goPathJoin('', '')).toBe('');
    expect(goPathJoin('a', '..')).toBe('.');
  });

  test('a SAS token in account_url authorizes without a key; it is never shown', () => {
    const sas = 'sv=2020-10-02&ss=b&srt=sco&sp=rwlc&se=2030-01-01T00%3A00%3A00Z&sig=SeCrEtSiGnAtUrE%2B%3D';
    const s = exportSpec(`type=azblob,account_url=https://acct.blob.core.windows.net/?${sas},name=app`);
    if (s.type !== 'azblob') throw new Error('not azblob');
    expect(s.accountUrl).toBe('https://acct.blob.core.windows.net');
    expect(s.credential()).toEqual({ kind: 'sas', token: sas });
    expect(JSON.stringify(s)).not.toContain('SeCrEt');
    expect(redactCacheValue(`type=azblob,account_url=https://acct.blob.core.windows.net/?${sas},name=app`)).toBe('type=azblob,account_url=https://acct.blob.core.windows.net/?sv=2020-10-02&ss=b&srt=sco&sp=rwlc&se=2030-01-01T00%3A00%3A00Z&sig=xxxxx,name=app');
    // A refusal shows neither the key nor the signature.
    const both = (): CacheExportSpec => exportSpec(`type=azblob,account_url=https://acct.blob.core.windows.net/?${sas},secret_access_key=${key}`);
    expect(both).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('carries a query (a SAS token) and secret_access_key= is given') }));
    expect(both).toThrow(expect.objectContaining({ message: expect.not.stringMatching(/SeCrEt|an account key of/) }));
    expect(both).toThrow(expect.objectContaining({ message: expect.not.stringContaining(key) }));
  });

  test('refusals before the build (--cache-to) and warnings (--cache-from), each with what to do', () => {
    const refused = (v: string, env?: Record<string, string>) => {
      try {
        exportSpec(v, env);
      } catch (e) {
        return e as { code: string; message: string; hint: string };
      }
      throw new Error(`${v} was accepted`);
    };
    expect(refused('type=azblob,name=x')).toMatchObject({ code: 'KLN0710', message: expect.stringContaining('type=azblob needs account_url= (or BUILDKIT_AZURE_STORAGE_ACCOUNT_URL)'), hint: expect.stringContaining('blob.core.windows.net') });
    expect(refused('type=azblob,account_url=myaccount.blob.core.windows.net')).toMatchObject({ message: expect.stringContaining('account_url is not an http(s) URL') });
    // No key, no SAS: BuildKit would ask DefaultAzureCredential; kiln says what it takes.
    expect(refused('type=azblob,account_url=https://a.blob.core.windows.net', { AZURE_CLIENT_SECRET: 's', AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' })).toMatchObject({
      message: expect.stringContaining('needs secret_access_key= or a SAS token in account_url (AZURE_CLIENT_SECRET is set, but kiln does not get Azure AD tokens)'),
      hint: expect.stringContaining('does not read Azure AD credentials'),
    });
    expect(refused('type=azblob,account_url=https://a.blob.core.windows.net,secret_access_key=not-base64!')).toMatchObject({ message: expect.stringContaining('secret_access_key is not an account key (base64)') });
    expect(refused(`type=azblob,account_url=https://a.blob.core.windows.net,container=Build_Cache,secret_access_key=${key}`)).toMatchObject({ message: expect.stringContaining('container "Build_Cache" is no Azure container name') });
    expect(refused(`type=azblob,account_url=https://a.blob.core.windows.net,container=ab,secret_access_key=${key}`)).toMatchObject({ message: expect.stringContaining('is no Azure container name') });
    expect(refused(`type=azblob,account_url=https://a.blob.core.windows.net,prefix=../..,secret_access_key=${key}`)).toMatchObject({ message: expect.stringContaining('"../../manifests/buildkit" names no blob in the container') });
    expect(refused(`type=azblob,account_url=https://.blob.core.windows.net,secret_access_key=${key}`)).toMatchObject({ message: expect.stringContaining('no account name'), hint: 'set account_name=ACCOUNT' });

    expect(importSpec('type=azblob,account_url=https://a.blob.core.windows.net,secret_access_key=SECRETKEY!')).toEqual({
      warning: '--cache-from "type=azblob,account_url=https://a.blob.core.windows.net,secret_access_key=xxxxx": secret_access_key is not an account key (base64) (give key1 or key2 of the storage account (az storage account keys list), as it is shown)',
    });
    expect(importSpec('type=gha')).toMatchObject({ warning: expect.stringContaining('kiln imports local, registry, s3 and azblob caches') });
    expect(() => exportSpec('type=gha')).toThrow(expect.objectContaining({ message: expect.stringContaining('kiln exports local, registry, s3, azblob and inline caches') }));
  });
});
