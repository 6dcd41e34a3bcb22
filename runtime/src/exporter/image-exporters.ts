import { digestHex } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { convertLayer, writeImage, writeIndex, type ImageConfigDraft, type LayerRef } from '../image/image-writer.js';
import { jsonBytes, parseManifest, sortedKeys } from '../image/manifest.js';
import { isIndexMediaType, layerCompression } from '../image/media-types.js';
import { addToOciLayoutDir, writeOciLayoutTar } from '../image/oci-layout.js';
import type { Descriptor, Platform } from '../image/types.js';
import { familiarReference, formatReference, parseReference } from '../registry/reference.js';
import type { ExportAnnotation, ExportAnnotationType, ExportCompression } from './spec.js';
import { formatPlatform, parsePlatform } from '../image/platform.js';
import { Attestation, imageSubjects, isAttestationManifest, statementBytes, writeAttestationManifest, type InTotoAttestation } from './attestation.js';

/** One platform's image to export: layers already in the content store and a config draft. */
export interface ExportImageSource {
  readonly layers: ReadonlyArray<LayerRef>;
  readonly config: ImageConfigDraft;
  /**
   * Attestations of this platform's image. With any, the image is written as BuildKit writes an
   * attested one: OCI media types, always an index (one platform too), and after the image
   * manifests one attestation manifest per attested image (attestation-storage.md).
   */
  readonly attestations?: ReadonlyArray<InTotoAttestation> | undefined;
}

/** An image for image exporters: per-platform sources (written now) or an existing descriptor. */
export type ExportImage = ExportImageSource | ReadonlyArray<ExportImageSource> | { readonly descriptor: Descriptor };

/** How to write manifests. */
export interface ImageWriteSettings {
  readonly ociMediaTypes: boolean;
  readonly compression: ExportCompression;
  readonly forceCompression: boolean;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** `compression-level` for layers the exporter (re)compresses. */
  readonly compressionLevel?: number | undefined;
  /** `annotation…` output options: manifest, manifest-descriptor and index ones are applied here. */
  readonly annotationOptions?: ReadonlyArray<ExportAnnotation> | undefined;
  /** Image names: the subjects of attestation statements (as purls with the platform). */
  readonly names?: ReadonlyArray<string> | undefined;
}

/** The options of one type for a platform (global ones, then that platform's), as BuildKit's Annotations.Platform merges them. */
export function annotationsFor(options: ReadonlyArray<ExportAnnotation> | undefined, type: ExportAnnotationType, platform?: Platform): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const here = platform !== undefined ? formatPlatform(platform) : undefined;
  for (const a of options ?? []) if (a.type === type && a.platform === undefined) out[a.key] = a.value;
  for (const a of options ?? []) if (a.type === type && a.platform !== undefined && here !== undefined && formatPlatform(parsePlatform(a.platform)) === here) out[a.key] = a.value;
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * Encoder levels for `compression-level`: gzip takes it as is; zstd maps it onto the four speeds of
 * BuildKit's encoder (toZstdEncoderLevel: negative default, <3 fastest, <7 default, <9 better, else best), given to the zstd
 * binary as the levels those speeds correspond to (1, 3, 7, 11).
 */
function levels(level: number | undefined): { gzipLevel?: number; zstdLevel?: number } {
  if (level === undefined) return {};
  const zstdLevel = level < 0 ? 3 : level < 3 ? 1 : level < 7 ? 3 : level < 9 ? 7 : 11;
  return { gzipLevel: level, zstdLevel };
}

function merged(...maps: (Readonly<Record<string, string>> | undefined)[]): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const m of maps) Object.assign(out, m ?? {});
  return Object.keys(out).length === 0 ? undefined : sortedKeys(out);
}

/**
 * Writes the config(s), manifest(s) and, for several platforms, an index into the store. Layers
 * are written in the requested compression (re-encoded, streaming, when it differs), except base
 * image blobs ({@link LayerRef.fromImage}) without `forceCompression`, which are kept as they are.
 */
