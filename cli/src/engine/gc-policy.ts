import { statfsSync, type StatsFs } from 'node:fs';
import { dirname } from 'node:path';
import type { CacheRecordKind } from '@kiln/solver';
import { parseRecordFilters, type FilterableRecord } from './prune-filter.js';
import { parseSize } from './session.js';

/**
 * One prune step, as one `[[worker.oci.gcpolicy]]` of buildkitd.toml (or one `kiln prune`):
 * records not in use, of an eligible kind (`internal`/`frontend` only with `all`), matching
 * `types` and `match`, unused for `keepDuration` ms, go least recently used first; with
 * `keepBytes` only while the whole cache is over it (a cache at or under it loses nothing).
 */
export interface PruneRule {
  readonly all?: boolean;
  readonly keepBytes?: number;
  readonly keepDuration?: number;
  /** Record types (BuildKit's `type==…` filters of one policy: any of them). */
  readonly types?: readonly CacheRecordKind[];
  readonly match?: (r: FilterableRecord) => boolean;
  /**
   * A `minFreeSpace` limit (BuildKit ≥ 0.17), which makes `keepBytes` depend on the disk's free
   * space at GC time: see {@link keepBytesFor}; {@link rulesNow} fills `keepBytes` in.
   */
  readonly space?: SpaceLimits;
}

/** The automatic GC of one kiln root: its rules, run in order after builds. */
export interface GcPolicy {
  /** The cap the last rule keeps the whole cache under (for the logs; 0: that rule has none). */
  readonly keepBytes: number;
  readonly rules: readonly PruneRule[];
  /** The directory whose filesystem `minFreeSpace` rules measure (the kiln root). */
  readonly disk?: string;
}

/** A size in a config file: bytes, or a share of the kiln root's filesystem (BuildKit's DiskSpace). */
export type DiskSpace = { readonly bytes: number } | { readonly percent: number };

/** One `[[worker.oci.gcpolicy]]` of the config file, as written. */
export interface GcFileRule {
  readonly all?: boolean;
  readonly filters?: readonly string[];
  /** Milliseconds. */
  readonly keepDuration?: number;
  /** BuildKit before 0.17; read as reservedSpace when that is not set (as buildkitd does). */
  readonly keepBytes?: DiskSpace;
  readonly reservedSpace?: DiskSpace;
  readonly maxUsedSpace?: DiskSpace;
  readonly minFreeSpace?: DiskSpace;
}

/** The `[worker.oci]` GC keys of the config file. */
export interface GcFileSettings {
  /** `gc`: false turns the automatic GC off. */
  readonly enabled?: boolean;
  /** `gckeepstorage`: the default policy's cap (read as reservedSpace, as BuildKit ≥ 0.17 does). */
  readonly keepStorage?: DiskSpace;
  readonly reservedSpace?: DiskSpace;
  readonly maxUsedSpace?: DiskSpace;
  readonly minFreeSpace?: DiskSpace;
  /** `[[worker.oci.gcpolicy]]`: replaces the default rules. */
  readonly policy?: readonly GcFileRule[];
}

/** A rule's limits in bytes as BuildKit ≥ 0.17 names them (0: unset). */
export interface SpaceLimits {
  readonly reservedSpace: number;
  readonly maxUsedSpace: number;
  readonly minFreeSpace: number;
}

/** The easily reproduced record types BuildKit's first default rule removes (BuildKit: and source.git.checkout). */
export const EASY_TYPES: readonly CacheRecordKind[] = ['source.local', 'exec.cachemount'];
/** BuildKit's first default rule: 48 h unused, once the cache is over 512 MB. */
export const EASY_KEEP_DURATION = 48 * 3_600_000;
export const EASY_KEEP_BYTES = 512e6;
/** BuildKit's second default rule: anything unused for 60 days (while over the cap). */
export const STALE_KEEP_DURATION = 60 * 24 * 3_600_000;
/** kiln's ceiling on the default cap (BuildKit has none): 20 GB, Docker Desktop's default keep-storage. */
export const DEFAULT_CAP_CEILING = 20e9;

