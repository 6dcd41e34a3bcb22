import { SolverError } from '../errors.js';

/**
 * BuildKit's cache config (cache/remotecache/v1/spec.go, `CacheConfigMediaTypeV0`): the blob a
 * cache manifest list points at with this media type, or (records only) an image config's
 * `moby.buildkit.cache.v0` for inline cache.
 */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildkit.cacheconfig.v0';

/** The image config key of inline cache (remotecache/import.go `image.Cache`): base64 of the records JSON. */
export const INLINE_CACHE_KEY = 'moby.buildkit.cache.v0';

/** Layer descriptor annotations BuildKit puts on cache blobs (containerd's label names). */
export const ANNOTATION_UNCOMPRESSED = 'containerd.io/uncompressed';
export const ANNOTATION_CREATED_AT = 'buildkit/createdat';

/** BuildKit's exptypes.EmptyGZLayer: marshalRemote leaves this blob out of a chain. */
export const EMPTY_GZ_LAYER = 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1';

/** v1.LayerAnnotations (used by backends without a manifest list; read, never written by kiln). */
export interface CacheLayerAnnotations {
  readonly mediaType?: string;
  readonly diffID?: string;
  readonly size?: number;
  readonly createdAt?: string;
}

/** v1.CacheLayer: a blob and the index of the layer below it (-1: none). */
export interface CacheConfigLayer {
  readonly blob: string;
  readonly parent: number;
  readonly annotations?: CacheLayerAnnotations;
}

/** v1.CacheInput: a link from record `link`, narrowed by `selector`. */
export interface CacheConfigInput {
  readonly selector: string;
  readonly link: number;
}

/** v1.CacheResult: the top layer of a result's chain and when the result was made. */
export interface CacheConfigResult {
  readonly layer: number;
  /** RFC 3339 as Go writes time.Time. */
  readonly createdAt: string;
}

/** v1.CacheRecord: a cache key (rootKey of its digest and output), its inputs' links and results. */
export interface CacheConfigRecord {
  readonly digest: string;
  readonly inputs: ReadonlyArray<ReadonlyArray<CacheConfigInput>>;
  readonly results: ReadonlyArray<CacheConfigResult>;
}

/** v1.CacheConfig. */
export interface CacheConfig {
  readonly layers: ReadonlyArray<CacheConfigLayer>;
  readonly records: ReadonlyArray<CacheConfigRecord>;
}

/** A layer blob of a cache result, as a descriptor (the manifest list entry). */
export interface CacheLayerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Go's time.Time JSON (RFC 3339 with the fraction's trailing zeros dropped), in UTC. */
export function goTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z').replace(/\.Z$/, 'Z');
}

/**
 * The JSON bytes Go's encoding/json writes for a {@link CacheConfig}: struct field order, `omitempty`
 * fields left out (`parent` 0 included: BuildKit writes no `parent` for index 0 and readers take
 * the missing field as 0).
 */
export function marshalCacheConfig(cc: CacheConfig): string {
  return JSON.stringify(cacheConfigJson(cc));
}

/** The inline form: the records array alone (inline.go ExportForLayers marshals `cfg.Records`). */
export function marshalCacheRecords(records: ReadonlyArray<CacheConfigRecord>): string {
  return JSON.stringify(records.map(recordJson));
}

function cacheConfigJson(cc: CacheConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (cc.layers.length > 0) {
    out['layers'] = cc.layers.map((l) => ({
      blob: l.blob,
      ...(l.parent === 0 ? {} : { parent: l.parent }),
      ...(l.annotations === undefined ? {} : { annotations: l.annotations }),
    }));
  }
  if (cc.records.length > 0) out['records'] = cc.records.map(recordJson);
  return out;
}

function recordJson(r: CacheConfigRecord): Record<string, unknown> {
  return {
    ...(r.results.length === 0 ? {} : { layers: r.results.map((x) => ({ layer: x.layer, createdAt: x.createdAt })) }),
    digest: r.digest,
    ...(r.inputs.length === 0 ? {} : { inputs: r.inputs.map((ins) => ins.map((i) => ({ ...(i.selector === '' ? {} : { selector: i.selector }), link: i.link }))) }),
  };
}

