import { randomUUID } from 'node:crypto';
import { digestFromBytes } from '../cache/cache-key.js';
import type { CacheMap } from './types.js';

/** No content digests: a key made of definition keys only. */
export const NO_DIGESTS: ReadonlyArray<string | undefined> = [];

/**
 * The merge id of output `index` of an op with cache map `cm`: the cache-map digest and, per
 * input, the selector and the content digest the key has for it (a local context's checksum, a
 * COPY's selected files), else the input's own merge id (`inputs[i].id`). Equal ids are the same
 * work once keys are known, whatever the vertices' digests. BuildKit merges edges by the same keys
 * (solver/index.go getAllMatches); content digests are taken alone because they are what makes
 * two builds' keys meet (the definition keys below a local source are random). An op that
 * ignores the cache gets ids of its own (`!`), which its dependents inherit: they never merge
 * with a run built on an older, cached result. An uncacheable op (a local source) is never
 * merged by key.
 */
export function mergeId(
  cm: CacheMap,
  index: number,
  inputs: ReadonlyArray<{ readonly id: string }>,
  digests: ReadonlyArray<string | undefined>,
  cacheable: boolean,
  ignoreCache: boolean,
): string {
  if (!cacheable) return `random:${randomUUID()}`;
  let s = `${cm.digest}@${index}`;
  for (const [i, input] of inputs.entries()) s += `|${cm.deps[i]?.selector ?? ''}=${digests[i] ?? input.id}`;
  const id = digestFromBytes(s);
  return ignoreCache ? `!${id}` : id;
}

/**
 * The vertices that run now (or are about to), by the merge id of the output they produce
 * (BuildKit's edgeIndex in solver/index.go): a vertex whose cache key turns out to equal one of
 * these takes that run's result instead of running itself. An owner is in the index from the
 * moment it decides to run until its run settles ({@link InflightIndex.delete}), so the index
 * holds only what is in flight.
 */
export class InflightIndex<T extends object> {
  readonly #owners = new Map<string, T>();
  /** The ids each owner holds (a vertex with several outputs may hold several). */
  readonly #ids = new Map<T, string[]>();

  /** The owner of `id`, if a run of it is in flight. */
  get(id: string): T | undefined {
    return this.#owners.get(id);
  }

  /** Makes `owner` the run of `id` unless another one already is (the first run keeps it). */
  add(id: string, owner: T): void {
    if (this.#owners.has(id)) return;
    this.#owners.set(id, owner);
    const ids = this.#ids.get(owner);
    if (ids === undefined) this.#ids.set(owner, [id]);
    else ids.push(id);
  }

  /** Removes every id `owner` holds (its run settled, or nobody needs it any more). */
  delete(owner: T): void {
    const ids = this.#ids.get(owner);
    if (ids === undefined) return;
    this.#ids.delete(owner);
    for (const id of ids) if (this.#owners.get(id) === owner) this.#owners.delete(id);
  }

  /** Number of ids in flight. */
  get size(): number {
    return this.#owners.size;
  }
}
