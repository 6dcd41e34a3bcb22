/**
 * Per-op and marshal-level constraints (client/llb `Constraints`): platform, worker
 * filters, local unique ID and op metadata, merged the way `MarshalConstraints` does.
 */
import type { Definition, OpMetadata, PbPlatform, ProgressGroup, Range } from '../op.js';
import type { State } from './state.js';
import { defaultPlatform, normalizePlatform, platformToPb, toPlatform, type Platform } from '../platform.js';

/**
 * Options every op accepts (Go `ConstraintsOpt`s): custom name and description,
 * cache control, progress group, worker filters and platform.
 */
export interface ConstraintsOptions {
  /** The op's platform (Go `llb.Platform`). */
  readonly platform?: Platform | string;
  /** Name shown in progress output (`llb.customname`). */
  readonly customName?: string;
  /** Extra description entries (Go `WithDescription`). */
  readonly description?: Readonly<Record<string, string>>;
  /** Always re-run this op (Go `IgnoreCache`). */
  readonly ignoreCache?: boolean;
  /** Force (`true`) or suppress (`false`) cache export for this op (Go `WithExportCache`/`WithoutExportCache`). */
  readonly exportCache?: boolean;
  /** Progress group the op belongs to (Go `ProgressGroup`). */
  readonly progressGroup?: ProgressGroup;
  /** containerd-style worker filters (Go `Require`). */
  readonly workerConstraints?: readonly string[];
  /** `local.unique` for local sources without a session (Go `LocalUniqueID`). */
  readonly localUniqueId?: string;
  /** Where this op comes from in a source file (Go `SourceMap.Location`); see {@link SourceMap}. */
  readonly sourceLocations?: readonly SourceLocation[];
}

/**
 * A source file that ops can point into (Go `llb.SourceMap`), recorded in
 * `Definition.source` so errors can be mapped back to lines. `definition` or `state`
 * optionally describes where the file itself comes from.
 */
export class SourceMap {
  constructor(
    /** File name shown in errors. */
    readonly filename: string,
    /** File contents. */
    readonly data: Uint8Array,
    /** Language, and where the file comes from (a State or Definition). */
    readonly options: { readonly language?: string; readonly state?: State; readonly definition?: Definition } = {},
  ) {}

  /** A location in this file covering `ranges` (1-based lines, as BuildKit records them). */
  location(ranges: readonly Range[]): SourceLocation {
    return { sourceMap: this, ranges };
  }
}

/** One op's position in a {@link SourceMap}. */
export interface SourceLocation {
  /** The file. */
  readonly sourceMap: SourceMap;
  /** Line ranges in it. */
  readonly ranges: readonly Range[];
}

/** Mutable metadata used while building an op (Go `pb.OpMetadata` value semantics). */
export interface MetaBuilder {
  ignoreCache: boolean;
  description: Map<string, string> | undefined;
  exportCache: { value: boolean } | undefined;
  caps: Set<string> | undefined;
  progressGroup: ProgressGroup | undefined;
}

/** Internal constraints (Go `llb.Constraints`). */
export interface Constraints {
  platform: Platform | undefined;
  workerConstraints: string[];
  metadata: MetaBuilder;
  localUniqueId: string | undefined;
  sourceLocations: SourceLocation[];
}

export function emptyMeta(): MetaBuilder {
  return { ignoreCache: false, description: undefined, exportCache: undefined, caps: undefined, progressGroup: undefined };
}

/**
 * A copy of `m` whose caps may be added to. The description map is shared: a description is
 * complete once built ({@link constraintsFrom}), and {@link mergeMetadata} copies before adding.
 */
export function cloneMeta(m: MetaBuilder): MetaBuilder {
  return {
    ignoreCache: m.ignoreCache,
    description: m.description,
    exportCache: m.exportCache,
    caps: m.caps ? new Set(m.caps) : undefined,
    progressGroup: m.progressGroup,
  };
}

