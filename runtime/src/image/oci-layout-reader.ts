import { createReadStream, type ReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, digestOf, isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { BlobProvider } from './copy.js';
import { parseManifest } from './manifest.js';
import { AnnotationImageName, AnnotationRefName, MediaTypes } from './media-types.js';
import { OCI_LAYOUT_SCHEME } from './oci-layout-ref.js';
import type { Descriptor, ImageIndex } from './types.js';

const DAMAGED = 'the layout is damaged or incomplete: write it again';

/** Manifests and indexes are read into memory up to this size (as from a registry). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

/**
 * An OCI image layout directory read in place, as BuildKit reads one (`ociindex` for
 * `index.json`, containerd's local content store over `blobs/`): only `index.json` is required.
 * Every blob read is checked against its descriptor's size and digest.
 */
export class OciLayoutReader implements BlobProvider {
  constructor(
    /** The directory. */
    readonly dir: string,
    /** How messages name it (`oci-layout://PATH`). */
    readonly name: string = `${OCI_LAYOUT_SCHEME}${dir}`,
  ) {}

  /** The path of a blob. */
  blobPath(desc: Pick<Descriptor, 'digest'>): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(desc.digest));
  }

  /** `index.json`, parsed (LAYOUT_INVALID when there is none or it is no image index). */
  async readIndex(): Promise<ImageIndex> {
    let raw: Buffer;
    try {
      raw = await readFile(join(this.dir, 'index.json'));
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'has no index.json' : `cannot be read (${(e as Error).message})`;
      throw new ImageStoreError('LAYOUT_INVALID', `${this.name} is not an OCI layout: ${this.dir} ${why}`, {
        hint: 'give a directory with oci-layout, index.json and blobs/ (kiln build --output type=oci,tar=false,dest=DIR, skopeo copy … oci:DIR:TAG); a tarball must be extracted first',
        cause: e,
      });
    }
    return parseLayoutIndex(raw, this.name);
  }

  /** A blob's size on disk, undefined when it is not there. */
  async size(digest: Digest): Promise<number | undefined> {
    const st = await stat(this.blobPath({ digest })).catch(() => undefined);
    return st?.isFile() === true ? st.size : undefined;
  }

  /** True when the layout has the blob (of the descriptor's size). */
  async has(desc: Descriptor): Promise<boolean> {
    return (await this.size(desc.digest)) === desc.size;
  }

  /** Reads a blob into memory (at most `max` bytes), its size and digest checked. */
  async fetch(desc: Descriptor, max = Number.POSITIVE_INFINITY): Promise<Buffer> {
    if (desc.size > max) throw new ImageStoreError('MANIFEST_INVALID', `blob ${desc.digest} of ${this.name} is too large to read (${desc.size} bytes; at most ${max})`);
    await this.checkSize(desc);
    const bytes = await readFile(this.blobPath(desc));
    const got = digestOf(bytes);
    if (got !== desc.digest) throw new ImageStoreError('DIGEST_MISMATCH', `blob ${desc.digest} of ${this.name}: digest mismatch (got ${got})`, { hint: DAMAGED });
    return bytes;
  }

  /** Opens a blob for streaming (its size checked now, its digest by whoever consumes it). */
  async open(desc: Descriptor): Promise<ReadStream> {
    await this.checkSize(desc);
    return createReadStream(this.blobPath(desc), { highWaterMark: 1 << 20 });
  }

  private async checkSize(desc: Descriptor): Promise<void> {
    const size = await this.size(desc.digest);
    if (size === undefined) throw new ImageStoreError('BLOB_NOT_FOUND', `${this.name} has no blob ${desc.digest}`, { hint: DAMAGED });
    if (size !== desc.size) throw new ImageStoreError('SIZE_MISMATCH', `blob ${desc.digest} of ${this.name} has ${size} bytes, its descriptor says ${desc.size}`, { hint: DAMAGED });
  }
}

/** `index.json` bytes as an image index (LAYOUT_INVALID otherwise). */
export function parseLayoutIndex(raw: Buffer, name: string): ImageIndex {
  try {
    const p = parseManifest(raw, MediaTypes.ociIndex);
    if (p.kind !== 'index') throw new Error('not an image index');
    return p.index;
  } catch (e) {
    throw new ImageStoreError('LAYOUT_INVALID', `${name}: index.json is not an image index (${(e as Error).message})`, { cause: e });
  }
}

