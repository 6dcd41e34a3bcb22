import { ImageStoreError } from '../content/errors.js';

/** Layer compression an exporter writes. */
export type ExportCompression = 'gzip' | 'uncompressed' | 'zstd';

interface ImageSpecBase {
  /** Image names (`name=a,b`). */
  readonly names: ReadonlyArray<string>;
  readonly compression: ExportCompression;
  /** Layer and manifest media types: OCI or Docker schema 2. */
  readonly ociMediaTypes: boolean;
  /** Re-compress layers already stored in another compression (`force-compression=true`). */
  readonly forceCompression: boolean;
  /** `compression-level=N`, when given: gzip -1..9; zstd any integer (mapped as BuildKit maps it). */
  readonly compressionLevel?: number | undefined;
  /** `annotation…` options, when given. */
  readonly annotations?: ReadonlyArray<ExportAnnotation> | undefined;
}

/** Where an `annotation…` option goes (BuildKit exptypes: index, index-descriptor, manifest, manifest-descriptor). */
export type ExportAnnotationType = 'index' | 'index-descriptor' | 'manifest' | 'manifest-descriptor';

/** One `annotation[-type][[platform]].key=value` option. */
export interface ExportAnnotation {
  readonly type: ExportAnnotationType;
  /** Only for this platform's manifest (`os/arch[/variant]`); all platforms when absent. */
  readonly platform?: string | undefined;
  readonly key: string;
  readonly value: string;
}

/** BuildKit v0.11 exptypes keyAnnotationRegexp. */
const ANNOTATION_KEY = /^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$/;

/** A parsed `--output` spec, as buildx understands it. */
export type ExportSpec =
  | ({ readonly type: 'oci'; readonly dest: string; readonly tar: boolean } & ImageSpecBase)
  | ({ readonly type: 'docker'; readonly dest: string } & ImageSpecBase)
  | ({ readonly type: 'image'; readonly push: boolean; readonly insecure: boolean } & ImageSpecBase)
  | { readonly type: 'local'; readonly dest: string }
  | { readonly type: 'tar'; readonly dest: string };

/** Exporter types kiln implements. */
export const EXPORT_TYPES = ['oci', 'docker', 'image', 'registry', 'local', 'tar'] as const;

function invalid(spec: string, why: string, hint?: string): ImageStoreError {
  return new ImageStoreError('OUTPUT_SPEC_INVALID', `invalid --output "${spec}": ${why}`, {
    hint: hint ?? 'e.g. type=oci,dest=out.tar  type=docker,dest=img.tar,name=app  type=image,name=localhost:5000/app:1,push=true  type=local,dest=dir  type=tar,dest=fs.tar',
  });
}

/**
 * Splits buildx's CSV: `"k=a,b"` quoting; a field without `=` continues the previous value
 * (`name=a,b`). Keys are lowercased except annotation keys, whose names are case-sensitive.
 * Also parses `--cache-to`/`--cache-from` values.
 */
export function splitFields(spec: string): [string, string][] {
  const raw: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of spec) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      raw.push(cur);
      cur = '';
    } else cur += ch;
  }
  raw.push(cur);
  const out: [string, string][] = [];
  for (const f of raw.map((x) => x.trim()).filter((x) => x !== '')) {
    const i = f.indexOf('=');
    const last = out[out.length - 1];
    if (i < 0 && last !== undefined) last[1] += `,${f}`;
    else if (i < 0) out.push([f, '']);
    else {
      const key = f.slice(0, i).trim();
      out.push([key.toLowerCase().startsWith('annotation') ? key : key.toLowerCase(), f.slice(i + 1).trim()]);
    }
  }
  return out;
}

function bool(spec: string, key: string, v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalid(spec, `${key} must be true or false`);
}

/**
 * Parses one `--output` value the way buildx does: `type=…` plus attributes; a bare path means
 * `type=local,dest=PATH`. `type=registry` is `type=image,push=true`. Defaults follow BuildKit:
 * `oci` uses OCI media types, `docker`/`image` Docker schema 2; layers gzip. `opts.names` (buildx's
 * `-t` values) name every `oci`, `docker` or `image` output, before `image` checks it has a name:
 * `--output type=registry -t REPO` is a whole output in buildx, whose toSolveOpt sets name= to the
 * tags whenever there are any (a name= of the output is replaced, not kept).
 */
