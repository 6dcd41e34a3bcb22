import { isIndexMediaType, isManifestMediaType, normalizePlatform, parseManifest, type Descriptor, type ImageIndex, type ImageManifest } from '@kiln/runtime';
import { ImagetoolsError, parseJsonContent } from './errors.js';
import { goDescriptor, goImage, goMap, withExtras } from './go-json.js';
import { platformString } from './platform-format.js';
import type { ManifestSource } from './source.js';
import { tabBlock } from './tabwriter.js';

/** What `kiln imagetools inspect` read: the root's exact bytes and descriptor, parsed. */
export interface Inspected {
  readonly source: ManifestSource;
  readonly desc: Descriptor;
  readonly raw: Buffer;
  /** Set when the root is an index / manifest list. */
  readonly index?: ImageIndex | undefined;
}

/** Resolves and fetches the root manifest or index (no child is read). */
export async function loadRoot(source: ManifestSource): Promise<Inspected> {
  const desc = await source.resolve();
  const raw = await source.fetch(desc);
  if (isIndexMediaType(desc.mediaType)) {
    const p = parseManifest(raw, desc.mediaType);
    return { source, desc, raw, index: p.kind === 'index' ? { ...p.index, manifests: withExtras(p.index.manifests, raw) } : undefined };
  }
  if (!isManifestMediaType(desc.mediaType)) throw new ImagetoolsError('KLN0865', `${source.name}: unsupported media type ${desc.mediaType}`);
  return { source, desc, raw };
}

const PFX = '  ';

/**
 * The summary buildx prints (`util/imagetools/printers.go`): Name, MediaType and Digest, and for an
 * index each child's name@digest, media type, platform (OSVersion, OSFeatures, URLs and sorted
 * annotations when set, as buildx prints them only for children with a platform). The rows are
 * aligned as Go's tabwriter does, a block ending where buildx flushes it (after "Annotations:").
 */
export function formatSummary(r: Inspected): string {
  let out = tabBlock([
    ['Name:', r.source.name],
    ['MediaType:', r.desc.mediaType],
    ['Digest:', r.desc.digest],
  ]);
  if (r.index === undefined) return out;
  out += tabBlock([
    ['', ''],
    ['Manifests:', ''],
  ]);
  let block: [string, string][] = [];
  r.index.manifests.forEach((m, i) => {
    if (i !== 0) block.push(['', '']);
    block.push([`${PFX}Name:`, r.source.childName(m.digest)]);
    block.push([`${PFX}MediaType:`, m.mediaType]);
    const p = m.platform;
    if (p === undefined) return;
    block.push([`${PFX}Platform:`, platformString(p)]);
    if (p['os.version'] !== undefined && p['os.version'] !== '') block.push([`${PFX}OSVersion:`, p['os.version']]);
    if (p['os.features'] !== undefined && p['os.features'].length > 0) block.push([`${PFX}OSFeatures:`, p['os.features'].join(', ')]);
    if (m.urls !== undefined && m.urls.length > 0) block.push([`${PFX}URLs:`, m.urls.join(', ')]);
    const ann = goMap(m.annotations);
    if (ann !== undefined) {
      block.push([`${PFX}Annotations:`, '']);
      out += tabBlock(block);
      block = [];
      out += tabBlock(Object.entries(ann).map(([k, v]) => [`${PFX}${PFX}${k}:`, v] as [string, string]));
    }
  });
  if (block.length > 0) out += tabBlock(block);
  return out;
}

/** The annotations that mark an attestation manifest's subject (BuildKit's new and old names). */
const REFERENCE_DIGEST = ['com.docker.reference.digest', 'vnd.docker.reference.digest'];
const INTOTO = 'application/vnd.in-toto+json';

/** Per-platform configs and attestations of an image, as buildx's loader gathers them for `--format`. */
export interface LoadedImage {
  /** Platform (`linux/amd64`) → image config (parsed JSON), sorted by platform. */
  readonly configs: ReadonlyMap<string, unknown>;
  /** Platform → in-toto statements of its attestation manifests (parsed JSON). */
  readonly statements: ReadonlyMap<string, ReadonlyArray<{ predicateType: string; statement: unknown }>>;
}

/**
 * Reads what `--format` needs: every image manifest's config (its platform from the index
 * descriptor, else from the config), and the in-toto layers of the attestation manifests that
 * point at it. Layers of images are never fetched.
 */
