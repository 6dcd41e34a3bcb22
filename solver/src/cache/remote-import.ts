import { rootKey } from './cache-key.js';
import { layerChain, type CacheConfig, type CacheLayerDescriptor } from './remote-config.js';
import type { CacheLink } from './store.js';

/** Opens a blob of an imported cache (a file of a local layout, a registry blob). */
export type CacheBlobOpener = (desc: CacheLayerDescriptor, signal?: AbortSignal) => Promise<AsyncIterable<Uint8Array>>;

/** A result of an imported cache: its layer chain (bottom first), not fetched yet. */
export interface ImportedResult {
  readonly layers: ReadonlyArray<CacheLayerDescriptor>;
  /** ms since the epoch (0 when the cache did not say). */
  readonly createdAt: number;
  /** The time as the cache wrote it (Go's RFC 3339 with nanoseconds), exported again as is; undefined when unreadable. */
  readonly createdAtText: string | undefined;
  readonly source: ImportedCache;
}

/** A link into a record of an imported cache (see {@link ImportedCache.backlinks}). */
export interface ImportedBacklink {
  readonly src: string;
  readonly input: number;
  readonly selector: string;
  /** The digest of the record linked to (a rootKey, as links carry it). */
  readonly digest: string;
}

interface ImportedItem {
  readonly id: string;
  /** Links into this record (v1/cachestorage.go WalkBacklinks). */
  readonly backlinks: ImportedBacklink[];
  /** "input\0rootKey(digest, output)\0selector" → target ids (v1/cachestorage.go nlink). */
  readonly links: Map<string, string[]>;
  readonly results: ImportedResult[];
}

let nextImport = 0;

/**
 * An imported BuildKit cache as the solver's lookups see it (v1/cachestorage.go cacheKeyStorage):
 * a record without inputs has its digest as id (BuildKit's rootKey, the id kiln's store uses for a
 * root key too), any other gets an id of its own (`import:N:i`); a link from src to a record is
 * found by (input, rootKey(digest, output), selector) as WalkLinks computes it (outputKey). Results
 * are layer chains resolved against the blob descriptors; a result naming a blob the cache does not
 * have is left out (as inline cache keeps only the image's layers). Immutable.
 */
export class ImportedCache {
  /** Where the cache came from (for progress and warnings), e.g. `type=local,src=dir`. */
  readonly name: string;
  readonly open: CacheBlobOpener;
  readonly #items = new Map<string, ImportedItem>();

  constructor(name: string, config: CacheConfig, blobs: ReadonlyMap<string, CacheLayerDescriptor>, open: CacheBlobOpener) {
    this.name = name;
    this.open = open;
    const n = nextImport++;
    const ids = config.records.map((r, i) => (r.inputs.every((ins) => ins.length === 0) ? r.digest : `import:${n}:${i}`));
    const item = (id: string): ImportedItem => {
      let it = this.#items.get(id);
      if (it === undefined) this.#items.set(id, (it = { id, backlinks: [], links: new Map(), results: [] }));
      return it;
    };
    config.records.forEach((r, i) => {
      const id = ids[i] as string;
      const it = item(id);
      r.inputs.forEach((ins, input) => {
        for (const l of ins) {
          const src = ids[l.link];
          if (src === undefined) continue;
          const k = `${input}\0${r.digest}\0${l.selector}`;
          const m = item(src).links;
          const list = m.get(k) ?? [];
          if (!list.includes(id)) {
            list.push(id);
            it.backlinks.push({ src, input, selector: l.selector, digest: r.digest });
          }
          m.set(k, list);
        }
      });
      for (const res of r.results) {
        let chain;
        try {
          chain = layerChain(config.layers, res.layer).map((l) => blobs.get(l.blob));
        } catch {
          continue;
        }
        // A blob that is not a layer (a manifest or attestation a manifest list also names) could
        // only fail to unpack later; such a result is no result.
        if (chain.some((d) => d === undefined || !isLayerMediaType(d.mediaType))) continue;
        const t = Date.parse(res.createdAt);
        it.results.push({ layers: chain as CacheLayerDescriptor[], createdAt: Number.isNaN(t) ? 0 : t, createdAtText: Number.isNaN(t) ? undefined : res.createdAt, source: this });
      }
      it.results.sort((a, b) => b.createdAt - a.createdAt);
    });
  }

  /** Number of records (ids) the cache holds. */
  get size(): number {
    return this.#items.size;
  }

  /** True when the cache has a record with id `id`. */
  has(id: string): boolean {
    return this.#items.has(id);
  }

  /** Ids linked from `src` through `link` (BuildKit's WalkLinks). */
  walkLinks(src: string, link: CacheLink): string[] {
    return this.#items.get(src)?.links.get(`${link.input}\0${rootKey(link.digest, link.output)}\0${link.selector}`) ?? [];
  }

  /** Links into record `id` (BuildKit's WalkBacklinks), for exporting what the import knew about it. */
  backlinks(id: string): ReadonlyArray<ImportedBacklink> {
    return this.#items.get(id)?.backlinks ?? [];
  }

  /** Results of record `id`, newest first. */
  results(id: string): ReadonlyArray<ImportedResult> {
    return this.#items.get(id)?.results ?? [];
  }
}

/** OCI and Docker layer media types (any compression, nondistributable/foreign ones too). */
function isLayerMediaType(mt: string): boolean {
  return mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.');
}

/** True for ids {@link ImportedCache} made up (never in the local store). */
export function isImportedId(id: string): boolean {
  return id.startsWith('import:');
}