export function parseOutputSpec(spec: string, opts: { readonly names?: ReadonlyArray<string> } = {}): ExportSpec {
  if (!spec.includes('=')) {
    if (spec === '' || spec === '-') throw invalid(spec, 'an output path is required (stdout is not supported)');
    return { type: 'local', dest: spec };
  }
  const attrs = new Map<string, string>();
  const annotations: ExportAnnotation[] = [];
  for (const [k, v] of splitFields(spec)) {
    const m = ANNOTATION_KEY.exec(k);
    if (m === null) {
      attrs.set(k, v);
      continue;
    }
    // ParseAnnotationKey: no type means manifest; a platform is os/arch[/variant].
    const type = m[1] ?? 'manifest';
    if (type !== 'index' && type !== 'index-descriptor' && type !== 'manifest' && type !== 'manifest-descriptor') {
      throw invalid(spec, `unrecognized annotation type ${type}`, 'use annotation.K, annotation-manifest.K, annotation-manifest-descriptor.K, annotation-index.K or annotation-index-descriptor.K');
    }
    annotations.push({ type, ...(m[2] !== undefined ? { platform: m[2] } : {}), key: m[3] ?? '', value: v });
  }
  const type = attrs.get('type');
  if (type === undefined) throw invalid(spec, 'missing type=');
  const dest = attrs.get('dest');
  const given = (attrs.get('name') ?? attrs.get('names') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const names = opts.names !== undefined && opts.names.length > 0 ? [...opts.names] : given;
  const compression = attrs.get('compression') ?? 'gzip';
  if (compression !== 'gzip' && compression !== 'uncompressed' && compression !== 'zstd') {
    throw invalid(spec, `compression "${compression}" is not supported`, 'use compression=gzip, zstd or uncompressed');
  }
  // BuildKit parses compression-level as an integer; gzip.NewWriterLevel rejects values outside -1..9.
  const levelText = attrs.get('compression-level');
  let compressionLevel: number | undefined;
  if (levelText !== undefined) {
    if (!/^-?\d+$/.test(levelText)) throw invalid(spec, `non-integer value ${levelText} specified for compression-level`);
    compressionLevel = Number(levelText);
    if (compression === 'gzip' && (compressionLevel < -1 || compressionLevel > 9)) throw invalid(spec, `gzip: invalid compression level: ${compressionLevel}`, 'use compression-level=0..9 with gzip');
  }
  const needDest = (): string => {
    if (dest === undefined || dest === '') throw invalid(spec, `type=${type} needs dest=PATH`);
    if (dest === '-') throw invalid(spec, 'dest=- (stdout) is not supported');
    return dest;
  };
  const base = (ociDefault: boolean): ImageSpecBase => ({
    names,
    compression,
    // zstd layers only exist as OCI media types; BuildKit switches to OCI for them too.
    ociMediaTypes: compression === 'zstd' || bool(spec, 'oci-mediatypes', attrs.get('oci-mediatypes'), ociDefault),
    forceCompression: bool(spec, 'force-compression', attrs.get('force-compression'), false),
    ...(compressionLevel !== undefined ? { compressionLevel } : {}),
    ...(annotations.length > 0 ? { annotations } : {}),
  });
  switch (type) {
    case 'oci':
      return { type: 'oci', dest: needDest(), tar: bool(spec, 'tar', attrs.get('tar'), true), ...base(true) };
    case 'docker':
      return { type: 'docker', dest: needDest(), ...base(false) };
    case 'image':
    case 'registry': {
      const b = base(false);
      if (b.names.length === 0) throw invalid(spec, `type=${type} needs name=NAME[,NAME…]`, 'add name=REPO[:TAG] to the output, or pass -t REPO[:TAG]');
      return { type: 'image', push: type === 'registry' || bool(spec, 'push', attrs.get('push'), false), insecure: bool(spec, 'registry.insecure', attrs.get('registry.insecure'), false), ...b };
    }
    case 'local':
      return { type: 'local', dest: needDest() };
    case 'tar':
      return { type: 'tar', dest: needDest() };
    default:
      throw invalid(spec, `unknown exporter type "${type}"`, `use one of ${EXPORT_TYPES.join(', ')}`);
  }
}