export async function materializeImage(store: ContentStore, image: ExportImage, s: ImageWriteSettings): Promise<Descriptor> {
  if ('descriptor' in image) return image.descriptor;
  const sources: ReadonlyArray<ExportImageSource> = Array.isArray(image) ? image : [image as ExportImageSource];
  if (sources.length === 0) throw new ImageStoreError('EXPORT_FAILED', 'nothing to export: no image');
  // BuildKit's Commit: attestations make the result a map (an index) and enable OCI types.
  const attested = sources.some((src) => (src.attestations?.length ?? 0) > 0);
  const format = s.ociMediaTypes || attested ? 'oci' : 'docker';
  const written: (Descriptor & { platform: Platform })[] = [];
  const attestationManifests: (Descriptor & { platform: Platform })[] = [];
  for (const src of sources) {
    const layers: LayerRef[] = [];
    for (const l of src.layers) {
      // BuildKit: `compression` is for layers made by the build; existing blobs (base image layers)
      // keep theirs unless `force-compression=true` (cache/remote.go getRemote, Compression.Force).
      const keep = l.fromImage === true && !s.forceCompression && layerCompression(l.descriptor.mediaType) !== undefined;
      layers.push(keep || layerCompression(l.descriptor.mediaType) === s.compression ? l : await convertLayer(store, l, s.compression, levels(s.compressionLevel)));
    }
    const platform: Platform = { os: src.config.os, architecture: src.config.architecture, ...(src.config.variant !== undefined ? { variant: src.config.variant } : {}) };
    const manifestAnnotations = merged(s.annotations, annotationsFor(s.annotationOptions, 'manifest', platform));
    const img = await writeImage(store, layers, src.config, { format, annotations: manifestAnnotations });
    const descAnnotations = merged(annotationsFor(s.annotationOptions, 'manifest-descriptor', platform));
    written.push({
      mediaType: img.manifest.mediaType,
      digest: img.manifest.digest,
      size: img.manifest.size,
      ...(descAnnotations !== undefined ? { annotations: descAnnotations } : {}),
      platform: img.manifest.platform ?? platform,
    });
    if (src.attestations !== undefined && src.attestations.length > 0) {
      const subjects = imageSubjects(s.names ?? [], platform, img.manifest.digest);
      const statements = src.attestations.map((a) => ({ predicateType: a.predicateType, bytes: statementBytes(a, subjects) }));
      attestationManifests.push({ ...(await writeAttestationManifest(store, img.manifest.digest, statements)), platform: Attestation.platform });
    }
  }
  const indexAnnotations = merged(s.annotations, annotationsFor(s.annotationOptions, 'index'));
  // A single platform's manifest descriptor keeps its platform, as BuildKit v0.11's Commit sets
  // mfstDesc.Platform; it shows in index.json and the exporter's descriptor. A list of sources is
  // a multi-platform result, an index even with one entry (Commit's isMap).
  if (!Array.isArray(image) && !attested) {
    if (annotationsFor(s.annotationOptions, 'index') !== undefined) {
      throw new ImageStoreError('EXPORT_FAILED', 'index annotations not supported for single platform export', { hint: 'use annotation-manifest… or build several platforms' });
    }
    return written[0] as Descriptor;
  }
  return writeIndex(store, [...written, ...attestationManifests], { format, annotations: indexAnnotations });
}

/** Normalises names for index annotations (`app` → `docker.io/library/app:latest`). */
export function normalizeNames(names: ReadonlyArray<string>): string[] {
  return names.map((n) => formatReference(parseReference(n)));
}

/** Options of the archive exporters. */
export interface ArchiveExportOptions {
  /** Tar entry mtime (default: the epoch). */
  readonly mtime?: Date | undefined;
  /** Annotations on the root's `index.json` entries (BuildKit: `org.opencontainers.image.created`). */
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** Stops the export, leaving no output, when aborted. */
  readonly signal?: AbortSignal | undefined;
}

/** `type=oci`: an OCI layout tarball, or with `tar=false` the image added to the layout directory `dest`. */
export async function exportOciLayout(store: ContentStore, root: Descriptor, dest: string, names: ReadonlyArray<string>, opts: { tar: boolean } & ArchiveExportOptions): Promise<void> {
  const images = [{ descriptor: root, names: normalizeNames(names), annotations: opts.annotations }];
  if (opts.tar) await writeOciLayoutTar(store, dest, images, { mtime: opts.mtime, signal: opts.signal });
  else await addToOciLayoutDir(store, dest, images, { signal: opts.signal });
}

/**
 * `type=docker`: a tarball `docker load` accepts, as BuildKit writes it (containerd's archive
 * exporter): an OCI layout plus `manifest.json` (Config, RepoTags, Layers → `blobs/sha256/…`).
 * No legacy `repositories` file: containerd writes none, and its values would have to be v1 layer
 * ids that do not exist in this layout. Multi-platform images cannot be loaded into Docker and are
 * rejected (BuildKit: "docker exporter does not currently support exporting manifest lists").
 */
export async function exportDockerArchive(store: ContentStore, root: Descriptor, dest: string, names: ReadonlyArray<string>, opts: ArchiveExportOptions = {}): Promise<void> {
  let image = root;
  if (isIndexMediaType(root.mediaType)) {
    // An attested single-platform image is an index (the image and its attestation manifest):
    // the tarball keeps the index, manifest.json names the image, as containerd's archive
    // exporter picks the platform manifest for it.
    const index = parseManifest(await store.readBlob(root.digest), root.mediaType);
    const images = index.kind === 'index' ? index.index.manifests.filter((m) => !isAttestationManifest(m)) : [];
    const only = images.length === 1 && index.kind === 'index' && index.index.manifests.length > 1 ? images[0] : undefined;
    if (only === undefined) throw new ImageStoreError('EXPORT_FAILED', 'type=docker cannot export a multi-platform image', { hint: 'build one --platform, or use type=oci' });
    image = only;
  }
  const parsed = parseManifest(await store.readBlob(image.digest), image.mediaType);
  if (parsed.kind !== 'manifest') throw new ImageStoreError('EXPORT_FAILED', 'type=docker needs an image manifest');
  const refs = names.map((n) => parseReference(n));
  // containerd familiarizeReference: TagNameOnly (latest only for a name without tag or digest), FamiliarString.
  const repoTags = refs.map((r) => familiarReference({ domain: r.domain, path: r.path, tag: r.tag ?? (r.digest === undefined ? 'latest' : undefined), digest: r.digest }));
  const manifestJson = [
    {
      Config: `blobs/sha256/${digestHex(parsed.manifest.config.digest)}`,
      // containerd appends to a nil slice per name: no names marshal as null (docker save does the same).
      RepoTags: repoTags.length > 0 ? repoTags : null,
      Layers: parsed.manifest.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
    },
  ];
  const extra = [{ name: 'manifest.json', data: jsonBytes(manifestJson) }];
  await writeOciLayoutTar(store, dest, [{ descriptor: root, names: normalizeNames(names), annotations: opts.annotations }], { mtime: opts.mtime, extra, signal: opts.signal });
}
