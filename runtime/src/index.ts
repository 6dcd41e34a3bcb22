/** Placeholder until the package lands. */
export const PACKAGE = '@kiln/runtime';
export { WorkerError, type WorkerErrorCode, type WorkerErrorOptions } from './api/errors.js';
export type { Mount, Snapshotter, SnapshotInfo, SnapshotKind, SnapshotOptions, MountedSnapshot } from './api/snapshot.js';
export { applyLayer, type ApplyLayerOptions, type ApplyLayerResult } from './layer/apply.js';
export { detectCompression, LAYER_MEDIA_TYPES, type LayerCompression } from './layer/compression.js';
