import type { CacheKey } from './cache-key.js';
import type { CacheRecordKind, CacheResultRecord, CacheStore, CacheLink } from './store.js';
import { isImportedId, type ImportedCache, type ImportedResult } from './remote-import.js';

/** A stored result found for a key. */
export interface CacheMatch {
  /** The key id the result is stored under. */
  readonly keyId: string;
  readonly record: CacheResultRecord;
}

/** A result found for a key in an imported cache (not fetched yet). */
export interface ImportedMatch {
  readonly keyId: string;
  readonly imported: ImportedResult;
}

const NO_IMPORTS: readonly ImportedCache[] = [];

/**
 * BuildKit's cacheManager over a {@link CacheStore}: resolves a {@link CacheKey} to the key ids
 * it matches (a root key is its rootKey; a key with inputs is every id reachable from all of
 * its inputs' ids through links {input, output, digest, selector}), loads results and saves new
 * ones, creating the links that make the next build find them.
 */
export class CacheManager {
  readonly store: CacheStore;
  readonly #ids = new WeakMap<CacheKey, string[]>();
  readonly #ensured = new WeakMap<CacheKey, string>();
  readonly #importIds = new WeakMap<readonly ImportedCache[], WeakMap<CacheKey, string[]>>();

  constructor(store: CacheStore) {
    this.store = store;
  }

  /**
   * Every stored key id `key` matches (may be empty for a key with inputs never saved). With
   * `imports`, ids of records of those imported caches count too (BuildKit's combined cache
   * manager): a root key has the same id everywhere, and a link is walked in the local store and
   * in every import from any id of the input.
   */
  ids(key: CacheKey, imports: readonly ImportedCache[] = NO_IMPORTS): string[] {
    let memos: WeakMap<CacheKey, string[]> | undefined;
    if (imports.length > 0) {
      memos = this.#importIds.get(imports);
      if (memos === undefined) this.#importIds.set(imports, (memos = new WeakMap()));
    }
    const memo = (memos ?? this.#ids).get(key);
    if (memo !== undefined && memo.length > 0) return memo;
    let ids: string[];
    if (key.isRoot) {
      ids = [key.rootId];
    } else {
      let matches: Set<string> | undefined;
      key.deps.forEach((deps, input) => {
        if (matches !== undefined && matches.size === 0) return;
        const found = new Set<string>();
        for (const dep of deps) {
          const link: CacheLink = { input, output: key.output, digest: key.digest, selector: dep.selector };
          for (const src of this.ids(dep.key, imports)) {
            if (!isImportedId(src)) for (const dst of this.store.walkLinks(src, link)) found.add(dst);
            for (const imp of imports) for (const dst of imp.walkLinks(src, link)) found.add(dst);
          }
        }
        matches = matches === undefined ? found : new Set([...matches].filter((m) => found.has(m)));
      });
      ids = [...(matches ?? [])];
    }
    if (ids.length > 0) (memos ?? this.#ids).set(key, ids);
    return ids;
  }

  /**
   * True when some id of `key` (locally or in `imports`) has a link `link` out of it: a key of the
   * vertex `link` describes may be stored through `key` (BuildKit's Query finds its candidates by
   * walking exactly these links).
   */
  linksOut(key: CacheKey, link: CacheLink, imports: readonly ImportedCache[] = NO_IMPORTS): boolean {
    for (const id of this.ids(key, imports)) {
      if (!isImportedId(id) && this.store.walkLinks(id, link).length > 0) return true;
      for (const imp of imports) if (imp.walkLinks(id, link).length > 0) return true;
    }
    return false;
  }

  /**
   * The newest result an imported cache has for `key` (only asked after {@link load} missed: the
   * local store wins, its results need no fetch).
   */
  loadImported(key: CacheKey, imports: readonly ImportedCache[]): ImportedMatch | undefined {
    if (imports.length === 0) return undefined;
    let best: ImportedMatch | undefined;
    for (const id of this.ids(key, imports)) {
      for (const imp of imports) {
        const r = imp.results(id)[0];
        if (r !== undefined && (best === undefined || r.createdAt > best.imported.createdAt)) best = { keyId: id, imported: r };
      }
    }
    return best;
  }

  /** The newest stored result for `key`, if any (and marks it used). */
  load(key: CacheKey): CacheMatch | undefined {
    let best: CacheMatch | undefined;
    for (const id of this.ids(key)) {
      const r = this.store.results(id)[0];
      if (r !== undefined && (best === undefined || r.created > best.record.created)) best = { keyId: id, record: r };
    }
    if (best !== undefined) this.store.touch(best.keyId, best.record.id);
    return best;
  }

  /**
   * Stores `snapshot` as the result of `key`: the key gets its existing id (or a new one), every
   * input key is made persistent, and links from each input id to it are added, all in one
   * transaction per key.
   */
  save(key: CacheKey, result: { snapshot: string; size: number; description: string; kind?: CacheRecordKind; created?: number }): CacheResultRecord {
    // The inputs are made persistent first; this key's own links and its result then go in one
    // transaction (links are INSERT OR IGNORE), instead of one for the links and one for the result.
    const links = this.#linksTo(key);
    let id = this.#ensured.get(key) ?? this.ids(key)[0];
    if (id === undefined) {
      id = this.store.newId();
      this.#ids.set(key, [id]);
    }
    const rec = this.store.save(id, links, { id: this.store.newId(), ...result });
    this.#ensured.set(key, id);
    return rec;
  }

  /** Makes `key` (and its inputs) persistent without a result: returns its id. */
  #ensure(key: CacheKey): string {
    // A key made persistent once (with its inputs, recursively) stays so: without this memo every
    // save re-walked and re-checked the links of all its ancestors, O(depth) queries per step of
    // a chain and O(n²) for the build.
    const done = this.#ensured.get(key);
    if (done !== undefined) return done;
    const existing = this.ids(key)[0];
    if (existing !== undefined) {
      if (!key.isRoot) {
        const missing = this.#linksTo(key).filter((l) => !this.store.hasLink(l.src, l, existing));
        if (missing.length > 0) this.store.addLinks(missing.map((l) => ({ ...l, dst: existing })));
      }
      this.#ensured.set(key, existing);
      return existing;
    }
    const id = this.store.newId();
    this.store.addLinks(this.#linksTo(key).map((l) => ({ ...l, dst: id })));
    this.#ids.set(key, [id]);
    this.#ensured.set(key, id);
    return id;
  }

  #linksTo(key: CacheKey): Array<CacheLink & { src: string }> {
    const out: Array<CacheLink & { src: string }> = [];
    key.deps.forEach((deps, input) => {
      for (const dep of deps) {
        const src = this.#ensure(dep.key);
        out.push({ src, input, output: key.output, digest: key.digest, selector: dep.selector });
      }
    });
    return out;
  }
}
