import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { mkdir, readdir, rm } from 'node:fs/promises';
import type { EnsuredImage, Platform } from '@kiln/runtime';
import type { SourceOp } from '@kiln/llb-core';
import { suggest } from '@kiln/llb-core';
import { SolverError } from '../errors.js';
import { syncLocalSource, type SyncLocalResult } from '../local/sync.js';
import { linkTree } from '../local/link-tree.js';
import type { LocalFilter } from '../local/walk.js';
import type { WorkerOpContext } from '../llb/worker.js';
import type { WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { Leases, commitNew, dirSize, hasSnapshot, withLeases } from './snapshots.js';
import { withFileLock } from './file-lock.js';
import { ensureLayer, layerSnapshotId } from './layer-chain.js';

/** OCI ChainID of a list of diffIDs: ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** Parses `docker-image://ref` / `local://name`. */
export function parseIdentifier(op: SourceOp): { scheme: string; rest: string } {
  const id = op.identifier ?? '';
  const i = id.indexOf('://');
  if (i < 0) throw new SolverError('SOLVER_INVALID_DEFINITION', `invalid source identifier ${JSON.stringify(id)}`);
  return { scheme: id.slice(0, i), rest: id.slice(i + 3) };
}

function platformOf(ctx: WorkerOpContext, fallback: Platform | undefined): Platform | undefined {
  const p = ctx.platform;
  if (p?.os === undefined || p.architecture === undefined) return fallback;
  return { os: p.os, architecture: p.architecture, ...(p.variant === undefined ? {} : { variant: p.variant }) } as Platform;
}

/** Options of {@link RuntimeWorker.prefetchImage}. */
export interface PrefetchImageOptions {
  readonly platform?: Platform;
  readonly resolveMode?: 'default' | 'pull' | 'local';
  /** Stops the prefetch (a layer being unpacked is discarded); the build's own FROM then does the work. */
  readonly signal?: AbortSignal;
}

/** Resolves (pulling if needed) an image; memoized per reference+platform for one worker. */
export class ImageSources {
  readonly #deps: RuntimeWorkerDeps;
  /** Resolutions by reference+platform+mode, with the signal of the caller that started each. */
  readonly #resolved = new Map<string, { readonly p: Promise<EnsuredImage>; readonly signal: AbortSignal | undefined }>();

  constructor(deps: RuntimeWorkerDeps) {
    this.#deps = deps;
  }

  resolve(op: SourceOp, ctx: WorkerOpContext): Promise<EnsuredImage> {
    const { rest } = parseIdentifier(op);
    const platform = platformOf(ctx, this.#deps.platform);
    const mode = op.attrs?.get('image.resolvemode');
    return this.#resolve(rest, platform, mode === 'pull' ? 'pull' : mode === 'local' ? 'local' : 'default', ctx.signal);
  }

  #resolve(ref: string, platform: Platform | undefined, mode: 'default' | 'pull' | 'local', signal: AbortSignal | undefined): Promise<EnsuredImage> {
    const k = `${ref}|${JSON.stringify(platform ?? null)}|${mode === 'default' ? '' : mode}`;
    const running = this.#resolved.get(k);
    if (running !== undefined) {
      if (running.signal === signal || running.signal === undefined) return running.p;
      // Started by another caller (a prefetch, ended with its build while a FROM that another
      // build shares still needs the image): its cancellation is not this caller's; redo it then.
      return running.p.catch((err: unknown) => {
        if (running.signal?.aborted !== true || signal?.aborted === true) throw err;
        return this.#resolve(ref, platform, mode, signal);
      });
    }
    const p = this.#deps.ensureImage(ref, { ...(platform === undefined ? {} : { platform }), resolveMode: mode, ...(signal === undefined ? {} : { signal }) });
    const entry = { p, signal };
    p.catch(() => {
      if (this.#resolved.get(k) === entry) this.#resolved.delete(k);
    });
    this.#resolved.set(k, entry);
    return p;
  }

  /**
   * Makes an image's layer snapshots ready ahead of the FROM that will use them: resolves the
   * image (pulling it if needed) and unpacks its layers, sharing the work with any FROM of the
   * same layers that starts meanwhile. Best effort: it never rejects (the FROM reports any
   * failure itself). The top snapshot is recorded for `du`/`prune` through `recordUsage`, so an
   * image prefetched but never used is not leaked.
   */
  async prefetch(reference: string, opts: PrefetchImageOptions = {}): Promise<void> {
    const leases = new Leases(this.#deps.leaseSnapshot);
    try {
      const img = await this.#resolve(reference, opts.platform ?? this.#deps.platform, opts.resolveMode ?? 'default', opts.signal);
      const top = await this.#unpack(img, opts.signal, () => undefined, leases);
      this.#deps.recordUsage?.({ snapshot: top.snapshot, size: top.size, description: `prefetched image ${img.ref}`, kind: 'regular' });
    } catch {
      // best effort: the FROM does (and reports) the work itself
    } finally {
      // Recorded now (a FROM of it leases the layers itself).
      leases.release();
    }
  }

  /** BuildKit's image cache key: the chain id of the rootfs (the image's content identity). */
  async cacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string> {
    const img = await this.resolve(op, ctx);
    const ids = chainIds(img.config.rootfs.diff_ids);
    return ids[ids.length - 1] ?? img.manifestDescriptor.digest;
  }

  /**
   * Unpacks the layers into snapshots named by chain id (shared by every image with that prefix).
   * Each layer snapshot is leased ({@link RuntimeWorkerDeps.leaseSnapshot}) before it is looked
   * up, until `ctx.signal` aborts: the scheduler aborts it when the last build needing this FROM
   * ends, after it recorded (and that build leased) the result. So a prune running meanwhile
   * keeps a layer found unpacked, instead of removing it between the lookup and the record.
   */
  async snapshot(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef> {
    const img = await this.resolve(op, ctx);
    return withLeases(this.#deps, ctx.signal, (leases) => this.#unpack(img, ctx.signal, ctx.status, leases));
  }

  async #unpack(img: EnsuredImage, signal: AbortSignal | undefined, status: WorkerOpContext['status'], leases: Leases): Promise<WorkerRef> {
    const diffIds = img.config.rootfs.diff_ids;
    const chain = chainIds(diffIds);
    let parent: string | undefined;
    let size = 0;
    for (const [i, layer] of img.manifest.layers.entries()) {
      const id = layerSnapshotId(chain[i] ?? layer.digest);
      const diffID = diffIds[i];
      size += layer.size;
      // Before the lookup: a prune that has not yet given the id up keeps it from now on (its
      // confirm asks the store, which sees the lease); one that did has renamed it away already,
      // so the lookup misses and the layer is unpacked again.
      leases.hold(id);
      // Joins an unpack of the same layer a prefetch, another build or a cache import started.
      await ensureLayer(this.#deps, {
        id,
        below: parent,
        source: `content ${layer.digest}`,
        open: () => this.#deps.content.readStream(layer.digest),
        ...(diffID === undefined ? {} : { expectedDiffID: diffID }),
        ...(signal === undefined ? {} : { signal }),
        onStart: () => status(layer.digest, 0, layer.size),
        onDone: () => status(layer.digest, layer.size, layer.size, true),
      });
      parent = id;
    }
    if (parent === undefined) {
      leases.hold(EMPTY_SNAPSHOT);
      parent = await emptySnapshot(this.#deps);
    }
    return { snapshot: parent, size };
  }
}

/**
 * The shared empty snapshot that scratch-based results stand on (BuildKit has no snapshot there:
 * a nil ref). It is no layer: exports and cache records leave it out.
 */
export const EMPTY_SNAPSHOT = 'scratch-empty';

/** The shared empty committed snapshot (scratch). */
export async function emptySnapshot(deps: RuntimeWorkerDeps): Promise<string> {
  const id = EMPTY_SNAPSHOT;
  if (!(await hasSnapshot(deps.snapshotter, id))) await commitNew(deps.snapshotter, id, undefined);
  return id;
}

function jsonList(v: string | undefined): string[] | undefined {
  if (v === undefined || v === '') return undefined;
  const parsed: unknown = JSON.parse(v);
  return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : undefined;
}

/**
 * The name of a local source's snapshot: its content digest and every entry's mtime. The content
 * digest (contenthash tarsum headers) leaves times out, but the snapshot's files keep them and a
 * COPY copies them, so a context whose files were only touched must not reuse the snapshot made
 * with the old times (BuildKit syncs the context with its current times every build).
 */
function localSnapshotKey(synced: SyncLocalResult): string {
  const h = createHash('sha256').update(synced.rootDigest);
  for (const e of synced.entries) h.update(`\0${e.path}\0${e.stat.mtimeMs}`);
  return h.digest('hex');
}

/**
 * Removes the local-context mirrors under `root` (see `LocalSources`), each under its sync
 * lock, and returns how many bytes they held. Their files are those of the `local-` snapshots
 * (hard links): once a prune has removed every such snapshot, the mirrors hold the last copy of
 * every context ever built, which nothing lists. The next build of a context sends it in full, as
 * after BuildKit prunes its local source records.
 */
export async function removeLocalMirrors(root: string): Promise<number> {
  const base = join(root, 'solver', 'local');
  let bytes = 0;
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (name.endsWith('.lock')) continue;
    const dir = join(base, name);
    await withFileLock(`${dir}.lock`, undefined, async () => {
      bytes += await dirSize(dir).catch(() => 0);
      await rm(dir, { recursive: true, force: true });
    });
  }
  return bytes;
}

/**
 * Local sources (`local://name`): the directory is synced incrementally into a persistent mirror
 * (`<root>/solver/local/<name>`; one sync at a time per mirror, across processes too), and the
 * result is a committed snapshot named by the BuildKit content digest of what was synced and the
 * files' mtimes, so an unchanged context reuses the previous snapshot. A new snapshot hard-links
 * the mirror's files (see {@link linkTree}): nothing is copied twice.
 */
export class LocalSources {
  readonly #deps: RuntimeWorkerDeps;
  /** Content trees of local snapshots, for checksums without re-reading files. */
  readonly trees = new Map<string, SyncLocalResult['tree']>();
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(deps: RuntimeWorkerDeps) {
    this.#deps = deps;
  }

  async snapshot(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef> {
    const { rest: name } = parseIdentifier(op);
    const dir = this.#deps.localDirs[name];
    if (dir === undefined) {
      // local("contxt") in a kiln/ts build file: name the directories the build has
      const given = Object.keys(this.#deps.localDirs);
      const near = suggest(name, given);
      throw new SolverError('SOLVER_INVALID_DEFINITION', `no local directory was given for local source ${JSON.stringify(name)}${near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`}`, {
        hint: `pass the build context (or --build-context NAME=path) for it${given.length === 0 ? '' : `; this build has ${given.map((g) => JSON.stringify(g)).join(', ')}`}`,
      });
    }
    const attrs = op.attrs;
    const filter: LocalFilter = {
      ...(jsonList(attrs?.get('local.includepattern')) === undefined ? {} : { includePatterns: jsonList(attrs?.get('local.includepattern')) ?? [] }),
      ...(jsonList(attrs?.get('local.excludepatterns')) === undefined ? {} : { excludePatterns: jsonList(attrs?.get('local.excludepatterns')) ?? [] }),
      ...(jsonList(attrs?.get('local.followpaths')) === undefined ? {} : { followPaths: jsonList(attrs?.get('local.followpaths')) ?? [] }),
    };
    const filterKey = createHash('sha256').update(`${dir}\0${JSON.stringify(filter)}`).digest('hex').slice(0, 24);
    const base = join(this.#deps.root, 'solver', 'local', `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${filterKey}`);
    // One sync per mirror at a time (concurrent builds of the same context share the mirror).
    const prev = this.#locks.get(base) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(async () => {
      await mkdir(join(base, '..'), { recursive: true });
      return withFileLock(`${base}.lock`, ctx.signal, () => withLeases(this.#deps, ctx.signal, (leases) => this.#sync(ctx, dir, filter, base, leases)));
    });
    this.#locks.set(base, run);
    return run;
  }

  async #sync(ctx: WorkerOpContext, dir: string, filter: LocalFilter, base: string, leases: Leases): Promise<WorkerRef> {
    ctx.status('transferring context', 0);
    const synced = await syncLocalSource({ src: dir, dest: join(base, 'mirror'), statePath: join(base, 'state.json'), filter, signal: ctx.signal });
    ctx.status('transferring context', synced.stats.bytes, undefined, true);
    const id = `local-${localSnapshotKey(synced).slice(0, 48)}`;
    const s = this.#deps.snapshotter;
    leases.hold(id); // before the lookup, as for image layers
    if (!(await hasSnapshot(s, id))) {
      // The snapshot hard-links the mirror's files (the mirror never changes an inode in place):
      // no file is copied, and it is one plain directory, so a COPY from it can link again.
      await commitNew(s, id, ctx.signal, (path) => linkTree(join(base, 'mirror'), path, synced.entries, ctx.signal));
    }
    this.trees.set(id, synced.tree);
    return { snapshot: id, size: synced.stats.bytes };
  }
}
