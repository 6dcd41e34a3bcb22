import { spawnSync } from 'node:child_process';
import { lstatSync, lutimesSync } from 'node:fs';
import { posix } from 'node:path';
import { PassThrough } from 'node:stream';
import { WorkerError } from '../api/errors.js';
import { applyLayer } from '../layer/apply.js';
import { treeChanges, type Change } from '../layer/changes.js';
import { writeLayer } from '../layer/export.js';

/** Options for {@link writeTreeDiff}. */
export interface TreeDiffOptions {
  /** Whether deletions can be written as overlay whiteouts (0/0 character devices); otherwise they fail the diff. */
  readonly whiteouts: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Writes into the empty layer dir `layer` the changes that turn tree `lower` into tree `upper`:
 * what `upper` adds or changes (metadata, hardlinks and devices kept, through the same tar
 * writer and applier as image layers, streamed) and an overlay whiteout for each path of
 * `lower` that `upper` lacks. Returns how many of each it wrote, and the directories (relative, `''` the root) holding whiteouts.
 */
export async function writeTreeDiff(lower: string, upper: string, layer: string, opts: TreeDiffOptions): Promise<{ readonly entries: number; readonly whiteouts: number; readonly whiteoutDirs: readonly string[] }> {
  const deleted: string[] = [];
  async function* adds(): AsyncGenerator<Change> {
    for await (const c of treeChanges(lower, upper, opts.signal)) {
      if (c.kind === 'add') yield c;
      else deleted.push(c.path);
    }
  }
  const tar = new PassThrough({ highWaterMark: 1 << 20 });
  const signal = opts.signal === undefined ? {} : { signal: opts.signal };
  const applying = applyLayer(layer, tar, { whiteouts: false, ...signal });
  // A failed apply stops the writer (it sees its output destroyed); a failed writer destroys it.
  applying.catch((e: unknown) => tar.destroy(e instanceof Error ? e : new Error(String(e))));
  const [w, a] = await Promise.allSettled([writeLayer(adds(), { output: tar, compression: 'none', ...signal }), applying]);
  if (a.status === 'rejected') throw a.reason;
  if (w.status === 'rejected') throw w.reason;
  if (deleted.length > 0 && !opts.whiteouts) {
    throw new WorkerError('SNAPSHOT_STATE', `the diff deletes ${deleted.length} path(s) (first: /${deleted[0] ?? ''}), which the copy snapshotter cannot represent`, {
      hint: 'DiffOp with deletions needs the overlay snapshotter',
    });
  }
  const dirs = [...new Set(deleted.map((p) => (posix.dirname(p) === '.' ? '' : posix.dirname(p))))];
  if (deleted.length > 0) {
    // Node has no mknod(2): one xargs for all of them. Whiteouts sit in directories the walk
    // emitted before them (or the root), whose mtimes are put back after.
    const r = spawnSync('xargs', ['-0', '-I{}', 'mknod', '{}', 'c', '0', '0'], { input: deleted.map((p) => posix.join(layer, p)).join('\0'), encoding: 'utf8' });
    if (r.status !== 0) throw new WorkerError('SNAPSHOT_STATE', `could not write whiteouts: ${(r.stderr || r.error?.message || `exit ${String(r.status)}`).trim()}`);
    for (const rel of dirs) {
      const st = lstatSync(posix.join(upper, rel), { throwIfNoEntry: false });
      if (st !== undefined) lutimesSync(posix.join(layer, rel), st.atime, st.mtime);
    }
  }
  return { entries: a.value.entries, whiteouts: deleted.length, whiteoutDirs: dirs };
}
