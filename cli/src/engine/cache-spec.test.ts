import { describe, expect, test } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AwsCredentialContext } from '@kiln/runtime';
import { parseCacheExportSpecs, parseCacheImportSpecs, type CacheExportSpec, type CacheImportSpec } from './cache-spec.js';
import { parseGoDuration, redactCacheValue } from './cache-s3-spec.js';

/** The one cache a value names. */
function only<T>(specs: readonly T[]): T {
  expect(specs).toHaveLength(1);
  return specs[0] as T;
}
const parseCacheExportSpec = (v: string, aws?: AwsCredentialContext): CacheExportSpec => only(parseCacheExportSpecs(v, aws));
const parseCacheImportSpec = (v: string, aws?: AwsCredentialContext): CacheImportSpec | { readonly warning: string } => only(parseCacheImportSpecs(v, aws));

describe('--cache-to / --cache-from (buildx CSV)', () => {
  test('export specs with buildx defaults: mode=min, gzip, OCI media types, tag latest', () => {
    expect(parseCacheExportSpec('type=local,dest=/tmp/c')).toEqual({ type: 'local', dest: '/tmp/c', tag: 'latest', mode: 'min', compression: 'gzip', ociMediaTypes: true });
    expect(parseCacheExportSpec('type=registry,ref=127.0.0.1:5000/c:1,mode=max,compression=zstd,oci-mediatypes=false')).toEqual({
      type: 'registry',
      ref: '127.0.0.1:5000/c:1',
      mode: 'max',
      compression: 'zstd',
      ociMediaTypes: false,
    });
    expect(parseCacheExportSpec('type=inline')).toEqual({ type: 'inline', mode: 'min' });
    expect(parseCacheExportSpec('type=local,dest=/c,ignore-error=true')).toMatchObject({ type: 'local', ignoreError: true });
    expect(parseCacheExportSpec('type=registry,ref=r/c:1,ignore-error=false')).not.toHaveProperty('ignoreError');
    // Attributes kiln does not know are ignored, as BuildKit's exporters ignore them.
    expect(parseCacheExportSpec('type=local,dest=/c,compression-level=3')).toEqual({ type: 'local', dest: '/c', tag: 'latest', mode: 'min', compression: 'gzip', ociMediaTypes: true });
    // A bare value is a registry reference, as buildx reads it; quoted fields keep their commas.
    expect(parseCacheExportSpec('127.0.0.1:5000/c:1')).toMatchObject({ type: 'registry', ref: '127.0.0.1:5000/c:1' });
    expect(parseCacheExportSpec('"type=local","dest=/a,b"')).toMatchObject({ type: 'local', dest: '/a,b' });
  });

  test('export specs kiln cannot honour are errors', () => {
    expect(() => parseCacheExportSpec('type=gha')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,mode=all')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,compression=lz4')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,oci-mediatypes=maybe')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,ignore-error=maybe')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
  });

  test('import specs; unusable ones are warnings, not errors', () => {
    expect(parseCacheImportSpec('type=local,src=/c,tag=v2')).toEqual({ type: 'local', src: '/c', tag: 'v2' });
    expect(parseCacheImportSpec('type=local,src=/c,digest=sha256:abc')).toEqual({ type: 'local', src: '/c', tag: 'latest', digest: 'sha256:abc' });
    expect(parseCacheImportSpec('type=registry,ref=r/c:1')).toEqual({ type: 'registry', ref: 'r/c:1' });
    expect(parseCacheImportSpec('r/c:1')).toEqual({ type: 'registry', ref: 'r/c:1' });
    expect(parseCacheImportSpec('type=gha,scope=b')).toEqual({ warning: '--cache-from "type=gha,scope=b": cache type "gha" is not supported (kiln imports local, registry, s3 and azblob caches)' });
    expect(parseCacheImportSpec('type=local')).toHaveProperty('warning');
  });
});

