import { parseReference, type AwsCredentialContext, type AwsCredentials, type ExportCompression } from '@kiln/runtime';
import type { CacheExportMode } from '@kiln/solver';
import { CsvError, readCsvRecord } from './csv-record.js';
import { EngineError } from './errors.js';
import { parseS3Attrs, redactCacheValue, type S3CacheExport, type S3CacheLocation } from './cache-s3-spec.js';
import { parseAzblobAttrs, type AzblobCacheExport, type AzblobCacheLocation } from './cache-azblob-spec.js';

export type { S3CacheExport, S3CacheLocation } from './cache-s3-spec.js';
export type { AzblobCacheExport, AzblobCacheLocation } from './cache-azblob-spec.js';

/** A parsed `--cache-to` value (buildx's CSV syntax). */
export type CacheExportSpec =
  | ({ readonly type: 'local'; readonly dest: string; readonly tag: string } & CacheExportCommon)
  | ({ readonly type: 'registry'; readonly ref: string } & CacheExportCommon)
  | ({ readonly type: 's3' } & S3CacheExport & CacheExportCommon)
  | ({ readonly type: 'azblob' } & AzblobCacheExport & CacheExportCommon)
  | { readonly type: 'inline'; readonly mode: CacheExportMode };

interface CacheExportCommon {
  readonly mode: CacheExportMode;
  /** `ignore-error=true` (BuildKit v0.11, moby/buildkit#3430): a failed export is a warning, not a failed build. */
  readonly ignoreError?: true;
  readonly compression: ExportCompression;
  /** OCI media types (an OCI index) or Docker's (a manifest list). BuildKit's default: true. */
  readonly ociMediaTypes: boolean;
}

/** A parsed `--cache-from` value. */
export type CacheImportSpec =
  | { readonly type: 'local'; readonly src: string; readonly tag: string; readonly digest?: string }
  | { readonly type: 'registry'; readonly ref: string }
  | ({ readonly type: 's3' } & S3CacheLocation)
  | ({ readonly type: 'azblob' } & AzblobCacheLocation);

const HINT_TO = 'e.g. --cache-to type=local,dest=DIR,mode=max  --cache-to type=registry,ref=HOST/REPO:TAG  --cache-to type=s3,region=R,bucket=B,name=N  --cache-to type=inline';

const HINT_FROM = 'e.g. --cache-from type=local,src=DIR  --cache-from type=registry,ref=HOST/REPO:TAG';

/** The value is shown with its secrets (secret_access_key=, session_token=) masked. */
function bad(flag: string, value: string, why: string, hint: string): EngineError {
  return new EngineError('KLN0710', `invalid ${flag} "${redactCacheValue(value)}": ${why}`, { hint });
}

/** Where s3 credentials come from when the attributes have none: the caller's environment and home. */
export type { AwsCredentialContext, AwsCredentials };

/**
 * The cache entries of one value, as buildx's ParseCacheEntry reads them: its fields as Go's
 * encoding/csv splits them ({@link readCsvRecord}); fields without `=` are registry references,
 * one cache each (`--cache-from a,b` is two); otherwise every field is KEY=VALUE (keys
 * lower-cased, values as they are) and one that is not fails ("invalid value max"), as does a
 * missing `type=`. kiln's output-spec splitter glued a loose field to the previous value, so
 * `dest=/c,max` silently wrote the cache to a directory named `/c,max`.
 */