/** Builds constraints from user options. */
export function constraintsFrom(opts: ConstraintsOptions | undefined): Constraints {
  const c: Constraints = {
    platform: undefined,
    workerConstraints: [],
    metadata: emptyMeta(),
    localUniqueId: undefined,
    sourceLocations: [],
  };
  if (!opts) return c;
  if (opts.platform !== undefined) c.platform = toPlatform(opts.platform);
  if (opts.description) {
    c.metadata.description = new Map(Object.entries(opts.description));
  }
  if (opts.customName !== undefined) (c.metadata.description ??= new Map()).set('llb.customname', opts.customName);
  if (opts.ignoreCache) c.metadata.ignoreCache = true;
  if (opts.exportCache !== undefined) c.metadata.exportCache = { value: opts.exportCache };
  if (opts.progressGroup) c.metadata.progressGroup = opts.progressGroup;
  if (opts.workerConstraints) c.workerConstraints = [...opts.workerConstraints];
  if (opts.localUniqueId !== undefined) c.localUniqueId = opts.localUniqueId;
  if (opts.sourceLocations) c.sourceLocations = [...opts.sourceLocations];
  return c;
}

export function cloneConstraints(c: Constraints): Constraints {
  return { ...c, workerConstraints: [...c.workerConstraints], metadata: cloneMeta(c.metadata), sourceLocations: [...c.sourceLocations] };
}

/** Go `addCap`. */
export function addCap(c: Constraints, cap: string): void {
  (c.metadata.caps ??= new Set()).add(cap);
}

/** Go `mergeMetadata(m1, m2)`: m2's settings win; caps and descriptions accumulate. */
export function mergeMetadata(m1: MetaBuilder, m2: MetaBuilder): MetaBuilder {
  const out = cloneMeta(m1);
  if (m2.ignoreCache) out.ignoreCache = true;
  if (m2.description && m2.description.size > 0) {
    // m1's map is shared (cloneMeta), so the merge writes into a copy
    const description = new Map(out.description);
    for (const [k, v] of m2.description) description.set(k, v);
    out.description = description;
  }
  if (m2.exportCache) out.exportCache = m2.exportCache;
  if (m2.caps) {
    out.caps ??= new Set();
    for (const k of m2.caps) out.caps.add(k);
  }
  if (m2.progressGroup) out.progressGroup = m2.progressGroup;
  return out;
}

/**
 * Converts builder metadata to the wire model. The description map is shared, not copied:
 * marshal hands over builders nobody changes afterwards (merges copy their first argument).
 */
export function metaToPb(m: MetaBuilder): OpMetadata {
  const out: { -readonly [K in keyof OpMetadata]: OpMetadata[K] } = {};
  if (m.ignoreCache) out.ignoreCache = true;
  if (m.description) out.description = m.description;
  if (m.exportCache) out.exportCache = m.exportCache.value ? { value: true } : {};
  if (m.caps) {
    const caps = new Map<string, boolean>();
    for (const k of m.caps) caps.set(k, true);
    out.caps = caps;
  }
  if (m.progressGroup) out.progressGroup = m.progressGroup;
  return out;
}

/** What `MarshalConstraints` puts on an op, plus the op's merged metadata. */
export interface MarshaledConstraints {
  platform: PbPlatform;
  workerConstraints: string[];
  metadata: MetaBuilder;
}

/** True when merging `m` into it would change nothing (Go's zero `pb.OpMetadata`). */
function isEmptyMeta(m: MetaBuilder): boolean {
  return !m.ignoreCache && m.description === undefined && m.exportCache === undefined && m.caps === undefined && m.progressGroup === undefined;
}

/**
 * `mergeMetadata(m1, m2)` when the caller owns `m2` and drops it afterwards: with nothing in `m1`
 * the merge is `m2` itself (an empty description map aside, which the merge drops), so no copy.
 */
export function mergeOwnedMetadata(m1: MetaBuilder, m2: MetaBuilder): MetaBuilder {
  if (isEmptyMeta(m1) && (m2.description === undefined || m2.description.size > 0)) return m2;
  return mergeMetadata(m1, m2);
}

/**
 * Go `MarshalConstraints(base, override)`. `override` is the vertex's own copy of its
 * constraints (callers pass a clone): its metadata may be taken over rather than copied.
 */
export function marshalConstraints(base: Constraints, override: Constraints): MarshaledConstraints {
  const platform = override.platform ?? base.platform ?? normalizePlatform(defaultPlatform());
  return {
    platform: platformToPb(platform),
    workerConstraints: base.workerConstraints.length === 0 ? override.workerConstraints : [...base.workerConstraints, ...override.workerConstraints],
    metadata: mergeOwnedMetadata(base.metadata, override.metadata),
  };
}