/** Which image of a layout: by digest, else by tag. */
export interface LayoutSelector {
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

/** Options for {@link findLayoutImage} and {@link resolveLayoutImage}. */
export interface FindLayoutImageOptions {
  /**
   * A layout of one image yields it when no entry has the tag (BuildKit's `ociindex.GetSingle`),
   * as buildx resolves `--build-context NAME=oci-layout://…` (resolveDigest); imagetools does not.
   */
  readonly single?: boolean | undefined;
  /** How messages name the layout. */
  readonly name?: string | undefined;
}

/**
 * Finds an image in a layout's `index.json`: by digest, the first entry of it; by tag (`latest`
 * when neither is given), BuildKit's `ociindex.Get`: the entry whose `io.containerd.image.name`,
 * else whose `org.opencontainers.image.ref.name`, is the tag. A string is a digest or a tag;
 * without one, `single` is implied. IMAGE_NOT_FOUND lists the layout's tags.
 */
export function findLayoutImage(index: ImageIndex, want?: LayoutSelector | string, opts: FindLayoutImageOptions = {}): Descriptor {
  const sel: LayoutSelector = typeof want === 'string' && want !== '' ? (isDigest(want) ? { digest: want } : { tag: want }) : typeof want === 'object' ? want : {};
  const single = opts.single === true || want === undefined || want === '';
  const name = opts.name ?? 'OCI layout';
  if (sel.digest !== undefined) {
    const hit = index.manifests.find((m) => m.digest === sel.digest);
    if (hit === undefined) throw new ImageStoreError('IMAGE_NOT_FOUND', `${name} has no image ${sel.digest} in its index.json`);
    return hit;
  }
  const tag = sel.tag ?? 'latest';
  const hit = index.manifests.find((m) => m.annotations?.[AnnotationImageName] === tag) ?? index.manifests.find((m) => m.annotations?.[AnnotationRefName] === tag);
  if (hit !== undefined) return hit;
  const only = index.manifests[0];
  if (single && index.manifests.length === 1 && only !== undefined) return only;
  const tags = index.manifests.map((m) => m.annotations?.[AnnotationRefName]).filter((t): t is string => t !== undefined);
  const untagged = index.manifests.find((m) => m.annotations?.[AnnotationRefName] === undefined);
  throw new ImageStoreError('IMAGE_NOT_FOUND', `${name} has no image tagged "${tag}" (tags: ${tags.length === 0 ? 'none' : tags.join(', ')})`, {
    hint: untagged === undefined ? 'name one of its tags: oci-layout://PATH:TAG' : `name an untagged image by digest: oci-layout://PATH@${untagged.digest}`,
  });
}

/** What {@link resolveLayoutImage} reads (an {@link OciLayoutReader} is one): the index (only for a tag) and blobs. */
export type LayoutLookup = Pick<OciLayoutReader, 'readIndex' | 'fetch' | 'size'>;

/**
 * The descriptor `want` names in a layout: by tag, {@link findLayoutImage}; by digest, any blob of
 * the layout, listed in `index.json` or not (a child manifest of an index), read and checked, its
 * media type read from its body (buildx's detectMediaType), as buildx's imagetools and BuildKit's
 * oci-layout source resolve a digest through the layout's content store.
 */
export async function resolveLayoutImage(
  layout: LayoutLookup,
  want: LayoutSelector,
  opts: FindLayoutImageOptions & { readonly detectMediaType?: ((bytes: Buffer) => string) | undefined } = {},
): Promise<Descriptor> {
  if (want.digest === undefined) return findLayoutImage(await layout.readIndex(), { tag: want.tag }, opts);
  const digest = want.digest;
  const size = await layout.size(digest);
  const name = opts.name ?? 'OCI layout';
  if (size === undefined) throw new ImageStoreError('BLOB_NOT_FOUND', `${name} has no blob ${digest}`);
  // Read whole to learn its media type: a layer's digest is refused by its size, not read into memory.
  if (size > MAX_MANIFEST_SIZE) {
    throw new ImageStoreError('MANIFEST_INVALID', `blob ${digest} of ${name} is no manifest or index (${size} bytes; at most ${MAX_MANIFEST_SIZE})`, {
      hint: 'name an image manifest or index by digest (a layer or config digest names no image)',
    });
  }
  const bytes = await layout.fetch({ mediaType: '', digest, size });
  return { mediaType: (opts.detectMediaType ?? detectMediaType)(bytes), digest, size };
}

/** A manifest's media type from its body when no descriptor gives it (buildx's detectMediaType). */
export function detectMediaType(dt: Buffer): string {
  let v: { mediaType?: unknown; config?: unknown; fsLayers?: unknown };
  try {
    v = JSON.parse(dt.toString('utf8')) as typeof v;
  } catch (e) {
    throw new ImageStoreError('MANIFEST_INVALID', 'source manifest is not JSON', { cause: e });
  }
  if (typeof v.mediaType === 'string' && v.mediaType !== '') return v.mediaType;
  if (v.config !== undefined) return MediaTypes.dockerManifest;
  if (Array.isArray(v.fsLayers) && v.fsLayers.length > 0) return 'application/vnd.docker.distribution.manifest.v1+json';
  return MediaTypes.dockerManifestList;
}
