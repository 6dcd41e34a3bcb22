import { splitCsvFields, type AwsCredentialContext, type AwsCredentials, type ExportCompression } from '@kiln/runtime';
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

/** The value is shown with its secrets (secret_access_key=, session_token=) masked. */
function bad(flag: string, value: string, why: string, hint: string): EngineError {
  return new EngineError('KLN0710', `invalid ${flag} "${redactCacheValue(value)}": ${why}`, { hint });
}

/** Where s3 credentials come from when the attributes have none: the caller's environment and home. */
export type { AwsCredentialContext, AwsCredentials };

function attrsOf(value: string): Map<string, string> {
  // buildx: a value without `=` is a registry reference.
  if (!value.includes('=')) return new Map([['type', 'registry'], ['ref', value]]);
  return new Map(splitCsvFields(value));
}

/** A boolean attribute as buildx reads them (`true`/`1`/empty, `false`/`0`); undefined when absent or neither. */
export const bool = (v: string | undefined): boolean | undefined => (v === undefined ? undefined : ['true', '1', ''].includes(v) ? true : ['false', '0'].includes(v) ? false : undefined);

/**
 * Parses one `--cache-to` value; an unknown type or an invalid value of a known attribute is an
 * error (the export could not do what was asked); other attributes are ignored, as BuildKit's
 * exporters ignore attributes they do not know.
 */
export function parseCacheExportSpec(value: string, aws?: AwsCredentialContext): CacheExportSpec {
  const a = attrsOf(value);
  const flag = '--cache-to';
  const ie = a.get('ignore-error');
  const ignore = bool(ie);
  if (ie !== undefined && ignore === undefined) throw bad(flag, value, 'ignore-error must be true or false', HINT_TO);
  const ignoreError = ignore === true ? { ignoreError: true as const } : {};
  const mode = a.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw bad(flag, value, `mode must be min or max, not "${mode}"`, HINT_TO);
  const compression = a.get('compression') ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'uncompressed') throw bad(flag, value, `compression must be gzip, zstd or uncompressed`, HINT_TO);
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
  const a = attrsOf(value);
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
