import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CacheRecordKind } from '@kiln/solver';
import type { FilterableRecord } from './prune-filter.js';
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
}

/** The automatic GC of one kiln root: its rules, run in order after builds. */
export interface GcPolicy {
  /** The cap the last rules keep the whole cache under (`KILN_GC_KEEP_STORAGE`, `--gc-keep-storage`). */
  readonly keepBytes: number;
  readonly rules: readonly PruneRule[];
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
  // The root may not exist yet: its nearest existing parent is on the same filesystem.
  for (let p = path; ; p = dirname(p)) {
    try {
      const st = statfsSync(p);
      return st.blocks * st.bsize;
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
export function gcDue(policy: GcPolicy, store: CacheTotals, now: number): boolean {
  // Under every rule's limit by the cheap bound: done (the common case after a build).
  const limits = policy.rules.map((r) => r.keepBytes ?? -1);
  if (store.totalSizeBound() <= Math.min(...limits)) return false;
  const total = store.totalSize();
  return policy.rules.some((r) => {
    if (r.keepBytes !== undefined && total <= r.keepBytes) return false;
    if (r.types !== undefined && r.match === undefined) return store.hasUnusedSince(r.types, r.keepDuration === undefined ? Infinity : now - r.keepDuration);
    // Untyped rules over their limit always have candidates unless everything is in use or
    // younger than keepDuration: the prune finds out (rare: over the cap already).
    return true;
  });
}
