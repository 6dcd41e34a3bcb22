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