describe('type=s3 (BuildKit v0.11 s3 cache attributes)', () => {
  const none = { env: {}, home: '/nonexistent', cwd: '/' };
  const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

  test('defaults: prefixes, name buildkit, 4 uploads at once, touch after 24h, virtual-hosted AWS', () => {
    expect(parseCacheExportSpec('type=s3,region=eu-west-1,bucket=b', none)).toEqual({
      type: 's3',
      bucket: 'b',
      region: 'eu-west-1',
      prefix: '',
      manifestsPrefix: 'manifests/',
      blobsPrefix: 'blobs/',
      names: ['buildkit'],
      usePathStyle: false,
      credentials: expect.any(Function),
      uploadParallelism: 4,
      touchRefreshMs: 24 * 3_600_000,
      mode: 'min',
      compression: 'gzip',
      ociMediaTypes: true,
    });
  });

  test('every attribute; name is ;-separated; bucket and region from AWS_BUCKET / AWS_REGION', () => {
    const s = parseCacheExportSpec(
      'type=s3,region=r,bucket=b,name=main;pr-1,prefix=p/,blobs_prefix=bl/,manifests_prefix=mf/,endpoint_url=http://127.0.0.1:9000,use_path_style=true,upload_parallelism=2,touch_refresh=1h30m,mode=max,ignore-error=true',
      none,
    );
    expect(s).toMatchObject({ names: ['main', 'pr-1'], prefix: 'p/', blobsPrefix: 'bl/', manifestsPrefix: 'mf/', endpointUrl: 'http://127.0.0.1:9000', usePathStyle: true, uploadParallelism: 2, touchRefreshMs: 5_400_000, mode: 'max', ignoreError: true });
    expect(parseCacheImportSpec('type=s3,name=x', { ...none, env: { AWS_BUCKET: 'eb', AWS_REGION: 'er' } })).toMatchObject({ type: 's3', bucket: 'eb', region: 'er', names: ['x'] });
    // Malformed booleans and durations are ignored (strconv/time errors dropped, as BuildKit does).
    expect(parseCacheExportSpec('type=s3,region=r,bucket=b,use_path_style=yes,touch_refresh=1day', none)).toMatchObject({ usePathStyle: false, touchRefreshMs: 86_400_000 });
    expect(parseGoDuration('500ms')).toBe(500);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('10')).toBeUndefined();
  });

  test('missing region or bucket, a bad upload_parallelism: an export error, an import warning', () => {
    expect(() => parseCacheExportSpec('type=s3,bucket=b', none)).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('type=s3 needs region= (or AWS_REGION)') }));
    expect(() => parseCacheExportSpec('type=s3,region=r', none)).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('needs bucket=') }));
    expect(() => parseCacheExportSpec('type=s3,region=r,bucket=b,upload_parallelism=0', none)).toThrow(expect.objectContaining({ message: expect.stringContaining('upload_parallelism must be a positive integer') }));
    expect(parseCacheImportSpec('type=s3,bucket=b', none)).toEqual({ warning: '--cache-from "type=s3,bucket=b": type=s3 needs region= (or AWS_REGION)' });
  });

  test('credentials: both keys from the attributes, else the environment, else the shared credentials file', async () => {
    const attrs = parseCacheImportSpec(`type=s3,region=r,bucket=b,access_key_id=AK,secret_access_key=${secret},session_token=T`, { ...none, env: { AWS_ACCESS_KEY_ID: 'ENV' } });
    if ('warning' in attrs || attrs.type !== 's3') throw new Error('not s3');
    expect(await attrs.credentials()).toEqual({ accessKeyId: 'AK', secretAccessKey: secret, sessionToken: 'T' });
    // The secret is in no enumerable field of the spec: printing or recording it shows none.
    expect(JSON.stringify(attrs)).not.toContain(secret);
    const env = parseCacheImportSpec('type=s3,region=r,bucket=b,access_key_id=AK', { ...none, env: { AWS_ACCESS_KEY_ID: 'ENV', AWS_SECRET_ACCESS_KEY: 'ES', AWS_SESSION_TOKEN: 'ET' } });
    if ('warning' in env || env.type !== 's3') throw new Error('not s3');
    expect(await env.credentials()).toEqual({ accessKeyId: 'ENV', secretAccessKey: 'ES', sessionToken: 'ET' });
    const home = await mkdtemp(join(tmpdir(), 'kiln-aws-'));
    try {
      await writeFile(join(home, 'creds'), '[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[ci]\naws_access_key_id=CI\naws_secret_access_key=CIS\naws_session_token = CIT\n');
      await writeFile(join(home, 'config'), '[profile cfg]\naws_access_key_id = C\naws_secret_access_key = CS\n');
      const from = async (e: Record<string, string>) => {
        const s = parseCacheImportSpec('type=s3,region=r,bucket=b', { env: { AWS_SHARED_CREDENTIALS_FILE: 'creds', AWS_CONFIG_FILE: join(home, 'config'), ...e }, home, cwd: home });
        if ('warning' in s || s.type !== 's3') throw new Error('not s3');
        return s.credentials();
      };
      expect(await from({})).toEqual({ accessKeyId: 'D', secretAccessKey: 'DS' });
      expect(await from({ AWS_PROFILE: 'ci' })).toEqual({ accessKeyId: 'CI', secretAccessKey: 'CIS', sessionToken: 'CIT' });
      expect(await from({ AWS_PROFILE: 'cfg' })).toEqual({ accessKeyId: 'C', secretAccessKey: 'CS' });
      await expect(from({ AWS_PROFILE: 'nope' })).rejects.toMatchObject({ code: 'S3_CREDENTIALS', message: expect.stringContaining('profile "nope"') });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  test('AWS_CA_BUNDLE of the caller\'s environment, from the caller\'s directory', () => {
    const s = parseCacheImportSpec('type=s3,region=r,bucket=b', { env: { AWS_CA_BUNDLE: 'certs/ca.pem' }, home: '/home/u', cwd: '/work/ci' });
    expect(s).toMatchObject({ type: 's3', caBundle: '/work/ci/certs/ca.pem' });
    expect(parseCacheImportSpec('type=s3,region=r,bucket=b', { env: {}, home: '/home/u', cwd: '/work/ci' })).not.toHaveProperty('caBundle');
  });

  test('secrets are masked in every message that shows the value', async () => {
    expect(redactCacheValue(`type=s3,secret_access_key=${secret},session_token=tok,access_key_id=AK`)).toBe('type=s3,secret_access_key=xxxxx,session_token=xxxxx,access_key_id=AK');
    const e = (() => {
      try {
        parseCacheExportSpec(`type=s3,region=r,bucket=b,secret_access_key=${secret},mode=all`, none);
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    expect(e?.message).toContain('secret_access_key=xxxxx');
    expect(e?.message).not.toContain(secret);
    const w = parseCacheImportSpec(`type=s3,bucket=b,secret_access_key=${secret}`, none);
    expect(JSON.stringify(w)).not.toContain(secret);
    // Keys are read case-insensitively (buildx lower-cases them): SECRET_ACCESS_KEY= is the secret too.
    const upper = parseCacheExportSpec(`type=s3,region=r,bucket=b,access_key_id=AK,Secret_Access_Key=${secret}`, none);
    await expect(upper.type === 's3' ? upper.credentials() : undefined).resolves.toMatchObject({ secretAccessKey: secret });
    expect(redactCacheValue(`type=s3,SECRET_ACCESS_KEY=${secret},Session_Token=tok`)).toBe('type=s3,secret_access_key=xxxxx,session_token=xxxxx');
    const w2 = parseCacheImportSpec(`type=s3,bucket=b,SECRET_ACCESS_KEY=${secret}`, none);
    expect(JSON.stringify(w2)).not.toContain(secret);
  });
});

describe('--cache-to / --cache-from typos refused before the build (typo tour 4)', () => {
  test('a field without = fails as in buildx, instead of joining the previous value', () => {
    // was: dest "/tmp/c,max", a cache written to a directory of that name
    expect(() => parseCacheExportSpec('type=local,dest=/tmp/c,max')).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('invalid value "max": every field is KEY=VALUE (did you mean mode=max?)') }));
    expect(() => parseCacheExportSpec('type=registry,ref=r/c:1,zstd')).toThrow(expect.objectContaining({ message: expect.stringContaining('(did you mean compression=zstd?)') }));
    expect(() => parseCacheImportSpec('type=local,src=/tmp/c,latest')).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('invalid value "latest"') }));
    // a quoted field keeps its comma; a bare reference stays a registry reference
    expect(parseCacheExportSpec('type=local,"dest=/tmp/c,max"')).toMatchObject({ dest: '/tmp/c,max' });
    expect(parseCacheImportSpec('r/c:1')).toEqual({ type: 'registry', ref: 'r/c:1' });
  });

  test('compression-level is an integer, -1..9 for gzip', () => {
    expect(() => parseCacheExportSpec('type=local,dest=/c,compression-level=99')).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('gzip: invalid compression level: 99') }));
    expect(() => parseCacheExportSpec('type=local,dest=/c,compression=zstd,compression-level=fast')).toThrow(expect.objectContaining({ message: expect.stringContaining('non-integer value fast specified for compression-level') }));
    expect(parseCacheExportSpec('type=local,dest=/c,compression=zstd,compression-level=19')).toMatchObject({ compression: 'zstd' });
  });

  test('a registry reference is checked before the build; a path is pointed at type=local', () => {
    expect(() => parseCacheExportSpec('type=registry,ref=Bad:Ref')).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('repository names must be lowercase') }));
    expect(() => parseCacheExportSpec('/tmp/cache')).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining('"/tmp/cache" is a path, not an image reference'), hint: 'a cache directory is type=local,dest=/tmp/cache' }));
    expect(parseCacheImportSpec('./cache')).toEqual({ warning: expect.stringContaining('a cache directory is type=local,src=./cache') });
  });
});

