import { lstatSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DiffOp, ExecOp, FileOp, MergeOp, SourceOp } from '@kiln/llb-core';
import type { ExecPreparation } from '@kiln/runtime';
import { ContentHashTree, splitWildcards, type ChecksumOptions } from '../contenthash/tree.js';
import { headerDigest } from '../contenthash/tarsum.js';
import { SolverError } from '../errors.js';
import type { ReleaseContext } from '../cache/store.js';
import { toLocalStat, walkLocal, type LocalEntry } from '../local/walk.js';
import { cleanPath } from '../local/clean-path.js';
import type { Worker, WorkerOpContext } from '../llb/worker.js';
import type { SessionAttachables, WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { CacheMounts } from './cache-mounts.js';
import { runExec, validateExecEntitlements } from './exec.js';
import { HttpSources } from './http.js';
import { GitSources } from './git.js';
import { runFileOp } from './file.js';
import { ImageSources, LocalSources, emptySnapshot, parseIdentifier, type PrefetchImageOptions } from './sources.js';
import { newSnapshotId, readableInPlace, snapshotSize, withMounted } from './snapshots.js';

const execFileP = promisify(execFile);

/**
 * The entries a checksum of `path` needs: only the selected subtree and its ancestors when no
 * component on the way is a symlink (the common `COPY --from=stage /app/bin` case), else the
 * whole tree. Digests of a subtree do not depend on anything outside it.
 */
function scopedEntries(root: string, path: string, opts: ChecksumOptions): LocalEntry[] {
  const target = opts.wildcard === true ? splitWildcards(cleanPath(`/${path}`))[0] : cleanPath(`/${path}`);
  const parts = target.split('/').filter((p) => p !== '');
  if (parts.length === 0) return walkLocal(root);
  const out: LocalEntry[] = [];
  let rel = '';
  for (const [i, part] of parts.entries()) {
    rel = rel === '' ? part : `${rel}/${part}`;
    let st;
    try {
      st = lstatSync(join(root, rel));
    } catch {
      return walkLocal(root); // let the full tree report what is missing
    }
    const last = i === parts.length - 1;
    if (st.isSymbolicLink() && !(last && opts.followLinks !== true)) return walkLocal(root);
    out.push({ path: rel, stat: toLocalStat(st, join(root, rel)) });
    if (!st.isDirectory() && !last) return walkLocal(root);
  }
  const top = out[out.length - 1];
  if (top !== undefined && (top.stat.mode & 0o170000) === 0o040000) {
    for (const e of walkLocal(join(root, rel))) out.push({ path: `${rel}/${e.path}`, stat: e.stat });
  }
  return out;
}

/**
 * A {@link Worker} on kiln's runtime: images are unpacked into chain-id snapshots, local sources
 * are synced incrementally and snapshotted by content, execs run with runc, file ops use the
 * runtime's file actions, merges and diffs stack their inputs' layers (copying only where the
 * snapshotter cannot). Release snapshots the cache
 * store drops with {@link RuntimeWorker.releaseSnapshot}.
 */
export class RuntimeWorker implements Worker {
  readonly #deps: RuntimeWorkerDeps;
  readonly #images: ImageSources;
  readonly #locals: LocalSources;
  readonly #cacheMounts: CacheMounts;
  readonly #http: HttpSources;
  readonly #git: GitSources;
  /** The build's secrets and ssh agents, which the solver lends to every step it is attached to. */
  readonly attachables: SessionAttachables;

  constructor(deps: RuntimeWorkerDeps) {
    this.#deps = deps;
    this.attachables = {
      ...(deps.secrets === undefined ? {} : { secrets: deps.secrets }),
      ...(deps.ssh === undefined ? {} : { ssh: deps.ssh }),
      ...(deps.onFailedExec === undefined ? {} : { onFailedExec: deps.onFailedExec }),
    };
    this.#images = new ImageSources(deps);
    this.#locals = new LocalSources(deps);
    this.#cacheMounts = new CacheMounts(deps.root);
    this.#http = new HttpSources(deps);
    this.#git = new GitSources(deps);
  }

  async sourceCacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string> {
    const { scheme } = parseIdentifier(op);
    switch (scheme) {
      case 'docker-image':
        return this.#images.cacheKey(op, ctx);
      case 'http':
      case 'https':
        return this.#http.cacheKey(op, ctx);
      case 'git':
        return this.#git.cacheKey(op, ctx);
      case 'local':
        // Like BuildKit's session-bound local source: never a cache hit by itself; what COPY
        // selects from it is keyed by content.
        return `session:${op.identifier ?? ''}:${Date.now()}:${Math.random()}`;
      default:
        throw new SolverError('SOLVER_UNSUPPORTED', `source ${scheme}:// is not supported by this worker`);
    }
  }

  async source(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef> {
    const { scheme } = parseIdentifier(op);
    if (scheme === 'docker-image') return this.#images.snapshot(op, ctx);
    if (scheme === 'local') return this.#locals.snapshot(op, ctx);
    if (scheme === 'http' || scheme === 'https') return this.#http.snapshot(op, ctx);
    if (scheme === 'git') return this.#git.snapshot(op, ctx);
    throw new SolverError('SOLVER_UNSUPPORTED', `source ${scheme}:// is not supported by this worker`);
  }

  /**
   * Starts making `reference`'s layer snapshots ready before a FROM of it runs (call it when a
   * frontend resolved the image's config): the image is resolved (pulled if needed) and its
   * layers are unpacked, and a FROM of the same layers in any worker of this process joins that
   * work instead of starting over. Never rejects; a failure is left for the FROM to report.
   */
  prefetchImage(reference: string, opts: PrefetchImageOptions = {}): Promise<void> {
    return this.#images.prefetch(reference, opts);
  }

  validateExec(op: ExecOp): void {
    validateExecEntitlements(this.#deps, op);
  }

  prepareExec(): ExecPreparation | undefined {
    return this.#deps.executor.prepare?.();
  }

  exec(op: ExecOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]> {
    return runExec(this.#deps, this.#cacheMounts, op, inputs, ctx);
  }

  file(op: FileOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]> {
    return runFileOp(this.#deps, op, inputs, ctx);
  }

  /**
   * MergeOp: the inputs' layers applied on top of one another in order (later inputs win, their
   * deletions apply). The snapshotter stacks the inputs' layer dirs when it can (overlayfs: no
   * file is copied, and the result owns no data of its own, so its size is 0); otherwise every
   * input is copied, in order, into one new snapshot (the copy driver).
   */
  async merge(op: MergeOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef> {
    const s = this.#deps.snapshotter;
    const parents = (op.inputs ?? []).map((m) => inputs[m.input ?? 0]?.snapshot).filter((p): p is string => p !== undefined);
    const id = newSnapshotId('merge');
    if (s.merge !== undefined && (await s.merge(id, parents, { signal: ctx.signal })) !== undefined) return { snapshot: id, size: 0 };
    const active = newSnapshotId('merge');
    await s.prepare(active, await emptySnapshot(this.#deps));
    try {
      await withMounted(s, active, ctx.signal, async (dest) => {
        for (const src of parents) {
          await withMounted(s, src, ctx.signal, (dir) => execFileP('cp', ['-a', '--reflink=auto', `${dir}/.`, `${dest}/`]).then(() => undefined));
        }
      });
      await s.commit(id, active);
      return { snapshot: id, size: await snapshotSize(s, id) };
    } catch (err) {
      await s.remove(active).catch(() => undefined);
      throw err;
    }
  }

  /**
   * DiffOp: the changes that turn `lower` into `upper` (input -1: scratch), so that merging the
   * result onto `lower` gives `upper`. When `lower` is a base of `upper` (BuildKit's "known
   * chain") the layers between them are stacked and nothing is copied; otherwise the two trees
   * are compared and the additions copied, deletions kept as whiteouts.
   */
  async diff(op: DiffOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef> {
    const s = this.#deps.snapshotter;
    // pb.Empty (-1) is scratch; an unset index is proto3's 0, the first input (as in BuildKit).
    // An index past the inputs is a broken definition, not scratch (BuildKit fails on it too).
    const ref = (i: number | undefined): string | undefined => {
      const n = i ?? 0;
      if (n < 0) return undefined;
      const input = inputs[n];
      if (input === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', `DiffOp input index ${n} is out of range (the op has ${inputs.length} input(s))`);
      return input.snapshot;
    };
    const lower = ref(op.lower?.input);
    const upper = ref(op.upper?.input);
    // Diff(X, X) and Diff(scratch, scratch) are empty.
    if (lower === upper) return { snapshot: await emptySnapshot(this.#deps), size: 0 };
    const id = newSnapshotId('diff');
    if (upper !== undefined && s.diffLayers !== undefined && (await s.diffLayers(id, lower, upper, { signal: ctx.signal })) !== undefined) return { snapshot: id, size: 0 };
    if (s.diffTrees === undefined) {
      throw new SolverError('SOLVER_UNSUPPORTED', 'DiffOp is only supported when the lower input is a base of the upper one with this snapshotter', {
        hint: 'diff a state against one of its ancestors, e.g. llb.Diff(base, base.Run(...).Root())',
      });
    }
    await s.diffTrees(id, lower, upper, { signal: ctx.signal });
    return { snapshot: id, size: await snapshotSize(s, id) };
  }

  /**
   * BuildKit's contenthash checksum of `path` in a result. Local sources answer from the tree of
   * their sync (no file is read); other snapshots are mounted and scanned once, hashing only
   * the files the selection needs.
   */
  async checksum(ref: WorkerRef, path: string, opts: ChecksumOptions, signal: AbortSignal): Promise<string> {
    const local = this.#locals.trees.get(ref.snapshot);
    if (local !== undefined) return local.checksum(path, opts);
    const sum = async (root: string): Promise<string> => {
      const tree = ContentHashTree.fromEntries(scopedEntries(root, path, opts), { root, rootHeaderDigest: headerDigest(toLocalStat(await lstat(root), root)) });
      return tree.checksum(path, opts);
    };
    // One file of the top layer (or any path of a one-layer snapshot) is read where it is.
    const literal = (opts.wildcard !== true || !/[*?[\\]/.test(path)) && (opts.includePatterns ?? []).length === 0 && (opts.excludePatterns ?? []).length === 0;
    const inPlace = await readableInPlace(this.#deps.snapshotter, ref.snapshot, literal ? path : '');
    if (inPlace !== undefined) return sum(inPlace);
    return withMounted(this.#deps.snapshotter, ref.snapshot, signal, sum);
  }

  async pruneCacheMounts(ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.#cacheMounts.prune(id);
  }

  /**
   * The cache store's release hook: removes a snapshot, or a cache mount directory for
   * `cachemount:<id>`. Rejects when the snapshot stays (others still build on it, or its files
   * could not be removed: EBUSY): the store keeps it pending and retries on its next prune. A
   * snapshot that is gone already counts as removed.
   */
  async releaseSnapshot(id: string, ctx?: ReleaseContext): Promise<void> {
    if (id.startsWith('cachemount:')) {
      const dir = id.slice('cachemount:'.length);
      // In use by a running build (another process): it stays, pending, for the next prune.
      if (!(await this.#cacheMounts.remove(dir))) throw new SolverError('SOLVER_BUSY', `cache mount ${dir} is in use`);
      return;
    }
    const snapshotter = this.#deps.snapshotter;
    const parent = (await snapshotter.stat(id).catch(() => undefined))?.parent;
    await snapshotter.remove(id, ctx === undefined ? {} : { confirm: () => ctx.stillUnused() }).catch((e: unknown) => {
      if ((e as { code?: unknown }).code !== 'SNAPSHOT_NOT_FOUND') throw e;
    });
    // The lower layers of an image or of an imported cache chain: an image source records only
    // the top `layer-<chain>`, so nothing else would ever remove them. Each goes once it has no
    // child left and the store has no claim on it; one with another child, a record or a lease
    // stays, and so does everything below it.
    const owns = ctx?.owns;
    if (owns === undefined) return;
    let next = parent;
    while (next !== undefined && next.startsWith('layer-') && !owns(next)) {
      const lower = next;
      const below = (await snapshotter.stat(lower).catch(() => undefined))?.parent;
      const removed = await snapshotter.remove(lower, { confirm: () => !owns(lower) }).then(
        () => true,
        () => false,
      );
      if (!removed) return;
      next = below;
    }
  }
}
