import type { ContentStore, ExportResult } from '@kiln/runtime';

/**
 * How `--metadata-file` names a build's history record: buildx's `buildx.build.ref` is
 * `BUILDER/NODE/REF`; kiln has one builder of one node. `kiln history` takes the whole value too.
 */
const BUILD_REF_PREFIX = 'kiln/kiln0/';

/** What `kiln build` and each bake target write to `--metadata-file`, and the image ID (`--iidfile`, `-q`). */
export interface ResultMetadata {
  readonly meta: Record<string, unknown>;
  /** The first image output's config digest, else its manifest digest; undefined without one. */
  readonly imageId: string | undefined;
}

/**
 * buildx's metadata for the first image output (`containerimage.config.digest`,
 * `containerimage.descriptor`, `containerimage.digest`, `image.name`) and `buildx.build.ref`
 * when the build was recorded.
 */
export async function resultMetadata(content: ContentStore, exports: readonly ExportResult[], historyRef: string | undefined): Promise<ResultMetadata> {
  const meta: Record<string, unknown> = {};
  if (historyRef !== undefined) meta['buildx.build.ref'] = `${BUILD_REF_PREFIX}${historyRef}`;
  const image = exports.find((x) => x.digest !== undefined);
  if (image?.digest === undefined) return { meta, imageId: undefined };
  const bytes = await content.readBlob(image.digest);
  const manifest = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; config?: { digest?: string } };
  const configDigest = manifest.config?.digest;
  if (configDigest !== undefined) meta['containerimage.config.digest'] = configDigest;
  // buildx also writes the root descriptor (what a registry would serve for the tag).
  if (manifest.mediaType !== undefined) meta['containerimage.descriptor'] = { mediaType: manifest.mediaType, digest: image.digest, size: bytes.length };
  meta['containerimage.digest'] = image.digest;
  if (image.names.length > 0) meta['image.name'] = image.names.join(',');
  return { meta, imageId: configDigest ?? image.digest };
}

/**
 * What buildx writes to `--metadata-file` after a `--call` (v0.14+): the subrequest's result
 * metadata (`result.json`, `result.txt`, `result.statuscode`, `version`), decoded as its
 * decodeExporterResponse does, and nothing of a build (no `buildx.build.ref`, no warnings).
 * Keys sorted, as Go marshals a map.
 */
export function callMetadata(metadata: ReadonlyMap<string, Uint8Array>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of [...metadata.keys()].sort()) {
    const v = new TextDecoder().decode(metadata.get(k));
    // result.json is JSON already; every other value is tried as base64 of JSON
    const raw = k === 'result.json' ? v : goBase64Decode(v);
    out[k] = raw === undefined ? v : (jsonObjectOrList(raw) ?? v);
  }
  return out;
}

/** Go's base64.StdEncoding.DecodeString as text (it skips \r and \n; padding is required); undefined when it fails. */
function goBase64Decode(s: string): string | undefined {
  const t = s.replace(/[\r\n]/g, '');
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return undefined;
  return Buffer.from(t, 'base64').toString('utf8');
}

/** `text` parsed when it is a JSON object with keys or a non-empty list of objects (what buildx inlines). */
function jsonObjectOrList(text: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const isObject = (x: unknown): boolean => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isObject(v) && Object.keys(v as object).length > 0) return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => x === null || isObject(x))) return v;
  return undefined;
}
