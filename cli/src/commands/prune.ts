import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatBytes } from '@kiln/solver';
import type { CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { KilnEngine } from '../engine/engine.js';
import { parseSize } from '../engine/session.js';
import { cacheMounts, type UsageRow } from './du.js';

/** Options of {@link prune}. */
export interface PruneFlags {
  readonly all?: boolean;
  readonly keepStorage?: string;
  readonly root?: string;
}

/**
 * Removes build cache, like `buildctl prune`: least recently used first until `--keep-storage`
 * is met, otherwise everything not in use (`--all` includes internal/frontend records). Cache
 * mounts count too (oldest first). Returns what was removed.
 */
export async function prune(root: string, flags: PruneFlags): Promise<UsageRow[]> {
  const engine = await KilnEngine.open({ root });
  try {
    const keep = flags.keepStorage === undefined ? undefined : parseSize(flags.keepStorage);
    const removed: UsageRow[] = [];
    const mounts = (await cacheMounts(root)).sort((a, b) => a.lastUsed - b.lastUsed);
    const records = engine.cache.du();
    let total = records.reduce((n, r) => n + r.size, 0) + mounts.reduce((n, m) => n + m.size, 0);
    // Cache mounts first when over budget (they are rebuilt by the next RUN), oldest first.
    for (const m of mounts) {
      if (keep !== undefined && total <= keep) break;
      await rm(join(root, 'solver', 'cachemounts', m.id.slice('cachemount:'.length)), { recursive: true, force: true });
      removed.push(m);
      total -= m.size;
    }
    const victims = await engine.cache.prune({
      ...(flags.all === true ? { all: true } : {}),
      ...(keep === undefined ? {} : { keepStorage: Math.max(0, keep - mounts.filter((m) => !removed.includes(m)).reduce((n, m) => n + m.size, 0)) }),
    });
    for (const v of victims) removed.push({ id: v.snapshot, kind: v.kind, size: v.size, reclaimable: true, lastUsed: v.lastUsed, description: v.description });
    return removed;
  } finally {
    engine.close();
  }
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
      const removed = await prune(resolve(kilnRoot(flags.root).path), flags);
      if (flags.verbose === true) for (const r of removed) io.stdout.write(`${r.id}\t${formatBytes(r.size)}\t${r.description}\n`);
      io.stdout.write(`Total:\t${formatBytes(removed.reduce((n, r) => n + r.size, 0))}\n`);
    });
}
