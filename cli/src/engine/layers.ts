import { renameSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  exportLayerToStore,
  parseDigest,
  siblingTempPath,
  writeFileAtomic,
  type ContentStore,
  type Digest,
  type EnsuredImage,
  type LayerRef,
  type Snapshotter,
} from '@kiln/runtime';
import { EMPTY_SNAPSHOT } from '@kiln/solver';

interface StoredLayer {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly diffID: string;
}

/**
 * Remembers which layer blob a committed snapshot's diff became, so an image is exported from a
 * result snapshot without re-taring unchanged layers. Entries live in `<root>/engine/layers/`
 * (one JSON file each, written atomically): by snapshot id for built snapshots, and by diffID for
 * snapshots unpacked from an image (labelled `kiln.diffID`), which reuse the image's own blob.
 * An entry whose blob is gone from the content store is ignored and recomputed.
 */
export class LayerCache {
  readonly #dir: string;
  readonly #store: ContentStore;
  readonly #snapshotter: Snapshotter;
  readonly #inflight = new Map<string, Promise<LayerRef>>();

  constructor(root: string, store: ContentStore, snapshotter: Snapshotter) {
    this.#dir = join(root, 'engine', 'layers');
    this.#store = store;
    this.#snapshotter = snapshotter;
  }

  /** Records the blobs of an image's layers by diffID (called for every image the worker ensures). */
  async rememberImage(img: EnsuredImage): Promise<void> {
    const diffIds = img.config.rootfs.diff_ids;
    await mkdir(this.#dir, { recursive: true });
    for (const [i, l] of img.manifest.layers.entries()) {
      const diffID = diffIds[i];
      if (diffID === undefined) continue;
      const file = join(this.#dir, `diff-${diffID.replace('sha256:', '')}.json`);
      if ((await this.#read(file)) !== undefined) continue;
      // Renamed into place (a killed process leaves the old file or the new one) but not fsynced:
      // on the way to every first FROM, and a record a power loss tears reads as absent and is
      // written again (#read checks the JSON and that the blob is in the store).
      const tmp = siblingTempPath(file);
      writeFileSync(tmp, JSON.stringify({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffID }));
      renameSync(tmp, file);
    }
  }

  /**
   * Records blobs by diffID for layers unpacked from an imported cache (as {@link rememberImage}
   * does for an image's layers), so exports of those snapshots reuse the blobs.
   */
  async rememberLayers(layers: readonly LayerRef[]): Promise<void> {
    if (layers.length === 0) return;
    await mkdir(this.#dir, { recursive: true });
    for (const l of layers) {
      const file = join(this.#dir, `diff-${l.diffID.replace('sha256:', '')}.json`);
      if ((await this.#read(file)) !== undefined) continue;
      await writeFileAtomic(file, Buffer.from(JSON.stringify({ mediaType: l.descriptor.mediaType, digest: l.descriptor.digest, size: l.descriptor.size, diffID: l.diffID })));
    }
  }

  /** The layers (root first) of committed snapshot `id` and its parents, as OCI layer blobs in the store. */
  async layersOf(id: string, signal?: AbortSignal, sourceDateEpoch?: number): Promise<LayerRef[]> {
    const chain: { id: string; diffID: string | undefined }[] = [];
    for (let cur: string | undefined = id; cur !== undefined; ) {
      const info = await this.#snapshotter.stat(cur);
      // scratch is no layer (BuildKit: FROM scratch + COPY is one layer, with one history entry)
      if (info.id !== EMPTY_SNAPSHOT) chain.unshift({ id: info.id, diffID: info.labels['kiln.diffID'] });
      cur = info.parent;
    }
    return Promise.all(chain.map((s) => this.#layer(s.id, s.diffID, signal, sourceDateEpoch)));
  }

  #layer(id: string, diffID: string | undefined, signal: AbortSignal | undefined, sde: number | undefined): Promise<LayerRef> {
    const key = sde === undefined ? id : `${id}-sde${sde}`;
    let p = this.#inflight.get(key);
    if (p === undefined) {
      p = this.#compute(id, key, diffID, signal, sde);
      this.#inflight.set(key, p);
      p.catch(() => this.#inflight.delete(key));
    }
    return p;
  }

  async #compute(id: string, key: string, diffID: string | undefined, signal: AbortSignal | undefined, sde: number | undefined): Promise<LayerRef> {
    // Image layers keep their blobs (SOURCE_DATE_EPOCH applies to what the build made), and
    // their compression unless the export forces one (BuildKit's force-compression).
    if (diffID !== undefined) {
      const hit = await this.#read(join(this.#dir, `diff-${diffID.replace('sha256:', '')}.json`));
      if (hit !== undefined) return { ...hit, fromImage: true };
    }
    const file = join(this.#dir, `snap-${key}.json`);
    const hit = await this.#read(file);
    if (hit !== undefined) return hit;
    const ref = await exportLayerToStore(this.#snapshotter, id, this.#store, {
      compression: 'gzip',
      ...(signal === undefined ? {} : { signal }),
      ...(sde === undefined ? {} : { sourceDateEpoch: sde }),
    });
    await mkdir(this.#dir, { recursive: true });
    const stored: StoredLayer = { mediaType: ref.descriptor.mediaType, digest: ref.descriptor.digest, size: ref.descriptor.size, diffID: ref.diffID };
    await writeFileAtomic(file, Buffer.from(JSON.stringify(stored)));
    return ref;
  }

  /**
   * Forgets the layers of snapshots no longer in `live` and returns the blobs of the others (to
   * keep them through a content-store sweep). Image layers (by diffID) are kept by image records.
   */
  async retain(live: ReadonlySet<string>): Promise<Digest[]> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    const keep: Digest[] = [];
    for (const n of names) {
      if (!n.startsWith('snap-') || !n.endsWith('.json')) continue;
      const id = n.slice('snap-'.length, -'.json'.length).replace(/-sde\d+$/, '');
      if (!live.has(id)) {
        await rm(join(this.#dir, n), { force: true });
        continue;
      }
      const l = await this.#read(join(this.#dir, n));
      if (l !== undefined) keep.push(l.descriptor.digest);
    }
    return keep;
  }

  /**
   * The layers of snapshot `id` when every one of them came as a blob (an image's layer or an
   * imported cache's, remembered by diffID), without computing any: BuildKit's
   * LoadRemotes(createIfNeeded=false) of a ref made from a remote. Undefined when one was built here.
   */
  async remoteLayersOf(id: string): Promise<LayerRef[] | undefined> {
    const out: LayerRef[] = [];
    for (let cur: string | undefined = id; cur !== undefined; ) {
      const info = await this.#snapshotter.stat(cur);
      cur = info.parent;
      if (info.id === EMPTY_SNAPSHOT) continue;
      const diffID = info.labels['kiln.diffID'];
      const hit = diffID === undefined ? undefined : await this.#read(join(this.#dir, `diff-${diffID.replace('sha256:', '')}.json`));
      if (hit === undefined) return undefined;
      out.unshift({ ...hit, fromImage: true });
    }
    return out;
  }

  async #read(file: string): Promise<LayerRef | undefined> {
    let s: StoredLayer;
    try {
      s = JSON.parse(await readFile(file, 'utf8')) as StoredLayer;
    } catch {
      return undefined;
    }
    const digest = parseDigest(s.digest);
    if (!(await this.#store.has(digest))) return undefined;
    return { descriptor: { mediaType: s.mediaType, digest, size: s.size }, diffID: parseDigest(s.diffID) };
  }
}