export async function loadImages(r: Inspected, wantAttestations: boolean): Promise<LoadedImage> {
  const images = new Map<string, { manifest: ImageManifest; desc: Descriptor }>();
  const attest = new Map<string, Descriptor[]>();
  const manifests = new Map<string, ImageManifest>();
  // A 4 MiB index holds thousands of children: a few fetches at a time, not one socket each.
  const fetch = limited(8, (d: Descriptor) => r.source.fetch(d));
  const visit = async (desc: Descriptor, bytes: Buffer | undefined, depth: number): Promise<void> => {
    if (depth > 4) return;
    if (!isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType)) return;
    const raw = bytes ?? (await fetch(desc));
    const p = parseManifest(raw, desc.mediaType);
    if (p.kind === 'index') {
      await Promise.all(p.index.manifests.map((m) => visit(m, undefined, depth + 1)));
      return;
    }
    manifests.set(desc.digest, p.manifest);
    const subject = REFERENCE_DIGEST.map((k) => desc.annotations?.[k]).find((v) => v !== undefined);
    if (subject !== undefined) {
      attest.set(subject, [...(attest.get(subject) ?? []), desc]);
      return;
    }
    let platform = desc.platform;
    if (platform === undefined) {
      const v = parseJsonContent(await fetch(p.manifest.config), `config ${p.manifest.config.digest}`);
      const cfg = (typeof v === 'object' && v !== null ? v : {}) as { os?: unknown; architecture?: unknown; variant?: unknown };
      platform = {
        os: typeof cfg.os === 'string' ? cfg.os : '',
        architecture: typeof cfg.architecture === 'string' ? cfg.architecture : '',
        ...(typeof cfg.variant === 'string' ? { variant: cfg.variant } : {}),
      };
    }
    images.set(platformString(normalizePlatform(platform)), { manifest: p.manifest, desc });
  };
  await visit(r.desc, r.raw, 0);
  const configs = new Map<string, unknown>();
  const statements = new Map<string, { predicateType: string; statement: unknown }[]>();
  for (const plat of [...images.keys()].sort()) {
    const img = images.get(plat);
    if (img === undefined) continue;
    configs.set(plat, parseJsonContent(await fetch(img.manifest.config), `config ${img.manifest.config.digest}`));
    if (!wantAttestations) continue;
    const list: { predicateType: string; statement: unknown }[] = [];
    for (const a of attest.get(img.desc.digest) ?? []) {
      const am = manifests.get(a.digest);
      for (const layer of am?.layers ?? []) {
        const pt = layer.annotations?.['in-toto.io/predicate-type'];
        if (pt === undefined || !(layer.mediaType === INTOTO || /^application\/vnd\.in-toto\..*\+dsse$/.test(layer.mediaType))) continue;
        const what = `attestation ${layer.digest}`;
        let text = (await fetch(layer)).toString('utf8');
        if (layer.mediaType !== INTOTO) {
          const env = parseJsonContent(text, what);
          text = Buffer.from(String((typeof env === 'object' && env !== null ? (env as { payload?: unknown }).payload : undefined) ?? ''), 'base64').toString('utf8');
        }
        list.push({ predicateType: pt, statement: parseJsonContent(text, what) });
      }
    }
    statements.set(plat, list);
  }
  return { configs, statements };
}

/** `{{json .Manifest}}`: the root descriptor of a manifest; for an index, the index with its digest and size. */
export function manifestValue(r: Inspected): unknown {
  if (r.index === undefined) return goDescriptor(r.desc);
  const out: Record<string, unknown> = { schemaVersion: r.index.schemaVersion };
  if (r.index.mediaType !== undefined) out['mediaType'] = r.index.mediaType;
  out['digest'] = r.desc.digest;
  out['size'] = r.desc.size;
  out['manifests'] = r.index.manifests.map(goDescriptor);
  const ann = goMap(r.index.annotations);
  if (ann !== undefined) out['annotations'] = ann;
  return out;
}

const SPDX = 'https://spdx.dev/Document';

function predicateOf(s: unknown): unknown {
  return typeof s === 'object' && s !== null ? (s as { predicate?: unknown }).predicate : undefined;
}

/**
 * The template input buildx builds: Name, Manifest, Image (one config, or a map by platform when
 * the image has several), Provenance (`{SLSA}`) and SBOM (`{SPDX, AdditionalSPDXs}`), likewise.
 */
export function templateInput(name: string, r: Inspected, loaded: LoadedImage): Record<string, unknown> {
  const prov = (plat: string): Record<string, unknown> => {
    const s = loaded.statements.get(plat)?.find((x) => x.predicateType.startsWith('https://slsa.dev/provenance/'));
    return s === undefined ? {} : { SLSA: predicateOf(s.statement) };
  };
  const sbom = (plat: string): Record<string, unknown> => {
    const all = (loaded.statements.get(plat) ?? []).filter((x) => x.predicateType === SPDX).map((x) => predicateOf(x.statement));
    if (all.length === 0) return {};
    return all.length === 1 ? { SPDX: all[0] } : { SPDX: all[0], AdditionalSPDXs: all.slice(1) };
  };
  const plats = [...loaded.configs.keys()];
  const multi = plats.length > 1;
  const image = multi ? Object.fromEntries(plats.map((p) => [p, goImage(loaded.configs.get(p))])) : plats[0] === undefined ? null : goImage(loaded.configs.get(plats[0]));
  const perPlat = (f: (p: string) => Record<string, unknown>): unknown => {
    if (multi) return Object.fromEntries(plats.map((p) => [p, f(p)]).filter(([, v]) => Object.keys(v as object).length > 0));
    return plats[0] === undefined ? {} : f(plats[0]);
  };
  return { Name: name, Manifest: manifestValue(r), Image: image, Provenance: perPlat(prov), SBOM: perPlat(sbom) };
}

/** `fn` with at most `n` calls running; a finished call hands its slot to the next waiting one. */
function limited<A, T>(n: number, fn: (a: A) => Promise<T>): (a: A) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (a) => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await fn(a);
    } finally {
      const next = waiting.shift();
      if (next !== undefined) next();
      else active--;
    }
  };
}
