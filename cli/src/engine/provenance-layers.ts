import { decodeOp, digestOf, type Definition, type Digest, type Op } from '@kiln/llb-core';
import type { Descriptor } from '@kiln/runtime';
import type { BuildResult, CacheKey } from '@kiln/solver';
import type { KilnEngine } from './engine.js';
import type { BuildImages } from './layers.js';
import type { StepLayers } from './provenance.js';

/**
 * mode=max `layers`: the layer chains of the result's ops that exist as blobs, as BuildKit's
 * provenance walks the result's cache keys with its RemoteOnly exporter: the exported result's
 * chain (`exported`, the layers the image got) and, for every key of the result's graph whose
 * snapshot already has its blobs (base image layers, the steps below the exported result) or
 * that came from an imported cache, that chain. A key's deps follow the op's inputs by index.
 * Makes no blob; a result without blobs (another stage, never exported) is left out. Image
 * layers are given with the blobs of the build's `images`, as the image export gives them.
 */
export async function resultLayers(
  engine: KilnEngine,
  result: BuildResult | undefined,
  def: Definition | undefined,
  exported: { readonly snapshot: string; readonly layers: readonly Descriptor[]; readonly sourceDateEpoch?: number | undefined } | undefined,
  images?: BuildImages,
): Promise<StepLayers[]> {
  if (def === undefined || def.def.length === 0) return [];
  const ops = new Map<Digest, Op>();
  let last: Digest | undefined;
  for (const bytes of def.def) {
    last = digestOf(bytes);
    ops.set(last, decodeOp(bytes));
  }
  const root = last === undefined ? undefined : ops.get(last)?.inputs[0];
  if (root === undefined) return [];
  const out: StepLayers[] = [];
  if (exported !== undefined && exported.layers.length > 0) out.push({ op: root.digest, output: root.index, layers: exported.layers });
  // The snapshots the exported result stacks on: their layers were made by its export (cached,
  // looked up again without computing anything new).
  const below = new Set<string>();
  for (let cur: string | undefined = exported?.snapshot; cur !== undefined; ) {
    below.add(cur);
    cur = (await engine.snapshotter.stat(cur)).parent;
  }
  const cacheResult = result?.cacheResult?.bind(result);
  if (result?.cacheKey === undefined || cacheResult === undefined) return out;
  const seen = new Set<string>();
  const walk = async (key: CacheKey, op: Digest): Promise<void> => {
    const id = `${op}:${key.output}`;
    if (seen.has(id)) return;
    seen.add(id);
    const kr = cacheResult(key);
    if (!out.some((l) => l.op === op && l.output === key.output)) {
      const layers =
        kr === undefined
          ? undefined
          : kr.kind === 'imported'
            ? kr.result.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest as Descriptor['digest'], size: l.size, ...(l.annotations === undefined ? {} : { annotations: l.annotations }) }))
            : below.has(kr.snapshot)
              ? (await engine.layers.layersOf(kr.snapshot, undefined, exported?.sourceDateEpoch, images)).map((l) => l.descriptor)
              : (await engine.layers.remoteLayersOf(kr.snapshot, images))?.map((l) => l.descriptor);
      if (layers !== undefined && layers.length > 0) out.push({ op, output: key.output, layers });
    }
    const inputs = ops.get(op)?.inputs ?? [];
    for (const [i, deps] of key.deps.entries()) {
      const input = inputs[i];
      if (input === undefined) continue;
      for (const d of deps) await walk(d.key, input.digest);
    }
  };
  await walk(result.cacheKey, root.digest);
  return out;
}
