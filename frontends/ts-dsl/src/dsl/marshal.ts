/** Marshalling a DSL State into a Definition, through llb-core's marshaller. */
import type { Definition, ImageMetaResolver, Platform } from '@kiln/llb-core';
import { parsePlatform } from '@kiln/llb-core';
import { LowerContext } from './lower.js';
import type { State } from './state.js';

/** Options of {@link marshal}. */
export interface MarshalOpts {
  /** The platform of ops that name none (Go `llb.Platform` at marshal). */
  readonly platform?: string;
  /** Pins `local.unique` of local sources (BuildKit uses a random one per marshal). */
  readonly localUniqueId?: string;
  /** LLB caps of the target BuildKit (Go `WithCaps`). */
  readonly caps?: Iterable<string>;
  /** Answers `image(ref, {resolve: true})`. */
  readonly resolver?: ImageMetaResolver;
  /** @internal Share one lowering between marshals (one vertex per State). */
  readonly lowerContext?: LowerContext;
}

/** Marshals `state` into a Definition (lowering it onto llb-core first). */
export async function marshal(state: State, opts: MarshalOpts = {}): Promise<Definition> {
  const platform: Platform | undefined = opts.platform === undefined ? undefined : parsePlatform(opts.platform);
  const c = opts.lowerContext ?? new LowerContext(opts.resolver, platform);
  const st = await state.lower(c);
  return st.marshal({
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
    ...(opts.localUniqueId === undefined ? {} : { localUniqueId: opts.localUniqueId }),
    ...(opts.caps === undefined ? {} : { caps: opts.caps }),
  });
}
