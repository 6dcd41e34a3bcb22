import { parseDigest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import { isIndexMediaType, isManifestMediaType, MediaTypes } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/** A parsed manifest blob: an image manifest or an index / manifest list. */
export type ParsedManifest =
  | { readonly kind: 'manifest'; readonly mediaType: string; readonly manifest: ImageManifest }
  | { readonly kind: 'index'; readonly mediaType: string; readonly index: ImageIndex };

function invalid(msg: string): ImageStoreError {
  return new ImageStoreError('MANIFEST_INVALID', msg);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseStringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw invalid(`${what} must be an object`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw invalid(`${what}.${k} must be a string`);
    out[k] = x;
  }
  return out;
}

function parsePlatformField(v: unknown): Platform | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v) || typeof v['os'] !== 'string' || typeof v['architecture'] !== 'string') throw invalid('descriptor platform needs os and architecture');
  const p: { os: string; architecture: string; variant?: string; 'os.version'?: string; 'os.features'?: string[] } = {
    os: v['os'],
    architecture: v['architecture'],
  };
  if (typeof v['variant'] === 'string') p.variant = v['variant'];
  if (typeof v['os.version'] === 'string') p['os.version'] = v['os.version'];
  if (Array.isArray(v['os.features'])) p['os.features'] = v['os.features'].filter((x): x is string => typeof x === 'string');
  return p;
}

/** Validates a descriptor object from JSON. */
export function parseDescriptor(v: unknown): Descriptor {
  if (!isRecord(v)) throw invalid('descriptor must be an object');
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string') throw invalid('descriptor mediaType must be a string');
  if (typeof digest !== 'string') throw invalid('descriptor digest must be a string');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid('descriptor size must be a non-negative integer');
  const d: { -readonly [K in keyof Descriptor]: Descriptor[K] } = { mediaType, digest: parseDigest(digest), size };
  const annotations = parseStringMap(v['annotations'], 'annotations');
  if (annotations !== undefined) d.annotations = annotations;
  const platform = parsePlatformField(v['platform']);
  if (platform !== undefined) d.platform = platform;
  if (Array.isArray(v['urls'])) d.urls = v['urls'].filter((x): x is string => typeof x === 'string');
  return d;
}

/**
 * Parses a manifest or index blob. `mediaType` (from a descriptor or Content-Type) is used when the
 * body has none, as OCI allows; otherwise the shape (`manifests` vs `layers`) decides.
 */
export function parseManifest(bytes: Uint8Array, mediaType?: string): ParsedManifest {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ImageStoreError('MANIFEST_INVALID', 'manifest is not valid JSON', { cause: e });
  }
  if (!isRecord(v)) throw invalid('manifest must be a JSON object');
  if (v['schemaVersion'] !== 2) throw invalid(`unsupported manifest schemaVersion ${String(v['schemaVersion'])} (only schema 2 is supported)`);
  const bodyMt = typeof v['mediaType'] === 'string' ? v['mediaType'] : undefined;
  const annotations = parseStringMap(v['annotations'], 'annotations');
  const isIndex = bodyMt !== undefined ? isIndexMediaType(bodyMt) : mediaType !== undefined && isIndexMediaType(mediaType) ? true : Array.isArray(v['manifests']);
  if (isIndex) {
    if (!Array.isArray(v['manifests'])) throw invalid('index has no manifests array');
    const index: { -readonly [K in keyof ImageIndex]: ImageIndex[K] } = { schemaVersion: 2, manifests: v['manifests'].map(parseDescriptor) };
    if (bodyMt !== undefined) index.mediaType = bodyMt;
    if (annotations !== undefined) index.annotations = annotations;
    return { kind: 'index', mediaType: bodyMt ?? (mediaType !== undefined && isIndexMediaType(mediaType) ? mediaType : MediaTypes.ociIndex), index };
  }
  if (bodyMt !== undefined && !isManifestMediaType(bodyMt)) throw invalid(`unsupported manifest media type ${bodyMt}`);
  if (!Array.isArray(v['layers'])) throw invalid('manifest has no layers array');
  const manifest: { -readonly [K in keyof ImageManifest]: ImageManifest[K] } = {
    schemaVersion: 2,
    config: parseDescriptor(v['config']),
    layers: v['layers'].map(parseDescriptor),
  };
  if (bodyMt !== undefined) manifest.mediaType = bodyMt;
  if (annotations !== undefined) manifest.annotations = annotations;
  return { kind: 'manifest', mediaType: bodyMt ?? (mediaType !== undefined && isManifestMediaType(mediaType) ? mediaType : MediaTypes.ociManifest), manifest };
}

/** Parses an image config blob (validates only what kiln relies on: os, architecture, rootfs). */
export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ImageStoreError('MANIFEST_INVALID', 'image config is not valid JSON', { cause: e });
  }
  if (!isRecord(v)) throw invalid('image config must be a JSON object');
  if (typeof v['os'] !== 'string' || typeof v['architecture'] !== 'string') throw invalid('image config needs os and architecture');
  const rootfs = v['rootfs'];
  if (!isRecord(rootfs) || !Array.isArray(rootfs['diff_ids'])) throw invalid('image config has no rootfs.diff_ids');
  const diffIds = rootfs['diff_ids'].map((x) => {
    if (typeof x !== 'string') throw invalid('diff_id must be a string');
    return parseDigest(x);
  });
  return { ...v, os: v['os'], architecture: v['architecture'], rootfs: { type: 'layers', diff_ids: diffIds } } as ImageConfig;
}

/** Canonical compact JSON bytes (how kiln writes manifests, indexes and configs). */
export function jsonBytes(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

/** A copy of `r` with its keys in sorted order, as Go's `encoding/json` marshals a map. */
export function sortedKeys<T>(r: Readonly<Record<string, T>>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k] as T;
  return out;
}

/**
 * JSON bytes as Go's `encoding/json` writes them: `<`, `>`, `&`, U+2028 and U+2029 escaped
 * (`\u003c`…), compact or, with `indent`, as `json.MarshalIndent(v, "", indent)`. Key order is
 * the objects' own; callers build them in Go's struct order (BuildKit's exporter writes manifests
 * and indexes with `MarshalIndent(…, "", "   ")`).
 */
export function goJsonBytes(v: unknown, indent?: string): Buffer {
  const text = JSON.stringify(v, null, indent).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return Buffer.from(text, 'utf8');
}