function cacheEntries(flag: string, value: string, hint: string): Map<string, string>[] {
  // buildx skips an empty value (`--cache-from "$CACHE"` with CACHE unset, a bake list's ""): no cache.
  if (value === '') return [];
  let fields: string[];
  try {
    fields = readCsvRecord(value);
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    throw bad(flag, value, e.message, 'quote a whole field from its first character, a quote in it doubled: "dest=/a,b" or "ref=…"');
  }
  if (fields.length === 0) throw bad(flag, value, 'the value is empty', hint);
  if (fields.every((f) => !f.includes('='))) {
    if (fields.includes('')) throw bad(flag, value, 'an empty reference (a comma too many?)', hint);
    return fields.map((ref) => new Map([['type', 'registry'], ['ref', ref]]));
  }
  const attrs = new Map<string, string>();
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq < 0) {
      if (f === '') throw bad(flag, value, 'an empty field (a comma too many?): every field is KEY=VALUE', `remove the extra comma. ${hint}`);
      const near = /^(min|max)$/.test(f) ? `mode=${f}` : /^(gzip|zstd|uncompressed)$/.test(f) ? `compression=${f}` : undefined;
      throw bad(flag, value, `invalid value "${f}": every field is KEY=VALUE${near === undefined ? '' : ` (did you mean ${near}?)`}`, near === undefined ? `quote a value that holds a comma: "dest=/a,b". ${hint}` : hint);
    }
    const key = f.slice(0, eq).toLowerCase();
    // buildx keeps the spaces: " mode=max" is an attribute " mode" that nothing reads (mode stays min).
    if (key.trim() !== key) throw bad(flag, value, `invalid key ${JSON.stringify(key)}: the spaces are part of it`, 'write the fields without spaces around the commas: type=local,dest=DIR,mode=max');
    attrs.set(key, f.slice(eq + 1));
  }
  if (!attrs.has('type')) throw bad(flag, value, 'type= is required', hint);
  return [attrs];
}

/**
 * A registry cache reference, checked before the build rather than after it (KLN0711, with the
 * build's work done): a path given as the bare value is meant as a local cache.
 */
function checkRegistryRef(flag: string, value: string, ref: string, hint: string): void {
  if (/^(\/|\.{1,2}\/|~)/.test(ref) || ref === '.') {
    throw bad(flag, value, `"${ref}" is a path, not an image reference`, `a cache directory is type=local,${flag === '--cache-to' ? 'dest' : 'src'}=${ref}`);
  }
  try {
    parseReference(ref);
  } catch (e) {
    throw bad(flag, value, e instanceof Error ? e.message : String(e), hint);
  }
}

/** buildx/BuildKit: an integer; gzip takes -1..9 (gzip.NewWriterLevel), zstd any level. */
function checkCompressionLevel(flag: string, value: string, level: string | undefined, compression: string, hint: string): void {
  if (level === undefined) return;
  if (!/^-?\d+$/.test(level)) throw bad(flag, value, `non-integer value ${level} specified for compression-level`, hint);
  const n = Number(level);
  if (compression === 'gzip' && (n < -1 || n > 9)) throw bad(flag, value, `gzip: invalid compression level: ${n}`, 'use compression-level=0..9 with gzip');
}

/** A boolean attribute as buildx reads them (`true`/`1`/empty, `false`/`0`); undefined when absent or neither. */
export const bool = (v: string | undefined): boolean | undefined => (v === undefined ? undefined : ['true', '1', ''].includes(v) ? true : ['false', '0'].includes(v) ? false : undefined);

/**
 * Parses one `--cache-to` value (several caches for `a,b`); an unknown type or an invalid value of a known attribute is an
 * error (the export could not do what was asked); other attributes are ignored, as BuildKit's
 * exporters ignore attributes they do not know.
 */
export function parseCacheExportSpecs(value: string, aws?: AwsCredentialContext): CacheExportSpec[] {
  return cacheEntries('--cache-to', value, HINT_TO).map((a) => exportSpecOf(value, a, aws));
}