/**
 * BuildKit's default GC policy (cmd/buildkitd/config/gcpolicy.go `DefaultGCPolicy`) for the cap
 * `keepBytes`: (1) source.local and exec.cachemount records unused for 48 h while the cache is
 * over 512 MB; (2) any record unused for 60 days while over the cap; (3) any record, least
 * recently used first, until under the cap; (4) the same including internal and frontend records.
 */
export function defaultGcPolicy(keepBytes: number): GcPolicy {
  return {
    keepBytes,
    rules: [
      { types: EASY_TYPES, keepDuration: EASY_KEEP_DURATION, keepBytes: EASY_KEEP_BYTES },
      { keepDuration: STALE_KEEP_DURATION, keepBytes },
      { keepBytes },
      { all: true, keepBytes },
    ],
  };
}

/**
 * The default cap for a filesystem of `fsBytes`: 10 % of it rounded up to whole GiB counted as
 * 1e9 bytes, as BuildKit's `DiskSpace.AsBytes` (`(size*10/100 / 2^30 + 1) * 1e9`), then at most
 * {@link DEFAULT_CAP_CEILING}. 2 GB (BuildKit's fallback) when the size is unknown.
 */
export function defaultKeepBytes(fsBytes: number | undefined): number {
  if (fsBytes === undefined || !(fsBytes > 0)) return 2e9;
  const tenth = Math.floor((fsBytes * 10) / 100);
  return Math.min((Math.floor(tenth / 2 ** 30) + 1) * 1e9, DEFAULT_CAP_CEILING);
}

/**
 * The cache size a rule keeps, as BuildKit's cache manager computes it (calculateKeepBytes): no
 * cap (undefined) when no limit is set; else `maxUsedSpace`, lowered so that the disk gets
 * `minFreeSpace` free (only `minFreeSpace` and enough free: nothing goes), never below
 * `reservedSpace`.
 */
export function keepBytesFor(l: SpaceLimits, totalSize: number, freeBytes: number): number | undefined {
  if (l.maxUsedSpace === 0 && l.reservedSpace === 0 && l.minFreeSpace === 0) return undefined;
  let keep = l.maxUsedSpace;
  const excess = l.minFreeSpace - freeBytes;
  if (l.minFreeSpace !== 0 && excess > 0) keep = keep === 0 ? totalSize - excess : Math.min(keep, totalSize - excess);
  else if (l.minFreeSpace !== 0 && keep === 0) keep = totalSize;
  return Math.max(keep, l.reservedSpace);
}

/** A DiskSpace in bytes for a filesystem of `fsBytes` (a percentage rounds up as BuildKit's AsBytes; 2 GB if unknown). */
export function diskSpaceBytes(d: DiskSpace | undefined, fsBytes: number | undefined): number {
  if (d === undefined) return 0;
  if ('bytes' in d) return d.bytes;
  if (d.percent === 0) return 0;
  if (fsBytes === undefined || !(fsBytes > 0)) return 2e9;
  return (Math.floor(Math.floor((fsBytes * d.percent) / 100) / 2 ** 30) + 1) * 1e9;
}

/**
 * The GC policy of a config file's `[worker.oci]` for `root` (undefined: `gc = false`). With
 * `[[worker.oci.gcpolicy]]` entries, those are the rules (filters as `kiln prune --filter`); else
 * BuildKit's default rules with the file's cap (`reservedSpace`/`maxUsedSpace`/`minFreeSpace`, or
 * `gckeepstorage` as reservedSpace), or kiln's default cap when the file sets none.
 */