// buildx's ParseCacheEntry reads each value with Go's encoding/csv (go-csvvalue), then: no field
// with `=` means one registry cache per field; otherwise every field is KEY=VALUE and type= is needed.
describe('--cache-to / --cache-from values split as buildx splits them (encoding/csv)', () => {
  const none: AwsCredentialContext = { env: {}, home: '/nonexistent', cwd: '/' };
  test.for([
    // quotes holding commas, "" inside quotes
    ['type=local,"dest=/a,b",mode=max', [{ type: 'local', dest: '/a,b', mode: 'max' }]],
    ['"type=local","dest=/a ""b"" c"', [{ type: 'local', dest: '/a "b" c' }]],
    ['type=local,"dest=/c",""tag=x""', 'parse error on line 1, column 23: extraneous or missing " in quoted-field'],
    // a quote inside an unquoted field, or never closed
    ['type=local,dest="/a,b"', 'parse error on line 1, column 17: bare " in non-quoted-field'],
    ['type=local,"dest=/a', 'parse error on line 1, column 13: extraneous or missing " in quoted-field'],
    // empty fields and a trailing comma are fields, not skipped
    ['type=local,dest=/c,', 'an empty field (a comma too many?)'],
    ['type=local,,dest=/c', 'an empty field (a comma too many?)'],
    // an empty value is skipped (buildx: `if in == "" { continue }`); a newline alone is no record
    ['', []],
    ['\n', 'the value is empty'],
    // values are not trimmed; a key with spaces is no key buildx knows
    ['type=local,dest=/c ', [{ type: 'local', dest: '/c ' }]],
    ['type=local,dest=/c, mode=max', 'invalid key " mode": the spaces are part of it'],
    // keys are case-insensitive, the last of a key wins
    ['TYPE=local,Dest=/x,dest=/c', [{ type: 'local', dest: '/c' }]],
    ['dest=/c', 'type= is required'],
    // bare references: one registry cache each
    ['r/a:1,r/b:2', [{ type: 'registry', ref: 'r/a:1' }, { type: 'registry', ref: 'r/b:2' }]],
    ['"r/a:1","r/b:2"', [{ type: 'registry', ref: 'r/a:1' }, { type: 'registry', ref: 'r/b:2' }]],
    ['r/a:1,', 'an empty reference (a comma too many?)'],
  ] as const)('--cache-to %j', ([value, want]) => {
    if (typeof want === 'string') {
      expect(() => parseCacheExportSpecs(value, none)).toThrow(expect.objectContaining({ code: 'KLN0710', message: expect.stringContaining(want) }));
      expect(() => parseCacheImportSpecs(value.replace('dest=', 'src='), none)).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    } else {
      expect(parseCacheExportSpecs(value, none)).toMatchObject(want);
    }
  });

  test('--cache-from a,b imports both; an unusable entry warns and the others are kept', () => {
    expect(parseCacheImportSpecs('r/a:1,r/b:2', none)).toEqual([{ type: 'registry', ref: 'r/a:1' }, { type: 'registry', ref: 'r/b:2' }]);
    expect(parseCacheImportSpecs('r/a:1,./dir', none)).toEqual([{ type: 'registry', ref: 'r/a:1' }, { warning: expect.stringContaining('a cache directory is type=local,src=./dir') }]);
    expect(parseCacheImportSpecs('type=local,"src=/a,b"', none)).toEqual([{ type: 'local', src: '/a,b', tag: 'latest' }]);
    // buildx skips an empty value: --cache-from "$CACHE" with CACHE unset builds without a cache
    expect(parseCacheImportSpecs('', none)).toEqual([]);
    expect(parseCacheExportSpecs('', none)).toEqual([]);
  });
});
