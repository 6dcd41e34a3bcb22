import type { Command } from 'commander';
import { pruneContent } from '@kiln/runtime';
import { formatBytes, gitRepoUsage, removeGitRepo, removeLocalMirrors, type CacheRecordKind, type DiskUsageRecord, type GitRepoUsage } from '@kiln/solver';
import { processIo, type CliIo } from '../io.js';
import { acquireEngine } from '../engine/lease.js';
import { kilnRoot } from '../engine/cli-support.js';
import { orphanRules, type KilnEngine } from '../engine/engine.js';
import { parseSize } from '../engine/session.js';
import { gcDue, rulesNow, type GcPolicy, type PruneRule } from '../engine/gc-policy.js';
import { parseRecordFilters, type FilterableRecord } from '../engine/prune-filter.js';
import { gitRepoRow, orphanRow, type UsageRow } from './du.js';

/** Options of {@link prune}. */
export interface PruneFlags {
  readonly all?: boolean;
  readonly keepStorage?: string;
  /** buildctl's `--keep-duration` (a Go duration): keep what was used within it. */
  readonly keepDuration?: string;
  /** buildx/buildctl `--filter` values (see parseRecordFilters). */
  readonly filter?: readonly string[];
  readonly root?: string;
}

/**
 * Removes build cache, like `buildctl prune`: least recently used first until `--keep-storage`
 * is met, otherwise everything not in use (`--all` includes internal/frontend records); with
 * `--keep-duration` / `--filter until=` only what was not used within that time, with `--filter
 * type=…` (and id, description) only the matching records. Cache mounts are records too; their
 * directories go with them. Content-store blobs nothing refers to any more (exported layers of
 * removed results) are deleted too. Returns what was removed.
 */
export async function prune(root: string, flags: PruneFlags, io: CliIo = processIo()): Promise<UsageRow[]> {
  const selection = parseRecordFilters(flags.filter ?? [], flags.keepDuration);
  const keep = flags.keepStorage === undefined ? undefined : parseSize(flags.keepStorage);
  const rule: PruneRule = {
    ...(flags.all === true ? { all: true } : {}),
    ...(keep === undefined ? {} : { keepBytes: keep }),
    ...(selection.keepDuration === undefined ? {} : { keepDuration: selection.keepDuration }),
    ...(selection.match === undefined ? {} : { match: selection.match }),
  };
  const lease = await acquireEngine(io, { root });
  try {
    return await lease.engine.activity.exclusive(() => pruneRules(lease.engine, [rule]));
  } finally {
    lease.release();
  }
}

/**
 * Runs the automatic GC of `engine` when `policy` says it is due (see gcDue): the rules in order,
 * under the same exclusion as `kiln prune`. Returns what was removed; undefined when nothing was
 * due or a build is running in this root (another build of the daemon, another kiln process):
 * the GC after a later build tries again.
 */
export async function collectGarbage(engine: KilnEngine, policy: GcPolicy): Promise<UsageRow[] | undefined> {
  if (!gcDue(policy, engine.cache, Date.now())) return undefined;
  try {
    // minFreeSpace rules: their keepBytes from the cache total and the disk's free space now.
    return await engine.activity.exclusive(() => pruneRules(engine, rulesNow(policy, () => engine.cache.totalSize())));
  } catch (e) {
    if ((e as { code?: unknown }).code === 'KLN0708') return undefined;
    throw e;
  }
}

/**
 * The prune itself, run while nothing builds in the root: what killed builds left, then each rule
 * over the cache records and the shared git repositories (regular records, as in BuildKit), then
 * content-store blobs nothing refers to any more.
 */