function exportSpecOf(value: string, a: ReadonlyMap<string, string>, aws: AwsCredentialContext | undefined): CacheExportSpec {
  const flag = '--cache-to';
  const ie = a.get('ignore-error');
  const ignore = bool(ie);
  if (ie !== undefined && ignore === undefined) throw bad(flag, value, 'ignore-error must be true or false', HINT_TO);
  const ignoreError = ignore === true ? { ignoreError: true as const } : {};
  const mode = a.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw bad(flag, value, `mode must be min or max, not "${mode}"`, HINT_TO);
  const compression = a.get('compression') ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'uncompressed') throw bad(flag, value, `compression must be gzip, zstd or uncompressed`, HINT_TO);
  checkCompressionLevel(flag, value, a.get('compression-level'), compression, HINT_TO);
  const oci = a.get('oci-mediatypes');
  const ociFlag = bool(oci);
  if (oci !== undefined && ociFlag === undefined) throw bad(flag, value, 'oci-mediatypes must be true or false', HINT_TO);
  const ociMediaTypes = ociFlag ?? true;
  const type = a.get('type') ?? '';
  switch (type) {
    case 'local': {
      const dest = a.get('dest');
      if (dest === undefined || dest === '') throw bad(flag, value, 'type=local needs dest=DIR', HINT_TO);
      return { type, dest, tag: a.get('tag') ?? 'latest', mode, compression, ociMediaTypes, ...ignoreError };
    }
    case 'registry': {
      const ref = a.get('ref');
      if (ref === undefined || ref === '') throw bad(flag, value, 'type=registry needs ref=HOST/REPO:TAG', HINT_TO);
      checkRegistryRef(flag, value, ref, HINT_TO);
      return { type, ref, mode, compression, ociMediaTypes, ...ignoreError };
    }
    case 's3': {
      const s3 = parseS3Attrs(a, aws, true);
      if (typeof s3 === 'string') throw bad(flag, value, s3, HINT_TO);
      return { type, ...s3, mode, compression, ociMediaTypes, ...ignoreError };
    }
    case 'azblob': {
      const az = parseAzblobAttrs(a, aws?.env ?? process.env);
      if ('why' in az) throw bad(flag, value, az.why, az.hint);
      return { type, ...az, mode, compression, ociMediaTypes, ...ignoreError };
    }
    case 'inline':
      return { type, mode };
    default:
      throw bad(flag, value, `cache type "${type}" is not supported (kiln exports local, registry, s3, azblob and inline caches)`, HINT_TO);
  }
}

/**
 * Parses one `--cache-from` value (several caches for `a,b`). An entry of a type kiln does not
 * import is a warning instead: buildx warns about an unusable cache source and builds without it.
 */
export function parseCacheImportSpecs(value: string, aws?: AwsCredentialContext): (CacheImportSpec | { readonly warning: string })[] {
  // a malformed value fails the command, as buildx's ParseCacheEntry does; an unusable source warns
  return cacheEntries('--cache-from', value, HINT_FROM).map((a) => importSpecOf(value, a, aws));
}

function importSpecOf(value: string, a: ReadonlyMap<string, string>, aws: AwsCredentialContext | undefined): CacheImportSpec | { readonly warning: string } {
  const type = a.get('type') ?? '';
  switch (type) {
    case 'local': {
      const src = a.get('src');
      if (src === undefined || src === '') return { warning: `--cache-from "${redactCacheValue(value)}": type=local needs src=DIR` };
      const digest = a.get('digest');
      return { type, src, tag: a.get('tag') ?? 'latest', ...(digest === undefined ? {} : { digest }) };
    }
    case 'registry': {
      const ref = a.get('ref');
      if (ref === undefined || ref === '') return { warning: `--cache-from "${redactCacheValue(value)}": type=registry needs ref=HOST/REPO:TAG` };
      if (/^(\/|\.{1,2}\/|~)/.test(ref)) return { warning: `--cache-from "${redactCacheValue(value)}": "${ref}" is a path, not an image reference (a cache directory is type=local,src=${ref})` };
      return { type, ref };
    }
    case 's3': {
      const s3 = parseS3Attrs(a, aws, false);
      if (typeof s3 === 'string') return { warning: `--cache-from "${redactCacheValue(value)}": ${s3}` };
      return { type, ...s3 };
    }
    case 'azblob': {
      const az = parseAzblobAttrs(a, aws?.env ?? process.env);
      if ('why' in az) return { warning: `--cache-from "${redactCacheValue(value)}": ${az.why} (${az.hint})` };
      return { type, ...az };
    }
    default:
      return { warning: `--cache-from "${redactCacheValue(value)}": cache type "${type}" is not supported (kiln imports local, registry, s3 and azblob caches)` };
  }
}
