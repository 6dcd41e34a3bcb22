/**
 * The index side of rebasing a multi-platform app image (no I/O): which children of the app's
 * index are images to rebase, which run image manifest goes under each, and the new index with
 * each image child replaced by its rebased manifest. pack and lifecycle rebase one platform of an
 * image; kiln rebases each image of the index, as go-containerregistry's proposed
 * `mutate.RebaseIndex` pairs the app's and the base's manifests by platform.
 */
import { MediaTypes, digestOf, formatPlatform, isIndexMediaType, isManifestMediaType, jsonBytes, platformEquals, type Descriptor, type ImageConfig, type ImageIndex, type Platform } from '@kiln/runtime';
import { RebaseError } from './errors.js';

/** Annotations of BuildKit's attestation manifests (they point at the image they describe). */
const REFERENCE_ANNOTATIONS = ['vnd.docker.reference.type', 'vnd.docker.reference.digest', 'com.docker.reference.digest'];

/** True for an attestation manifest (BuildKit's `unknown/unknown` entries with a reference annotation). */
export function isAttestation(d: Descriptor): boolean {
  return REFERENCE_ANNOTATIONS.some((k) => d.annotations?.[k] !== undefined);
}

/** The children of an app image index, sorted out for a rebase. */
export interface AppIndexChildren {
  /** Image manifests: each is rebased. */
  readonly images: ReadonlyArray<Descriptor>;
  /**
   * Attestation manifests and other non-image entries: left out of the new index. They describe
   * (and point at) the manifests the rebase replaces; an SBOM would list the old run image.
   */
  readonly dropped: ReadonlyArray<Descriptor>;
}

/** Sorts an app index's children; a nested index (which could hide images) is refused with KLN0928. */
export function appIndexChildren(name: string, index: ImageIndex): AppIndexChildren {
  const images: Descriptor[] = [];
  const dropped: Descriptor[] = [];
  for (const m of index.manifests) {
    if (isIndexMediaType(m.mediaType)) {
      throw new RebaseError('KLN0928', `${name} holds a nested index (${m.digest}): kiln rebases the image manifests of one index`, {
        hint: 'rebase the nested index by digest (--previous-image NAME@DIGEST), or flatten it with kiln imagetools create',
      });
    }
    if (isManifestMediaType(m.mediaType) && !isAttestation(m)) images.push(m);
    else dropped.push(m);
  }
  if (images.length === 0) throw new RebaseError('KLN0920', `${name} is an index without image manifests: nothing to rebase`);
  return { images, dropped };
}

/** A child's platform: its descriptor's, else its config's (os, architecture, variant). */
export function childPlatform(desc: Descriptor, config: ImageConfig): Platform {
  const p = desc.platform;
  if (p !== undefined && p.os !== '' && p.architecture !== '') return p;
  return { os: config.os, architecture: config.architecture, ...(config.variant === undefined || config.variant === '' ? {} : { variant: config.variant }) };
}

/**
 * The run image manifest for `platform` in the run image index `runName` names: the image child
 * whose os/architecture/variant equal it (normalised: `arm64` is `arm64/v8`). None is a KLN0927
 * refusal naming the platform and the ones the run image has.
 */
export function runManifestFor(runName: string, index: ImageIndex, platform: Platform): Descriptor {
  const images = index.manifests.filter((m) => isManifestMediaType(m.mediaType) && !isAttestation(m) && m.platform !== undefined);
  const hit = images.find((m) => m.platform !== undefined && platformEquals(m.platform, platform));
  if (hit !== undefined) return hit;
  const have = images.map((m) => (m.platform === undefined ? '?' : formatPlatform(m.platform)));
  throw new RebaseError('KLN0927', `the run image ${runName} has no ${formatPlatform(platform)} manifest (it has ${have.length === 0 ? 'none' : have.join(', ')})`, {
    hint: 'every platform of the app image is rebased: give a run image (--run-image) that has them all, or make the app image without that platform',
  });
}

/** One image child of the app index and the manifest that replaces it. */
export interface ReplacedChild {
  readonly old: Descriptor;
  readonly manifest: Descriptor;
  readonly config: ImageConfig;
}

/** The rebased index, as stored bytes. */
export interface RebasedIndex {
  readonly desc: Descriptor;
  readonly bytes: Buffer;
}

/**
 * The app's index with each image child replaced by its rebased manifest (media type, digest,
 * size; the platform follows the new config only where it no longer matches) and the dropped
 * entries left out. Everything else of the index and its entries is kept as it was (annotations,
 * fields kiln does not know). The media type stays the app's, except that a Docker manifest list
 * that now holds an OCI manifest (a run image with zstd layers makes its child OCI) becomes an
 * OCI index, as the child did.
 */
export function rebasedIndex(raw: Buffer, mediaType: string, replaced: ReadonlyArray<ReplacedChild>, dropped: ReadonlyArray<Descriptor>): RebasedIndex {
  let doc: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Array.isArray((v as Record<string, unknown>)['manifests'])) throw new Error('not an index object');
    doc = v as Record<string, unknown>;
  } catch (cause) {
    throw new RebaseError('KLN0925', 'the app image index is not a JSON index', { cause });
  }
  const byDigest = new Map(replaced.map((r) => [r.old.digest as string, r]));
  const drop = new Set(dropped.map((d) => d.digest as string));
  const manifests = (doc['manifests'] as unknown[]).flatMap((entry): unknown[] => {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const digest = typeof e['digest'] === 'string' ? e['digest'] : '';
    if (drop.has(digest)) return [];
    const r = byDigest.get(digest);
    if (r === undefined) return [entry];
    const c = r.config;
    const now: Platform = { os: c.os, architecture: c.architecture, ...(c.variant === undefined || c.variant === '' ? {} : { variant: c.variant }) };
    const keep = r.old.platform !== undefined && r.old.platform.os !== '' && platformEquals(r.old.platform, now);
    // a platform that no longer matches is the new config's, whole: the old variant or os.version
    // would describe the other architecture (linux/amd64/v7)
    const platform = keep ? e['platform'] : { ...now, ...(c['os.version'] === undefined || c['os.version'] === '' ? {} : { 'os.version': c['os.version'] }) };
    return [{ ...e, mediaType: r.manifest.mediaType, digest: r.manifest.digest, size: r.manifest.size, ...(platform === undefined ? {} : { platform }) }];
  });
  const toOci = mediaType === MediaTypes.dockerManifestList && replaced.some((r) => r.manifest.mediaType === MediaTypes.ociManifest);
  const outType = toOci ? MediaTypes.ociIndex : mediaType;
  const out = { ...doc, ...(doc['mediaType'] !== undefined || toOci ? { mediaType: outType } : {}), manifests };
  const bytes = jsonBytes(out);
  return { desc: { mediaType: outType, digest: digestOf(bytes), size: bytes.length }, bytes };
}
