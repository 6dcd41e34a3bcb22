import { randomBytes } from 'node:crypto';
import { WorkerError } from '../api/errors.js';
import type { SnapshotInfo, Snapshotter } from '../api/snapshot.js';
import { applyLayer, type ApplyLayerResult } from './apply.js';

/** Options for {@link unpackLayer}. */
export interface UnpackLayerOptions {
  readonly signal?: AbortSignal;
  /** Refuse the layer when its uncompressed sha256 differs (`LAYER_INVALID`); the committed snapshot is not created. */
  readonly expectedDiffID?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * Applies a layer on top of committed snapshot `parent` (or nothing) and commits the result as `id`,
 * labelled with `kiln.diffID`. The layer is written through the snapshot's mount, so with overlayfs
 * the kernel turns OCI whiteouts into overlay whiteouts. On any failure or cancel, the temporary
 * active snapshot and its mount are removed.
 */
export async function unpackLayer(
  snapshotter: Snapshotter,
  id: string,
  parent: string | undefined,
  layer: AsyncIterable<Uint8Array>,
  opts: UnpackLayerOptions = {},
): Promise<{ readonly snapshot: SnapshotInfo; readonly layer: ApplyLayerResult }> {
  const tmp = `${id.slice(0, 150)}.unpack-${randomBytes(4).toString('hex')}`;
  await snapshotter.prepare(tmp, parent, opts.signal ? { signal: opts.signal } : {});
  try {
    const mounted = await snapshotter.mount(tmp, opts.signal);
    let result: ApplyLayerResult;
    try {
      result = await applyLayer(mounted.path, layer, opts.signal ? { signal: opts.signal } : {});
    } finally {
      await mounted.release();
    }
    if (opts.expectedDiffID !== undefined && opts.expectedDiffID !== result.diffID) {
      throw new WorkerError('LAYER_INVALID', `layer diffID ${result.diffID} does not match ${opts.expectedDiffID}`);
    }
    const snapshot = await snapshotter.commit(id, tmp, { labels: { ...(opts.labels ?? {}), 'kiln.diffID': result.diffID } });
    return { snapshot, layer: result };
  } catch (e) {
    await snapshotter.remove(tmp).catch(() => undefined);
    throw e;
  }
}