export function gcPolicyFromFile(file: GcFileSettings, root: string, fsBytes: number | undefined = filesystemSize(root)): GcPolicy | undefined {
  if (file.enabled === false) return undefined;
  const bytes = (d: DiskSpace | undefined): number => diskSpaceBytes(d, fsBytes);
  let rules: PruneRule[];
  if (file.policy !== undefined && file.policy.length > 0) {
    rules = file.policy.map((r) => fileRule(r, bytes));
  } else {
    const limits: SpaceLimits = {
      reservedSpace: bytes(file.reservedSpace ?? (file.maxUsedSpace === undefined && file.minFreeSpace === undefined ? file.keepStorage : undefined)),
      maxUsedSpace: bytes(file.maxUsedSpace),
      minFreeSpace: bytes(file.minFreeSpace),
    };
    if (limits.reservedSpace === 0 && limits.maxUsedSpace === 0 && limits.minFreeSpace === 0) return defaultGcPolicy(defaultKeepBytes(fsBytes));
    const cap = withLimits({}, limits);
    rules = [{ types: EASY_TYPES, keepDuration: EASY_KEEP_DURATION, keepBytes: EASY_KEEP_BYTES }, { keepDuration: STALE_KEEP_DURATION, ...cap }, { ...cap }, { all: true, ...cap }];
  }
  const last = rules[rules.length - 1];
  return {
    keepBytes: last?.keepBytes ?? Math.max(last?.space?.maxUsedSpace ?? 0, last?.space?.reservedSpace ?? 0),
    rules,
    ...(rules.some((r) => r.space !== undefined) ? { disk: root } : {}),
  };
}

function fileRule(r: GcFileRule, bytes: (d: DiskSpace | undefined) => number): PruneRule {
  // buildkitd reads a rule's filters with containerd's filters.ParseAll: a record matching any
  // one of them is selected; the comma-separated selectors inside one must all match. A filter of
  // `until=` alone selects no record there (no such field), so it widens nothing here either.
  const sels = (r.filters ?? []).map((f) => parseRecordFilters([f]));
  const matches = sels.flatMap((s) => (s.match === undefined ? [] : [s.match]));
  const match = matches.length === 0 ? undefined : (rec: FilterableRecord) => matches.some((m) => m(rec));
  const types = typesOnly(r.filters ?? []);
  // `until=` (kiln's, as `kiln prune --filter`): the longest applies to the rule.
  const keepDuration = Math.max(r.keepDuration ?? 0, ...sels.map((s) => s.keepDuration ?? 0));
  const base: PruneRule = {
    ...(r.all === true ? { all: true } : {}),
    ...(keepDuration > 0 ? { keepDuration } : {}),
    // Only type== selectors: the after-build check can ask the store for such records directly.
    ...(types !== undefined ? { types } : match === undefined ? {} : { match }),
  };
  return withLimits(base, { reservedSpace: bytes(r.reservedSpace ?? r.keepBytes), maxUsedSpace: bytes(r.maxUsedSpace), minFreeSpace: bytes(r.minFreeSpace) });
}

/** A rule with limits: a fixed keepBytes, or (with minFreeSpace) limits resolved at GC time. */
function withLimits(rule: PruneRule, l: SpaceLimits): PruneRule {
  if (l.minFreeSpace !== 0) return { ...rule, space: l };
  const keep = keepBytesFor(l, 0, 0);
  return keep === undefined ? rule : { ...rule, keepBytes: keep };
}

/** The record types of filters that are all `type==X` / `type=X` selectors, else undefined. */
function typesOnly(filters: readonly string[]): CacheRecordKind[] | undefined {
  const parts = filters.flatMap((f) => f.split(',')).map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) return undefined;
  const types = parts.map((p) => /^type\s*==?\s*([\w.]+)$/.exec(p)?.[1]);
  return types.every((t): t is string => t !== undefined) ? (types as CacheRecordKind[]) : undefined;
}

/**
 * The rules of `policy` as they apply now: a `minFreeSpace` rule gets its keepBytes from the
 * cache's `totalSize` and the free space of the policy's disk (statfs). Others are as they are.
 */
