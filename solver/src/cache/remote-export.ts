import { rootKey, type CacheKey } from './cache-key.js';
import { isImportedId } from './remote-import.js';
import { CacheChains, type ChainRecord, type ChainResult } from './remote-chains.js';
import type { CacheLink } from './store.js';

/**
 * Where a key's stored links come from for {@link addCacheKeyChains}: the ids a key has in the local
 * store and the links into an id (a CacheManager over its store).
 */
export interface BacklinkSource {
  ids(key: CacheKey): string[];
  readonly store: { backlinks(dst: string): Array<CacheLink & { src: string }> };
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
    const links = backlinks?.store.backlinks(id) ?? [];
    const first = links[0];
    const rec = chains.add(first === undefined ? (digest ?? id) : rootKey(first.digest, first.output));
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
            if (isImportedId(id)) continue;
            for (const l of backlinks.store.backlinks(id)) {
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
