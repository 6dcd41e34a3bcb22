import { rootKey, type CacheKey } from './cache-key.js';
import type { CacheManager } from './cache-manager.js';
import { isImportedId, type ImportedBacklink, type ImportedCache } from './remote-import.js';
import { CacheChains, type ChainRecord, type ChainResult } from './remote-chains.js';

/**
 * Where a key's known links come from for {@link addCacheKeyChains}: the ids a key has (in the
 * local store and in the imported caches) and the links into an id, each with the digest of the
 * record linked to (BuildKit's WalkBacklinks gives the link digest as rootKey(digest, output)).
 */
export interface BacklinkSource {
  ids(key: CacheKey): string[];
  backlinks(dst: string): ReadonlyArray<ImportedBacklink>;
}

/**
 * The {@link BacklinkSource} of a cache manager's store and of `imports`: BuildKit's exporter
 * walks the backlinks of a key's id in every cache manager it has one in (`k.ids`), imports
 * included, so a cache re-exported from an import keeps the links the import had (a content key
 * this build never computed because the step hit by definition key).
 */
export function backlinkSource(cache: CacheManager, imports: readonly ImportedCache[] = []): BacklinkSource {
  return {
    ids: (key) => cache.ids(key, imports),
    backlinks: (dst) => {
      if (!isImportedId(dst)) return cache.store.backlinks(dst).map((l) => ({ src: l.src, input: l.input, selector: l.selector, digest: rootKey(l.digest, l.output) }));
      const out: ImportedBacklink[] = [];
      for (const imp of imports) out.push(...imp.backlinks(dst));
      return out;
    },
  };
}

/**
 * `mode=` of a cache export (BuildKit's CacheExportMode): `min` exports the result of the final
 * key and, below it, only results whose layers exist already (solver/exporter.go switches to
 * CacheExportModeRemoteOnly once a result is exported); `max` exports the result of every key.
 */
export type CacheExportMode = 'min' | 'max';

/**
 * Gives the layer chain of `key`'s result, or undefined to export the key without a result.
 * `final` is true for the build result's own key.
 */
export type ResolveChainResult = (key: CacheKey, final: boolean) => Promise<ChainResult | undefined>;

/**
 * Adds the key graph under `root` to `chains` as BuildKit's solver/exporter.go ExportTo walks a
 * key: one record per key, digest rootKey(digest, output); each input linked from the records of
 * that input's keys (definition and content keys) with their selectors; a key one of whose inputs
 * exported nothing (all its keys are session-bound `random:` ones) is left out, as it could never
 * be matched. Keys without inputs get no result (v0.11 exports results only for keys with deps).
 * With `backlinks`, every link the local store has into a key's ids is exported too, with the
 * records of their sources (solver/exporter.go addBacklinks): a content key recorded when a step
 * ran is in the export of a later build that hit by definition key, so exporting an unchanged
 * rebuild gives the same cache. Returns the root's record.
 */
export async function addCacheKeyChains(chains: CacheChains, root: CacheKey, resolve: ResolveChainResult, backlinks?: BacklinkSource): Promise<ChainRecord | undefined> {
  const memo = new Map<CacheKey, Promise<ChainRecord | undefined>>();
  // id → its record; null while being walked (a loop), undefined-valued entries never stored.
  const byId = new Map<string, ChainRecord | null>();
  const idRecord = (id: string, digest: string | undefined): ChainRecord | undefined => {
    const done = byId.get(id);
    if (done !== undefined) return done ?? undefined;
    byId.set(id, null);
    const links = backlinks?.backlinks(id) ?? [];
    const first = links[0];
    // An imported record with inputs but no usable link (out of range in its config) has no digest to export.
    const rec = first === undefined && isImportedId(id) ? undefined : chains.add(first === undefined ? (digest ?? id) : first.digest);
    if (rec !== undefined) {
      for (const l of links) {
        const src = idRecord(l.src, undefined);
        if (src !== undefined) rec.linkFrom(src, l.input, l.selector);
      }
      byId.set(id, rec);
    }
    return rec;
  };
  const visit = (key: CacheKey): Promise<ChainRecord | undefined> => {
    let p = memo.get(key);
    if (p === undefined) {
      p = (async () => {
        const srcs: Array<Array<{ rec: ChainRecord; selector: string }>> = [];
        for (const deps of key.deps) {
          const ins: Array<{ rec: ChainRecord; selector: string }> = [];
          for (const d of deps) {
            const rec = await visit(d.key);
            if (rec !== undefined) ins.push({ rec, selector: d.selector });
          }
          if (ins.length === 0) return undefined;
          srcs.push(ins);
        }
        const rec = chains.add(rootKey(key.digest, key.output));
        if (rec === undefined) return undefined;
        srcs.forEach((ins, i) => {
          for (const l of ins) rec.linkFrom(l.rec, i, l.selector);
        });
        if (backlinks !== undefined && !key.isRoot) {
          for (const id of backlinks.ids(key)) {
            for (const l of backlinks.backlinks(id)) {
              const src = idRecord(l.src, undefined);
              if (src !== undefined) rec.linkFrom(src, l.input, l.selector);
            }
          }
        }
        if (!key.isRoot) {
          const res = await resolve(key, key === root);
          if (res !== undefined) rec.addResult(res);
        }
        return rec;
      })();
      memo.set(key, p);
    }
    return p;
  };
  return visit(root);
}
