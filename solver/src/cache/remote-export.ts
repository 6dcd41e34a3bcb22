import { rootKey, type CacheKey } from './cache-key.js';
import { CacheChains, type ChainRecord, type ChainResult } from './remote-chains.js';

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
 * Returns the root's record.
 */
export async function addCacheKeyChains(chains: CacheChains, root: CacheKey, resolve: ResolveChainResult): Promise<ChainRecord | undefined> {
  const memo = new Map<CacheKey, Promise<ChainRecord | undefined>>();
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
