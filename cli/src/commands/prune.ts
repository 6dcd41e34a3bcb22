import type { Command } from 'commander';
import { pruneContent } from '@kiln/runtime';
import { formatBytes, gitRepoUsage, removeGitRepo } from '@kiln/solver';
import { processIo, type CliIo } from '../io.js';
import { acquireEngine } from '../engine/lease.js';
import { kilnRoot } from '../engine/cli-support.js';
import { orphanRules, type KilnEngine } from '../engine/engine.js';
import { parseSize } from '../engine/session.js';
import { gitRepoRow, orphanRow, type UsageRow } from './du.js';

/** Options of {@link prune}. */
export interface PruneFlags {
  readonly all?: boolean;
  readonly keepStorage?: string;
  readonly root?: string;
}

/**
 * Removes build cache, like `buildctl prune`: least recently used first until `--keep-storage`
 * is met, otherwise everything not in use (`--all` includes internal/frontend records). Cache
 * mounts are records too; their directories go with them. Content-store blobs nothing refers
 * to any more (exported layers of removed results) are deleted too. Returns what was removed.
 */
export async function prune(root: string, flags: PruneFlags, io: CliIo = processIo()): Promise<UsageRow[]> {
  const lease = await acquireEngine(io, { root });
  try {
    return await lease.engine.activity.exclusive(() => pruneUnlocked(lease.engine, flags));
  } finally {
    lease.release();
  }
}

async function pruneUnlocked(engine: KilnEngine, flags: PruneFlags): Promise<UsageRow[]> {
  const keep = flags.keepStorage === undefined ? undefined : parseSize(flags.keepStorage);
  // First what killed builds left (whatever --keep-storage says: nothing can use it), so that
  // snapshots pending removal it stacked on can go in this prune too.
  const sizes = new Map<string, number>();
  for (const o of await engine.snapshotter.orphans(orphanRules(engine.cache))) sizes.set(o.id, (await engine.snapshotter.usage(o.id).catch(() => ({ size: 0 }))).size);
  const removed: UsageRow[] = (await engine.sweepOrphans()).map((o) => orphanRow(o, sizes.get(o.id) ?? 0));
  const victims = await engine.cache.prune({ ...(flags.all === true ? { all: true } : {}), ...(keep === undefined ? {} : { keepStorage: keep }) });
  removed.push(...victims.map((v) => ({ id: v.snapshot, kind: v.kind, size: v.size, reclaimable: true, lastUsed: v.lastUsed, description: v.description })));
  // Shared git repositories: all of them, or with --keep-storage the least recently used while
  // the cache (records and repositories) is still over the limit.
  const repos = (await gitRepoUsage(engine.root)).sort((a, b) => a.lastUsed - b.lastUsed);
  let total = keep === undefined ? 0 : engine.cache.du().reduce((n, r) => n + r.size, 0) + repos.reduce((n, r) => n + r.size, 0);
  for (const repo of repos) {
    if (keep !== undefined && total <= keep) break;
    await removeGitRepo(engine.root, repo.id);
    total -= repo.size;
    removed.push(gitRepoRow(repo));
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

/** Registers `kiln prune [--all] [--keep-storage SIZE]`. */
export function registerPrune(program: Command, io: CliIo): void {
  program
    .command('prune')
    .description('remove build cache')
    .option('-a, --all', 'include internal and frontend records')
    .option('--keep-storage <size>', 'keep this much cache (e.g. 1GB), removing least recently used first')
    .option('-v, --verbose', 'list what was removed')
    .option('--root <dir>', 'kiln state directory')
    .action(async (flags: PruneFlags & { verbose?: boolean }) => {
      const removed = await prune(kilnRoot(flags.root, io).path, flags, io);
      if (flags.verbose === true) for (const r of removed) io.stdout.write(`${r.id}\t${formatBytes(r.size)}\t${r.description}\n`);
      io.stdout.write(`Total:\t${formatBytes(removed.reduce((n, r) => n + r.size, 0))}\n`);
    });
}
