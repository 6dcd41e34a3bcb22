import { parseReference, splitCsvFields, type AwsCredentialContext, type AwsCredentials, type ExportCompression } from '@kiln/runtime';
import type { CacheExportMode } from '@kiln/solver';
import { EngineError } from './errors.js';
import { parseS3Attrs, redactCacheValue, type S3CacheExport, type S3CacheLocation } from './cache-s3-spec.js';

export type { S3CacheExport, S3CacheLocation } from './cache-s3-spec.js';

/** A parsed `--cache-to` value (buildx's CSV syntax). */
export type CacheExportSpec =
  | ({ readonly type: 'local'; readonly dest: string; readonly tag: string } & CacheExportCommon)
  | ({ readonly type: 'registry'; readonly ref: string } & CacheExportCommon)
  | ({ readonly type: 's3' } & S3CacheExport & CacheExportCommon)
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
  | ({ readonly type: 's3' } & S3CacheLocation);

const HINT_TO = 'e.g. --cache-to type=local,dest=DIR,mode=max  --cache-to type=registry,ref=HOST/REPO:TAG  --cache-to type=s3,region=R,bucket=B,name=N  --cache-to type=inline';

const HINT_FROM = 'e.g. --cache-from type=local,src=DIR  --cache-from type=registry,ref=HOST/REPO:TAG';

/** The value is shown with its secrets (secret_access_key=, session_token=) masked. */
function bad(flag: string, value: string, why: string, hint: string): EngineError {
  return new EngineError('KLN0710', `invalid ${flag} "${redactCacheValue(value)}": ${why}`, { hint });
}

/** Where s3 credentials come from when the attributes have none: the caller's environment and home. */
export type { AwsCredentialContext, AwsCredentials };

/** The CSV fields of a value as Go's encoding/csv reads one record (quotes group, `""` is a quote). */
export function csvFieldsOf(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((f) => f.trim()).filter((f) => f !== '');
}

/**
 * The attributes of a value. buildx's ParseCacheEntry: a value without `=` is a registry
 * reference; otherwise every field is KEY=VALUE, and one that is not fails ("invalid value
 * max"). kiln's output-spec splitter would glue it to the previous value instead, so
 * `dest=/c,max` silently wrote the cache to a directory named `/c,max`.
 */
function attrsOf(flag: string, value: string, hint: string): Map<string, string> {
  if (!value.includes('=')) return new Map([['type', 'registry'], ['ref', value]]);
  const loose = csvFieldsOf(value).find((f) => !f.includes('='));
  if (loose !== undefined) {
    const near = /^(min|max)$/.test(loose) ? `mode=${loose}` : /^(gzip|zstd|uncompressed)$/.test(loose) ? `compression=${loose}` : undefined;
    throw bad(flag, value, `invalid value "${loose}": every field is KEY=VALUE${near === undefined ? '' : ` (did you mean ${near}?)`}`, near === undefined ? `quote a value that holds a comma: "dest=/a,b". ${hint}` : hint);
  }
  return new Map(splitCsvFields(value));
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
 * Parses one `--cache-to` value; an unknown type or an invalid value of a known attribute is an
 * error (the export could not do what was asked); other attributes are ignored, as BuildKit's
 * exporters ignore attributes they do not know.
 */
export function parseCacheExportSpec(value: string, aws?: AwsCredentialContext): CacheExportSpec {
  const flag = '--cache-to';
  const a = attrsOf(flag, value, HINT_TO);
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
    case 'inline':
      return { type, mode };
    default:
      throw bad(flag, value, `cache type "${type}" is not supported (kiln exports local, registry, s3 and inline caches)`, HINT_TO);
  }
}

/**
 * Parses one `--cache-from` value. Returns an error message instead of throwing for a type kiln
 * does not import: buildx warns about an unusable cache source and builds without it.
 */
export function parseCacheImportSpec(value: string, aws?: AwsCredentialContext): CacheImportSpec | { readonly warning: string } {
  // a malformed value fails the command, as buildx's ParseCacheEntry does; an unusable source warns
  const a = attrsOf('--cache-from', value, HINT_FROM);
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
    default:
      return { warning: `--cache-from "${redactCacheValue(value)}": cache type "${type}" is not supported (kiln imports local, registry and s3 caches)` };
  }
}
