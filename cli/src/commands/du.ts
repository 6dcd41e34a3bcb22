import { join } from 'node:path';
import type { Command } from 'commander';
import { LocalSnapshotter } from '@kiln/runtime';
import { CacheStore, formatBytes, gitRepoUsage, type DiskUsageRecord, type GitRepoUsage } from '@kiln/solver';
import type { CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { orphanRules, type OrphanSnapshot } from '../engine/engine.js';
import { parseRecordFilters, type RecordSelection } from '../engine/prune-filter.js';
import { ensureRootDir } from '../engine/root-dir.js';

/** One row of `kiln du`. */
export interface UsageRow {
  readonly id: string;
  readonly kind: string;
  readonly size: number;
  readonly reclaimable: boolean;
  readonly lastUsed: number;
  readonly description: string;
  /** Dropped from the cache by a prune whose removal of it failed; the next prune retries it. */
  readonly pendingRemoval?: boolean;
}

/**
 * Cache records under `root`: op results, local-source snapshots, cache mounts
 * (`RUN --mount=type=cache`, kind `exec.cachemount`) and the shared repositories of git sources,
 * most recently used first; and snapshots killed kiln processes left behind (kind `orphan`), which
 * the next build removes (or `kiln prune`).
 */
export async function diskUsage(root: string, selection: RecordSelection = {}, openStore?: CacheStore): Promise<UsageRow[]> {
  // `kiln daemon`'s own store knows what its running builds lease (not reclaimable); a store
  // opened here cannot know another process's builds.
  // the root made one level at a time, as the engine makes it: the store's recursive mkdir never
  // returned for a root under /proc (kiln du --root /proc/x spun at full CPU, deaf to SIGTERM)
  if (openStore === undefined) await ensureRootDir(root);
  const store = openStore ?? CacheStore.open({ path: join(root, 'cache', 'solver.db') });
  let records: DiskUsageRecord[];
  const orphans: UsageRow[] = [];
  try {
    records = store.du();
    // Listing reads snapshot metadata only: no driver is needed, so none is probed (the forced
    // copy driver skips the overlay probe and the mount helper's start).
    const snapshots = new LocalSnapshotter({ root, driver: 'copy' });
    for (const o of await snapshots.orphans(orphanRules(store))) {
      const { size } = await snapshots.usage(o.id).catch(() => ({ size: 0 }));
      orphans.push(orphanRow(o, size));
    }
  } finally {
    if (openStore === undefined) store.close();
  }
  const repos = (await gitRepoUsage(root)).map((g) => gitRepoRow(g));
  return records
    .map(
      (r): UsageRow => ({
        id: r.snapshot,
        kind: r.kind,
        size: r.size,
        reclaimable: !r.inUse,
        lastUsed: r.lastUsed,
        description: r.description,
        ...(r.pendingRemoval === true ? { pendingRemoval: true } : {}),
      }),
    )
    .concat(repos, orphans)
    .filter((r) => selects(selection, r, Date.now()))
    .sort((a, b) => b.lastUsed - a.lastUsed);
}

/** Whether `--filter` selects a row: it matches, and was not used within `until` (what a prune with it removes). */
function selects(selection: RecordSelection, r: UsageRow, now: number): boolean {
  if (selection.keepDuration !== undefined && r.lastUsed >= now - selection.keepDuration) return false;
  return selection.match?.(r) ?? true;
}

/** A snapshot a killed kiln process left behind as a `kiln du` / `kiln prune` row. */
export function orphanRow(o: OrphanSnapshot, size: number): UsageRow {
  const by = o.pid === undefined ? 'a kiln process that is gone' : `kiln process ${o.pid}, killed`;
  return { id: o.id, kind: 'orphan', size, reclaimable: true, lastUsed: Date.parse(o.createdAt), description: `${o.kind} snapshot left by ${by}` };
}

/** A shared git repository as a `kiln du` row (BuildKit: a regular record, "shared git repo for …"). */
export function gitRepoRow(g: GitRepoUsage): UsageRow {
  return { id: g.id, kind: 'regular', size: g.size, reclaimable: true, lastUsed: g.lastUsed, description: `shared git repo for ${g.remote}` };
}

/** Registers `kiln du [--verbose] [--filter F]...`: build cache usage, like `buildctl du`. */
export function registerDu(program: Command, io: CliIo): void {
  program
    .command('du')
    .description('show build cache disk usage')
    .option('-v, --verbose', 'show descriptions and last use')
    .option('--filter <filter>', 'only records matching: type=exec.cachemount, id=…, description~=REGEXP, until=24h (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--root <dir>', 'kiln state directory')
    .action(async (flags: { verbose?: boolean; root?: string; filter: string[] }) => {
      const root = kilnRoot(flags.root, io).path;
      const selection = parseRecordFilters(flags.filter);
      // Served by kiln daemon: its open engine (no engine is opened for a plain `kiln du`).
      const daemonStore = io.engines?.keepsOpen === true ? (await io.engines.open({ root })).cache : undefined;
      const rows = await diskUsage(root, selection, daemonStore);
      io.stdout.write(renderUsage(rows, flags.verbose === true));
    });
}

/** Renders rows as `buildctl du` does: ID, RECLAIMABLE, SIZE, LAST ACCESSED, then totals. */
export function renderUsage(rows: readonly UsageRow[], verbose: boolean): string {
  const lines: string[] = [];
  const idw = Math.max(2, ...rows.map((r) => Math.min(r.id.length, 40)));
  lines.push(`${'ID'.padEnd(idw)}  ${'KIND'.padEnd(15)}  RECLAIMABLE  ${'SIZE'.padStart(10)}  LAST ACCESSED${verbose ? '           DESCRIPTION' : ''}`);
  for (const r of rows) {
    const id = r.id.length > 40 ? `${r.id.slice(0, 37)}...` : r.id;
    // a snapshot a prune could not remove yet: still on disk, freed by the next prune
    const kind = r.pendingRemoval === true ? 'pending removal' : r.kind;
    lines.push(
      `${id.padEnd(idw)}  ${kind.padEnd(15)}  ${String(r.reclaimable).padEnd(11)}  ${formatBytes(r.size).padStart(10)}  ${ago(r.lastUsed)}${verbose ? `  ${r.description}` : ''}`,
    );
  }
  const total = rows.reduce((n, r) => n + r.size, 0);
  const reclaimable = rows.filter((r) => r.reclaimable).reduce((n, r) => n + r.size, 0);
  lines.push(`Reclaimable:\t${formatBytes(reclaimable)}`);
  lines.push(`Total:\t\t${formatBytes(total)}`);
  return `${lines.join('\n')}\n`;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} seconds ago`.padEnd(22);
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`.padEnd(22);
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`.padEnd(22);
  return `${Math.round(s / 86400)} days ago`.padEnd(22);
}
