/** OCI and Docker schema 2 media types (wire strings live here and nowhere else). */
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** The annotation OCI layouts use to name images in `index.json`. */
export const AnnotationRefName = 'org.opencontainers.image.ref.name';
/** containerd/BuildKit store the full image name here in exported layouts. */
export const AnnotationImageName = 'io.containerd.image.name';
/** Creation time annotation. */
export const AnnotationCreated = 'org.opencontainers.image.created';

/** True for an image index / manifest list. */
export function isIndexMediaType(mt: string): boolean {
  return mt === MediaTypes.ociIndex || mt === MediaTypes.dockerManifestList;
}

/** True for a single-platform image manifest. */
export function isManifestMediaType(mt: string): boolean {
  return mt === MediaTypes.ociManifest || mt === MediaTypes.dockerManifest;
}

/** Layer compression as told by its media type. */
export type BlobCompression = 'uncompressed' | 'gzip' | 'zstd';

/** Compression of a layer media type, or undefined if it is not a layer type. */
export function layerCompression(mt: string): BlobCompression | undefined {
  switch (mt) {
    case MediaTypes.ociLayer:
    case MediaTypes.dockerLayer:
      return 'uncompressed';
    case MediaTypes.ociLayerGzip:
    case MediaTypes.dockerLayerGzip:
    case MediaTypes.dockerForeignLayerGzip:
    case MediaTypes.ociLayerNondistributableGzip:
      return 'gzip';
    case MediaTypes.ociLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

/** The layer media type for a format and compression. */
export function layerMediaType(format: ImageFormat, compression: BlobCompression): string {
  if (format === 'docker') {
    if (compression === 'zstd') return MediaTypes.ociLayerZstd; // Docker has no zstd type; BuildKit uses OCI's.
    return compression === 'gzip' ? MediaTypes.dockerLayerGzip : MediaTypes.dockerLayer;
  }
  if (compression === 'zstd') return MediaTypes.ociLayerZstd;
  return compression === 'gzip' ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer;
}

/** Media type family of written images: `oci` or Docker schema 2 (`docker`). */
export type ImageFormat = 'oci' | 'docker';
