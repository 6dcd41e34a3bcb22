import { createHash } from 'node:crypto';

/**
 * A cache key in BuildKit's model (solver/cachekey.go): the digest of an op's CacheMap, the
 * output index, and for each input the keys of that input with an optional selector. A key
 * without inputs has the stable id `rootKey(digest, output)`; a key with inputs is identified
 * through the links stored from its inputs' ids (see {@link CacheManager}).
 * Immutable.
 */
export class CacheKey {
  readonly digest: string;
  readonly output: number;
  readonly deps: ReadonlyArray<ReadonlyArray<CacheKeyWithSelector>>;

  constructor(digest: string, output: number, deps: ReadonlyArray<ReadonlyArray<CacheKeyWithSelector>> = []) {
    this.digest = digest;
    this.output = output;
    this.deps = deps;
  }

  /** True for a key without inputs (a source, or a content-based "slow" key). */
  get isRoot(): boolean {
    return this.deps.length === 0;
  }

  /** The stable id of a root key. */
  get rootId(): string {
    return rootKey(this.digest, this.output);
  }
}

/** One dependency of a {@link CacheKey}: an input's key, narrowed by a selector digest ('' for none). */
export interface CacheKeyWithSelector {
  readonly selector: string;
  readonly key: CacheKey;
}

/** BuildKit's rootKey: digest.FromBytes(fmt.Sprintf("%s@%d", dgst, output)). */
export function rootKey(digest: string, output: number): string {
  const d = `sha256:${createHash('sha256').update(`${digest}@${output}`).digest('hex')}`;
  // BuildKit keeps the "random:" prefix of keys that must never match across builds.
  return digest.startsWith('random:') ? `random:${d.slice('sha256:'.length)}` : d;
}

/**
 * The content-based ("slow") key of an input, as BuildKit's edge.go makes it from a
 * ComputeDigestFunc result: NewCacheKey(dgst, "", -1).
 */
export function slowCacheKey(contentDigest: string): CacheKey {
  return new CacheKey(contentDigest, -1);
}

/** sha256 of the given bytes/text, as `sha256:<hex>` (go-digest FromBytes). */
export function digestFromBytes(data: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