function bad(why: string): SolverError {
  return new SolverError('SOLVER_CACHE_IMPORT', `invalid cache config: ${why}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const int = (v: unknown, def: number, what: string): number => {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(`${what} is not an integer`);
  return v;
};
const str = (v: unknown, what: string): string => {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw bad(`${what} is not a string`);
  return v;
};

/** Parses the records array of a cache config (or of inline cache). */
export function parseCacheRecords(v: unknown): CacheConfigRecord[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad('records is not an array');
  return v.map((r: unknown, i) => {
    if (!isObj(r)) throw bad(`record ${i} is not an object`);
    const inputs = r['inputs'] === undefined || r['inputs'] === null ? [] : r['inputs'];
    if (!Array.isArray(inputs)) throw bad(`record ${i}: inputs is not an array`);
    const results = r['layers'] === undefined || r['layers'] === null ? [] : r['layers'];
    if (!Array.isArray(results)) throw bad(`record ${i}: layers is not an array`);
    return {
      digest: str(r['digest'], `record ${i} digest`),
      inputs: inputs.map((ins: unknown) => {
        if (!Array.isArray(ins)) throw bad(`record ${i}: an input is not an array`);
        return ins.map((x: unknown) => {
          if (!isObj(x)) throw bad(`record ${i}: an input link is not an object`);
          return { selector: str(x['selector'], 'selector'), link: int(x['link'], 0, 'link') };
        });
      }),
      results: results.map((x: unknown) => {
        if (!isObj(x)) throw bad(`record ${i}: a result is not an object`);
        return { layer: int(x['layer'], 0, 'layer'), createdAt: str(x['createdAt'], 'createdAt') };
      }),
    };
  });
}

/** Parses a cache config blob (JSON bytes or text); throws SOLVER_CACHE_IMPORT when it is not one. */
export function parseCacheConfig(data: string | Uint8Array): CacheConfig {
  let v: unknown;
  try {
    v = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
  } catch (cause) {
    throw new SolverError('SOLVER_CACHE_IMPORT', 'invalid cache config: not JSON', { cause });
  }
  if (!isObj(v)) throw bad('not an object');
  const layersRaw = v['layers'] === undefined || v['layers'] === null ? [] : v['layers'];
  if (!Array.isArray(layersRaw)) throw bad('layers is not an array');
  const layers = layersRaw.map((l: unknown, i): CacheConfigLayer => {
    if (!isObj(l)) throw bad(`layer ${i} is not an object`);
    const a = l['annotations'];
    const annotations: CacheLayerAnnotations | undefined = isObj(a)
      ? {
          ...(typeof a['mediaType'] === 'string' ? { mediaType: a['mediaType'] } : {}),
          ...(typeof a['diffID'] === 'string' ? { diffID: a['diffID'] } : {}),
          ...(typeof a['size'] === 'number' ? { size: a['size'] } : {}),
          ...(typeof a['createdAt'] === 'string' ? { createdAt: a['createdAt'] } : {}),
        }
      : undefined;
    return { blob: str(l['blob'], `layer ${i} blob`), parent: int(l['parent'], 0, `layer ${i} parent`), ...(annotations === undefined ? {} : { annotations }) };
  });
  return { layers, records: parseCacheRecords(v['records']) };
}

/**
 * The layer chain (bottom first) ending at layer `idx`, as v1/parse.go getRemoteChain walks it:
 * out-of-range indexes and loops are errors.
 */
export function layerChain(layers: ReadonlyArray<CacheConfigLayer>, idx: number): CacheConfigLayer[] {
  const out: CacheConfigLayer[] = [];
  const seen = new Set<number>();
  for (let i = idx; i !== -1; ) {
    if (seen.has(i)) throw bad('looping layer');
    seen.add(i);
    const l = layers[i];
    if (l === undefined) throw bad(`layer index ${i} out of range`);
    out.unshift(l);
    i = l.parent;
  }
  return out;
}