export function rulesNow(policy: GcPolicy, totalSize: () => number, freeBytes: () => number | undefined = () => diskFree(policy.disk)): readonly PruneRule[] {
  if (!policy.rules.some((r) => r.space !== undefined)) return policy.rules;
  const total = totalSize();
  const free = freeBytes() ?? Infinity;
  return policy.rules.map((r) => {
    if (r.space === undefined) return r;
    const { space: _, ...rest } = r;
    const keep = keepBytesFor(r.space, total, free);
    return keep === undefined ? rest : { ...rest, keepBytes: Math.max(0, keep) };
  });
}

function diskFree(path: string | undefined): number | undefined {
  const st = path === undefined ? undefined : statfsNearest(path);
  return st === undefined ? undefined : st.bfree * st.bsize;
}

/**
 * Where the automatic GC's policy comes from, highest first (as buildkitd's flags override its
 * file): `--gc-keep-storage`, then `KILN_GC_KEEP_STORAGE` (each the default rules with that cap;
 * `0`/`off`: no GC), then the config file's `[worker.oci]`, then kiln's default.
 */
export function resolveGcPolicy(src: { readonly flag?: string | undefined; readonly env?: string | undefined; readonly file?: GcFileSettings | undefined }, root: string): GcPolicy | undefined {
  const setting = src.flag ?? src.env;
  if (setting !== undefined && setting.trim() !== '') return gcPolicyFor(setting, root);
  if (src.file !== undefined) return gcPolicyFromFile(src.file, root);
  return gcPolicyFor(undefined, root);
}

/**
 * The GC policy for `root` from a setting (`--gc-keep-storage`, else `KILN_GC_KEEP_STORAGE`):
 * undefined or empty: the default cap of the root's filesystem; `0`, `off` or `false`: no
 * automatic GC (returns undefined); otherwise a size (`1GB`, `500MB`, bytes; KLN0707 if malformed).
 */
export function gcPolicyFor(setting: string | undefined, root: string): GcPolicy | undefined {
  const v = setting?.trim() ?? '';
  if (/^(off|false|no)$/i.test(v)) return undefined;
  if (v !== '') {
    const bytes = parseSize(v);
    return bytes === 0 ? undefined : defaultGcPolicy(bytes);
  }
  return defaultGcPolicy(defaultKeepBytes(filesystemSize(root)));
}

function filesystemSize(path: string): number | undefined {
  const st = statfsNearest(path);
  return st === undefined ? undefined : st.blocks * st.bsize;
}

/** statfs of `path`, or of its nearest existing parent (the root may not exist yet: it is on the same filesystem). */
function statfsNearest(path: string): StatsFs | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      return statfsSync(p);
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

/** What {@link gcDue} reads: two SQL queries on the cache store, no directory walks. */
export interface CacheTotals {
  totalSize(): number;
  /** At least totalSize (shared snapshots counted per key), cheaper. */
  totalSizeBound(): number;
  hasUnusedSince(kinds: readonly CacheRecordKind[], before: number): boolean;
}

/**
 * Whether any rule of `policy` would remove something: the cache total is over a rule's
 * `keepBytes` and (for a rule limited to types and a duration) some such record is old enough.
 * The check after every build: one plain SUM while the cache is under every limit.
 */
export function gcDue(policy: GcPolicy, store: CacheTotals, now: number, freeBytes?: () => number | undefined): boolean {
  // Under every rule's limit by the cheap bound: done (the common case after a build).
  const fixed = !policy.rules.some((r) => r.space !== undefined);
  const limits = policy.rules.map((r) => r.keepBytes ?? -1);
  if (fixed && store.totalSizeBound() <= Math.min(...limits)) return false;
  const total = store.totalSize();
  const rules = fixed ? policy.rules : rulesNow(policy, () => total, freeBytes);
  return rules.some((r) => {
    if (r.keepBytes !== undefined && total <= r.keepBytes) return false;
    if (r.types !== undefined && r.match === undefined) return store.hasUnusedSince(r.types, r.keepDuration === undefined ? Infinity : now - r.keepDuration);
    // Untyped rules over their limit always have candidates unless everything is in use or
    // younger than keepDuration: the prune finds out (rare: over the cap already).
    return true;
  });
}
