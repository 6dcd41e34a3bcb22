/**
 * Lowering: a DSL {@link State} is a lazy description that becomes an `@kiln/llb-core` State
 * only when it is marshaled or solved. Lowering is async because `image(ref, {resolve: true})`
 * asks the gateway for the image config (Go blocks in `llb.Image` with a meta resolver; a
 * JavaScript build cannot block, so the lookup waits until the graph is needed).
 */
import type { ImageMetaResolver, Platform, State as LlbState } from '@kiln/llb-core';

/** @internal What lowering needs: a memo (one llb-core State per DSL State) and the resolver. */
export class LowerContext {
  /** One lowered State per DSL object, so a State used twice is one vertex. */
  readonly memo = new Map<object, Promise<LlbState>>();
  constructor(
    /** Answers `image(ref, {resolve: true})`; absent outside a build. */
    readonly resolver: ImageMetaResolver | undefined,
    /** The platform images resolve for when they name none. */
    readonly platform: Platform | undefined,
  ) {}

  /** Lowers `key` once with `fn`. */
  once(key: object, fn: () => Promise<LlbState>): Promise<LlbState> {
    let p = this.memo.get(key);
    if (p === undefined) {
      p = fn();
      this.memo.set(key, p);
    }
    return p;
  }
}