export async function pruneRules(engine: KilnEngine, rules: readonly PruneRule[]): Promise<UsageRow[]> {
  // First what killed builds left (whatever the rules say: nothing can use it), so that
  // snapshots pending removal it stacked on can go in this prune too.
  const sizes = new Map<string, number>();
  for (const o of await engine.snapshotter.orphans(orphanRules(engine.cache))) sizes.set(o.id, (await engine.snapshotter.usage(o.id).catch(() => ({ size: 0 }))).size);
  const removed: UsageRow[] = (await engine.sweepOrphans()).map((o) => orphanRow(o, sizes.get(o.id) ?? 0));
  let repos: GitRepoUsage[] | undefined;
  for (const rule of rules) {
    const match = ruleMatch(rule);
    const victims = await engine.cache.prune({
      ...(rule.all === true ? { all: true } : {}),
      ...(rule.keepBytes === undefined ? {} : { keepStorage: rule.keepBytes }),
      ...(rule.keepDuration === undefined ? {} : { keepDuration: rule.keepDuration }),
      ...(match === undefined ? {} : { filter: (u: DiskUsageRecord) => match({ id: u.snapshot, kind: u.kind, description: u.description }) }),
    });
    removed.push(...victims.map((v) => ({ id: v.snapshot, kind: v.kind, size: v.size, reclaimable: true, lastUsed: v.lastUsed, description: v.description })));
    // Shared git repositories: those the rule selects, least recently used first while the cache
    // (records and repositories) is still over keepBytes.
    repos ??= (await gitRepoUsage(engine.root)).sort((a, b) => a.lastUsed - b.lastUsed);
    const cutoff = rule.keepDuration === undefined ? Infinity : Date.now() - rule.keepDuration;
    let total = rule.keepBytes === undefined ? 0 : engine.cache.totalSize() + repos.reduce((n, r) => n + r.size, 0);
    for (const repo of [...repos]) {
      if (rule.keepBytes !== undefined && total <= rule.keepBytes) break;
      const row = gitRepoRow(repo);
      if (repo.lastUsed >= cutoff || (match !== undefined && !match(row))) continue;
      await removeGitRepo(engine.root, repo.id);
      repos.splice(repos.indexOf(repo), 1);
      total -= repo.size;
      removed.push(row);
    }
  }
  // The local-context mirrors share their files with the local- snapshots (hard links): once no
  // source.local record is left, they are the last copy of every context built, listed nowhere.
  if (!engine.cache.du().some((u) => u.kind === 'source.local')) {
    const size = await removeLocalMirrors(engine.root);
    if (size > 0) removed.push({ id: 'local context mirrors', kind: 'source.local', size, reclaimable: true, lastUsed: Date.now(), description: 'build contexts kept for incremental transfer' });
  }
  // Then the content store: blobs no image record and no remaining cache result needs (exported
  // layers of pruned results). Blobs younger than a minute are left to builds still running.
  const live = await engine.layers.retain(engine.cache.referencedSnapshots());
  const gc = await pruneContent(engine.content, engine.images, { keep: live, minAgeMs: 60_000 });
  if (gc.deleted.length > 0) {
    removed.push({ id: `content (${gc.deleted.length} blobs)`, kind: 'content', size: gc.reclaimedBytes, reclaimable: true, lastUsed: Date.now(), description: 'unreferenced content-store blobs' });
  }
  return removed;
}

/** A rule's record selection: its types (any of them) and its filter (both must accept). */
function ruleMatch(rule: PruneRule): ((r: FilterableRecord) => boolean) | undefined {
  const { types, match } = rule;
  if (types === undefined) return match;
  return (r) => types.includes(r.kind as CacheRecordKind) && (match?.(r) ?? true);
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** Registers `kiln prune [--all] [--keep-storage SIZE] [--keep-duration D] [--filter F]...`. */
export function registerPrune(program: Command, io: CliIo): void {
  program
    .command('prune')
    .description('remove build cache')
    .option('-a, --all', 'include internal and frontend records')
    .option('--keep-storage <size>', 'keep this much cache (e.g. 1GB), removing least recently used first')
    .option('--keep-duration <duration>', 'keep what was used within this time (Go duration: 24h, 30m, 1h30m)')
    .option('--filter <filter>', 'only records matching: until=24h, type=exec.cachemount, id=…, description~=REGEXP (repeatable)', collect, [])
    .option('-f, --force', 'accepted for buildx compatibility (kiln prune never prompts)')
    .option('-v, --verbose', 'list what was removed')
    .option('--root <dir>', 'kiln state directory')
    .action(async (flags: PruneFlags & { verbose?: boolean }) => {
      const removed = await prune(kilnRoot(flags.root, io).path, flags, io);
      if (flags.verbose === true) for (const r of removed) io.stdout.write(`${r.id}\t${formatBytes(r.size)}\t${r.description}\n`);
      io.stdout.write(`Total:\t${formatBytes(removed.reduce((n, r) => n + r.size, 0))}\n`);
    });
}
