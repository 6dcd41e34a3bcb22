import type { Writable } from 'node:stream';

/** Layer compressions kiln reads and writes. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** A written layer blob, ready for a manifest. */
export interface LayerDescriptor {
  readonly mediaType: string;
  /** sha256 of the compressed blob, `sha256:<hex>`. */
  readonly digest: string;
  /** Size of the compressed blob in bytes. */
  readonly size: number;
  /** sha256 of the uncompressed tar (the image config's `rootfs.diff_ids`). */
  readonly diffID: string;
  readonly uncompressedSize: number;
}

/** How to write a layer; see {@link Snapshotter.diff}. */
export interface DiffOptions {
  /** A file path (written to a temp file, renamed on success) or a stream (ended on success, destroyed on failure). */
  readonly output: string | Writable;
  /** Default `gzip`. */
  readonly compression?: LayerCompression;
  /** gzip level (default 1) or zstd level (default 3). */
  readonly level?: number;
  /** Clamp mtimes newer than this (seconds since the epoch), as BuildKit does with `SOURCE_DATE_EPOCH`. */
  readonly sourceDateEpoch?: number;
  /** Compression threads, default `availableParallelism()`. */
  readonly workers?: number;
  /**
   * Store (not deflate) gzip blocks whose first 64 KiB do not shrink by 2% (already-compressed or
   * random data): valid gzip either way, skips work that buys nothing. Default true.
   */
  readonly storeIncompressible?: boolean;
  readonly signal?: AbortSignal;
  /**
   * When `output` already hashes every byte it is given (a content-store `BlobWriter`): returns
   * its sha256 once the layer is written, and the differ skips its own pass over the compressed
   * bytes. Ignored without compression.
   */
  readonly outputDigest?: () => string;
}
