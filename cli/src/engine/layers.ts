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
import { EMPTY_SNAPSHOT, chainIds, layerSnapshotId } from '@kiln/solver';

interface StoredLayer {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly diffID: string;
}

/** One image a build resolved: its layer snapshots (by chain ID, root first) and their blobs. */
interface BuildImage {
  readonly manifest: string;
  readonly snapshots: readonly string[];
  readonly layers: readonly LayerRef[];
}

/**
 * The images one build resolved (its FROMs, image build contexts, the configs its frontend
 * looked up), so its exports give each image layer the blob of the image the build used. Image
 * layer snapshots are shared by chain ID (`layer-<chainID>`): two images with the same layers
 * under other blobs (gzip and zstd, another gzip level) unpack once, and the store-wide record
 * by diffID names whichever blob the store met first. BuildKit keeps the blob per ref instead
 * (cache.Manager GetByBlob: one record per blob chain over a shared snapshot). Kept per build,
 * not per snapshot, so a RUN taken from the cache (its key is the chain ID below it, not the
 * blobs) exports the same base blobs as one that ran. In memory only: nothing to prune.
 */
export class BuildImages {
  readonly #images = new Map<string, BuildImage>();

  /** Adds an image the build resolved (called for every image its worker ensures). */
  add(img: EnsuredImage): void {
    const manifest = img.manifestDescriptor.digest;
    if (this.#images.has(manifest)) return;
    const diffIds = img.config.rootfs.diff_ids;
    const chain = chainIds(diffIds);
    const snapshots: string[] = [];
    const layers: LayerRef[] = [];
    for (const [i, l] of img.manifest.layers.entries()) {
      const diffID = diffIds[i];
      const c = chain[i];
      if (diffID === undefined || c === undefined) break;
      snapshots.push(layerSnapshotId(c));
      layers.push({ descriptor: { mediaType: l.mediaType, digest: l.digest, size: l.size }, diffID: parseDigest(diffID), fromImage: true });
    }
    this.#images.set(manifest, { manifest, snapshots, layers });
  }

  /**
   * The blobs to prefer for a snapshot chain (ids root first), by diffID: first those of the
   * image that covers most of the chain from its root (its FROM; equal ones by manifest digest,
   * so never by the order they were resolved in), then those of the build's other images (a
   * layer re-stacked by a merge or `COPY --link` keeps its diffID, not its snapshot id).
   */
  blobsFor(chain: readonly string[]): Map<string, LayerRef> {
    const depth = (img: BuildImage): number => (img.snapshots.every((id, i) => chain[i] === id) ? img.snapshots.length : 0);
    const ranked = [...this.#images.values()].map((img) => ({ img, depth: depth(img) }));
    ranked.sort((a, b) => b.depth - a.depth || (a.img.manifest < b.img.manifest ? -1 : a.img.manifest > b.img.manifest ? 1 : 0));
    const out = new Map<string, LayerRef>();
    for (const { img } of ranked) for (const l of img.layers) if (!out.has(l.diffID)) out.set(l.diffID, l);
    return out;
  }
}

/**
 * Remembers which layer blob a committed snapshot's diff became, so an image is exported from a
 * result snapshot without re-taring unchanged layers. Entries live in `<root>/engine/layers/`
 * (one JSON file each, written atomically): by snapshot id for built snapshots, and by diffID for
 * snapshots unpacked from an image (labelled `kiln.diffID`), which reuse the image's own blob.
 * An entry whose blob is gone from the content store is ignored and recomputed. The by-diffID
 * entry is the first blob the store met for that diffID: a build passes its {@link BuildImages}
 * so its image layers get the blobs of the images it used instead.
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

  /**
   * The layers (root first) of committed snapshot `id` and its parents, as OCI layer blobs in the
   * store. An image layer takes the blob `images` (the build's) give for it, else the store's record.
   */
  async layersOf(id: string, signal?: AbortSignal, sourceDateEpoch?: number, images?: BuildImages): Promise<LayerRef[]> {
    const chain = await this.#chain(id);
    const own = images?.blobsFor(chain.map((s) => s.id));
    // The build's images were found complete in the store when it resolved them (ensureImage),
    // and content is pruned only while no build runs: their blobs are taken without a look.
    return Promise.all(chain.map((s) => (s.diffID === undefined ? undefined : own?.get(s.diffID)) ?? this.#layer(s.id, s.diffID, signal, sourceDateEpoch)));
  }

  /** The snapshots (root first) of `id`'s chain that are layers, with their diffID labels. */
  async #chain(id: string): Promise<{ id: string; diffID: string | undefined }[]> {
    const chain: { id: string; diffID: string | undefined }[] = [];
    for (let cur: string | undefined = id; cur !== undefined; ) {
      const info = await this.#snapshotter.stat(cur);
      // scratch is no layer (BuildKit: FROM scratch + COPY is one layer, with one history entry)
      if (info.id !== EMPTY_SNAPSHOT) chain.unshift({ id: info.id, diffID: info.labels['kiln.diffID'] });
      cur = info.parent;
    }
    return chain;
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
  async remoteLayersOf(id: string, images?: BuildImages): Promise<LayerRef[] | undefined> {
    const chain: { id: string; diffID: string }[] = [];
    for (let cur: string | undefined = id; cur !== undefined; ) {
      const info = await this.#snapshotter.stat(cur);
      cur = info.parent;
      if (info.id === EMPTY_SNAPSHOT) continue;
      const diffID = info.labels['kiln.diffID'];
      if (diffID === undefined) return undefined; // built here: the walk stops at once
      chain.unshift({ id: info.id, diffID });
    }
    const own = images?.blobsFor(chain.map((s) => s.id));
    const out: LayerRef[] = [];
    for (const s of chain) {
      const mine = own?.get(s.diffID); // in the store (see layersOf)
      if (mine !== undefined) {
        out.push(mine);
        continue;
      }
      const hit = await this.#read(join(this.#dir, `diff-${s.diffID.replace('sha256:', '')}.json`));
      if (hit === undefined) return undefined;
      out.push({ ...hit, fromImage: true });
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
