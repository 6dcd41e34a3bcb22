import type { Descriptor, Platform } from '@kiln/runtime';

/**
 * JSON as Go's `encoding/json` writes the OCI structs buildx marshals: fields in the Go struct
 * order, empty optional fields left out, map keys sorted, `<>&` and U+2028/9 escaped, and with
 * `indent` the layout of `json.MarshalIndent(v, "", indent)`.
 */
export function goJson(v: unknown, indent?: string): string {
  return JSON.stringify(v, null, indent).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A map with its keys sorted (Go marshals maps so); undefined when empty (`omitempty`). */
export function goMap<T>(m: Readonly<Record<string, T>> | undefined): Record<string, T> | undefined {
  if (m === undefined) return undefined;
  const keys = Object.keys(m).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, T> = {};
  for (const k of keys) out[k] = m[k] as T;
  return out;
}

/** ocispec.Platform in Go order: architecture, os, os.version, os.features, variant. */
export function goPlatform(p: Platform): Record<string, unknown> {
  const out: Record<string, unknown> = { architecture: p.architecture, os: p.os };
  if (p['os.version'] !== undefined && p['os.version'] !== '') out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined && p['os.features'].length > 0) out['os.features'] = [...p['os.features']];
  if (p.variant !== undefined && p.variant !== '') out['variant'] = p.variant;
  return out;
}

/** Fields of ocispec.Descriptor (OCI 1.1) that the runtime's Descriptor does not carry. */
interface DescriptorExtras {
  readonly artifactType?: string;
  /** Base64, as Go marshals the []byte. */
  readonly data?: string;
}

/**
 * The children of an index with the `artifactType` and `data` of their JSON (which the runtime's
 * parser drops), so that re-marshalling them loses nothing, as buildx's ocispec.Descriptor does not.
 */
export function withExtras(manifests: ReadonlyArray<Descriptor>, raw: Buffer): Descriptor[] {
  let list: unknown;
  try {
    list = (JSON.parse(raw.toString('utf8')) as { manifests?: unknown }).manifests;
  } catch {
    return [...manifests];
  }
  return manifests.map((d, i) => {
    const r: unknown = Array.isArray(list) ? list[i] : undefined;
    if (typeof r !== 'object' || r === null) return d;
    const { artifactType, data } = r as Record<string, unknown>;
    const extras: { artifactType?: string; data?: string } = {};
    if (typeof artifactType === 'string' && artifactType !== '') extras.artifactType = artifactType;
    if (typeof data === 'string' && data !== '') extras.data = data;
    return Object.keys(extras).length > 0 ? { ...d, ...extras } : d;
  });
}

/** ocispec.Descriptor in Go order: mediaType, digest, size, urls, annotations, data, platform, artifactType. */
export function goDescriptor(d: Descriptor): Record<string, unknown> {
  const x = d as Descriptor & DescriptorExtras;
  const out: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.urls !== undefined && d.urls.length > 0) out['urls'] = [...d.urls];
  const ann = goMap(d.annotations);
  if (ann !== undefined) out['annotations'] = ann;
  if (x.data !== undefined && x.data !== '') out['data'] = x.data;
  if (d.platform !== undefined) out['platform'] = goPlatform(d.platform);
  if (x.artifactType !== undefined && x.artifactType !== '') out['artifactType'] = x.artifactType;
  return out;
}

/** ocispec.Index in Go order: schemaVersion, mediaType, manifests, annotations. */
export function goIndex(mediaType: string, manifests: ReadonlyArray<Descriptor>, annotations?: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = { schemaVersion: 2, mediaType, manifests: manifests.map(goDescriptor) };
  const ann = goMap(annotations);
  if (ann !== undefined) out['annotations'] = ann;
  return out;
}

const CONFIG_FIELDS = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped'] as const;
const MAP_FIELDS = new Set(['ExposedPorts', 'Volumes', 'Labels']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === false || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isRecord(v)) return Object.keys(v).length > 0;
  return true;
}

/**
 * An image config as buildx prints `{{json .Image}}`: decoded into ocispec.Image and marshalled
 * again, so only the OCI fields, in Go order (created, author, architecture, os, os.version,
 * os.features, variant, config, rootfs, history), empty ones left out.
 */
export function goImage(v: unknown): Record<string, unknown> {
  if (!isRecord(v)) return {};
  const out: Record<string, unknown> = {};
  const copy = (k: string): void => {
    if (nonEmpty(v[k])) out[k] = v[k];
  };
  copy('created');
  copy('author');
  out['architecture'] = typeof v['architecture'] === 'string' ? v['architecture'] : '';
  out['os'] = typeof v['os'] === 'string' ? v['os'] : '';
  copy('os.version');
  copy('os.features');
  copy('variant');
  // ocispec.ImageConfig has `omitempty` on every field, but Image.Config is a struct: always written.
  const cfg = isRecord(v['config']) ? v['config'] : {};
  const c: Record<string, unknown> = {};
  for (const k of CONFIG_FIELDS) {
    const x = cfg[k];
    if (!nonEmpty(x)) continue;
    c[k] = MAP_FIELDS.has(k) && isRecord(x) ? goMap(x) : x;
  }
  out['config'] = c;
  const rootfs = isRecord(v['rootfs']) ? v['rootfs'] : {};
  out['rootfs'] = { type: typeof rootfs['type'] === 'string' ? rootfs['type'] : '', diff_ids: Array.isArray(rootfs['diff_ids']) ? rootfs['diff_ids'] : null };
  if (Array.isArray(v['history']) && v['history'].length > 0) {
    out['history'] = v['history'].map((h: unknown) => {
      const e = isRecord(h) ? h : {};
      const o: Record<string, unknown> = {};
      for (const k of ['created', 'created_by', 'author', 'comment', 'empty_layer']) if (nonEmpty(e[k])) o[k] = e[k];
      return o;
    });
  }
  return out;
}
