/**
 * Lowering: a DSL {@link State} is a lazy description that becomes an `@kiln/llb-core` State
 * only when it is marshaled or solved. Lowering is async because `image(ref, {resolve: true})`
 * asks the gateway for the image config (Go blocks in `llb.Image` with a meta resolver; a
 * JavaScript build cannot block, so the lookup waits until the graph is needed).
 */
import type { ImageMetaResolver, Platform, ResolveMode, SourceLocation, SourceMap, State as LlbState } from '@kiln/llb-core';
import type { BuildLocation } from './source-location.js';

/** @internal What lowering needs: a memo (one llb-core State per DSL State) and the resolver. */
export class LowerContext {
  /** One lowered State per DSL object, so a State used twice is one vertex. */
  readonly memo = new Map<object, Promise<LlbState>>();
  constructor(
    /** Answers `image(ref, {resolve: true})`; absent outside a build. */
    readonly resolver: ImageMetaResolver | undefined,
    /** The platform images resolve for when they name none. */
    readonly platform: Platform | undefined,
    /** Build files by name, for op source locations. */
    readonly sources: ReadonlyMap<string, SourceMap> = new Map(),
    /** The resolve mode of images that name none (`--pull`). */
    readonly resolveMode: ResolveMode | undefined = undefined,
    /**
     * The `.dockerignore` patterns of a client directory (`local(name)`), read by the frontend
     * through the gateway client; absent outside a build (nothing is excluded).
     */
    readonly dockerignore: ((name: string) => Promise<readonly string[]>) | undefined = undefined,
  ) {}

  /** The op source location for a call at `at` (none when the file is not known). */
  locate(at: BuildLocation | undefined): { sourceLocations?: readonly SourceLocation[] } {
    const map = at === undefined ? undefined : this.sources.get(at.file);
    if (at === undefined || map === undefined) return {};
    // pb.Range: 1-based lines, 0-based characters (client/llb sourcemap.go)
    return { sourceLocations: [map.location([{ start: { line: at.line, character: at.column - 1 }, end: { line: at.line, character: at.column } }])] };
  }

  /**
   * Lowers `key` once with `fn`. `fn` runs in a microtask of its own: each State's lowering
   * lowers its parent first, and called directly that recursion ran on one stack, so a chain of
   * some 2,500 steps (a generated build) overflowed it ("Maximum call stack size exceeded", with
   * V8's PromiseRejectCallback noise quoting the bundle). Deferred, every level starts on an
   * empty stack; a Dockerfile of any length was already fine.
   */
  once(key: object, fn: () => Promise<LlbState>): Promise<LlbState> {
    let p = this.memo.get(key);
    if (p === undefined) {
      p = Promise.resolve().then(fn);
      this.memo.set(key, p);
    }
    return p;
  }
}
