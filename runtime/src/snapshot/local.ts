import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkerError, throwIfAborted } from '../api/errors.js';
import { processAlive } from '../api/process-alive.js';
import { ownPidNamespace, ownProcessStart } from './process-start.js';
import type { Mount, MountedSnapshot, SnapshotInfo, SnapshotKind, SnapshotOptions, SnapshotRemoveOptions, Snapshotter } from '../api/snapshot.js';
import type { DiffOptions, LayerDescriptor } from '../api/layer.js';
import { changes } from '../layer/changes.js';
import { writeLayer } from '../layer/export.js';
import { mountAt, mountsUnder, unmount } from './mount.js';
import { warmMountHelper } from './mount-helper.js';
import { commonBase, diffStacks, mergeStacks, type StackLayer } from './layer-stack.js';
import { writeTreeDiff } from './tree-diff.js';

const execFileP = promisify(execFile);

/** Stored form of a snapshot, `<root>/snapshots/<dir>/meta.json`. */
interface SnapshotMeta extends SnapshotInfo {
  /** Directory name under `<root>/snapshots`. */
  readonly dir: string;
  /**
   * Layer directories (relative to `<root>/snapshots`, topmost first) a child stacks on, for a
   * committed snapshot: its own `fs` plus its parent's chain, or its `flat` copy once flattened.
   */
  readonly chain: readonly string[];
  /**
   * The own layer dir (relative) when it is another snapshot's: a merge or diff result stacks the
   * layer dirs of its inputs instead of copying them. Default `<dir>/fs`.
   */
  readonly layer?: string;
  /** The snapshot owning {@link SnapshotMeta.layer}; it is not removed while this one exists. */
  readonly layerOwner?: string;
  /** An intermediate snapshot of a merge: removed together with its last child. */
  readonly mergePart?: boolean;
  /** Its own layer dir holds whiteouts that matter with nothing below (a DiffOp result's deletions). */
  readonly whiteouts?: boolean;
  /**
   * A merge or diff result with nothing above its base: its own empty layer dir stands in for
   * no layer at all, so merges stacking it leave it out (see {@link LocalSnapshotter.merge}).
   */
  readonly filler?: boolean;
  /**
   * The process that created it (prepare, view, or a merge's stacking; a commit keeps its active
   * snapshot's): an active snapshot is private to that process, so once it is gone (SIGKILL) the
   * snapshot is garbage (see {@link LocalSnapshotter.orphans}). Absent in metas written before.
   */
  readonly pid?: number;
  /**
   * When that process started (see processStart): tells it from a later process given the same
   * pid (a daemon restarted as pid 1 of its container sees its previous run's snapshots as gone).
   */
  readonly pidStart?: string;
  /**
   * The pid namespace of that process (see ownPidNamespace): a process of another namespace (a
   * kiln in another container sharing the root) cannot tell whether that pid still runs, so it
   * keeps the snapshot.
   */
  readonly pidNs?: string;
}

/** Options for {@link LocalSnapshotter}. */
export interface LocalSnapshotterOptions {
  /** The kiln root; snapshots live in `<root>/snapshots`, temporary mount points in `<root>/mounts`. */
  readonly root: string;
  /** Force a driver instead of probing overlayfs once. */
  readonly driver?: 'overlay' | 'copy';
  /**
   * Mount writable overlays with `volatile` (Linux 5.10+): unmounting one then does not sync the
   * whole filesystem under the snapshots (every exec step unmounts its rootfs overlay when its
   * container ends), and fsync inside RUN steps is a no-op. Opt-in (this option, or
   * KILN_OVERLAY_VOLATILE=1 in the environment, where a background probe mount checks the kernel
   * accepts it): that sync is what makes a committed snapshot's data durable before its cache
   * record is, so without it a power loss can leave cache entries with lost file contents.
   */
  readonly volatile?: boolean;
  /** Flatten a committed chain deeper than this many layer dirs (overlay allows ~500; option length is the tighter limit). */
  readonly maxDepth?: number;
}

/** What a diff needs to know about a snapshot; see {@link LocalSnapshotter.diffSource}. */
export type DiffSource =
  | {
      readonly driver: 'overlay';
      readonly upper: string;
      readonly lowers: readonly string[];
      /** Without lowers: the layer's whiteouts are changes too (a DiffOp result's deletions). */
      readonly whiteoutsAtBottom?: boolean;
    }
  | { readonly driver: 'copy'; readonly dir: string; readonly parentDir: string | undefined };

/** Options of {@link LocalSnapshotter.orphans} and {@link LocalSnapshotter.removeOrphans}. */
export interface OrphanOptions {
  /**
   * Committed snapshots that may be orphans: ids of kinds only a running process holds (an op
   * result not recorded yet, a failed step kept for a debugger). Others are kept whatever else
   * holds them (default: none may be). Active snapshots and views are always private to the
   * process that made them.
   */
  readonly transient?: (id: string) => boolean;
  /** Snapshots something outside the snapshotter owns (cache records): kept, with what they stack on. */
  readonly owned?: (id: string) => boolean;
  /** A snapshot whose meta names no creator process is an orphan only once this old (default one hour). */
  readonly unknownCreatorAgeMs?: number;
}

/** A snapshot {@link LocalSnapshotter.orphans} found. */
export interface OrphanSnapshot extends SnapshotInfo {
  /** The process that created it (gone by now), when its meta says. */
  readonly pid: number | undefined;
}

/** An always-empty dir (relative to the snapshots root) under a single read-only layer that may hold whiteouts. */
const EMPTY_LOWER = 'empty-lower';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** The by-id name of a snapshot whose removal started (not a valid id: lookups never see it). */
const REMOVING = '.removing-';

/** The directory a trash link points at, or undefined when there is no such link. */
function trashDir(trash: string): string | undefined {
  try {
    return readlinkSync(trash).replace(/^\.\.\//, '');
  } catch {
    return undefined;
  }
}

/** mount(2) data is one page; keep lowerdir well below it. */
const MAX_OPTION_BYTES = 3000;

/**
 * Overlayfs snapshots on the local disk, with a copying fallback when overlay cannot mount.
 *
 * Layout: `<root>/snapshots/by-id/<id>` is a symlink to the snapshot's directory `<root>/snapshots/<dir>`
 * (8 random hex chars, keeping overlay's `lowerdir=` short), which holds `meta.json`, `fs/` (the
 * layer dir: a committed layer, or the upper dir of an active snapshot) and `work/` (overlay workdir).
 * Metadata is written to a temp file and renamed into place; creating the id symlink is the atomic,
 * exclusive step that makes a snapshot exist, so two processes cannot create the same id.
 */
export class LocalSnapshotter implements Snapshotter {
  readonly #root: string;
  readonly #snapRoot: string;
  readonly #byId: string;
  readonly #mountRoot: string;
  readonly #maxDepth: number;
  #driver: 'overlay' | 'copy' | undefined;
  readonly #volatileOpt: boolean | undefined;
  /** Whether writable overlay mounts get `volatile` (see LocalSnapshotterOptions.volatile). */
  #volatile = false;
  #volatileProbe: Promise<void> | undefined;
  /** Metas of committed snapshots by directory (see #load). */
  readonly #metas = new Map<string, SnapshotMeta>();
  /** Whether a layer dir has a skeleton (see #withSkeletons); a committed layer never changes. */
  readonly #skeletons = new Map<string, boolean>();
  #ready: Promise<void> | undefined;

  constructor(opts: LocalSnapshotterOptions) {
    this.#root = opts.root;
    this.#snapRoot = join(opts.root, 'snapshots');
    this.#byId = join(this.#snapRoot, 'by-id');
    this.#mountRoot = join(opts.root, 'mounts');
    this.#maxDepth = opts.maxDepth ?? 64;
    this.#driver = opts.driver;
    this.#volatileOpt = opts.volatile;
  }

  /**
   * Decides whether writable overlays are mounted `volatile`, without holding up init: a probe
   * mount runs in the background, mounts made before it answers are plain. What volatile saves:
   * the kernel syncs the upper filesystem (all of its dirty data, other processes' too) when a
   * writable overlay goes away, 2-3 ms per exec step here and more while others write. What it
   * costs: that sync is what puts a step's files on disk before its snapshot is committed and
   * cached; a killed process loses nothing (the page cache stays), a power loss can. Hence
   * opt-in, like eatmydata. The same upper and work directories cannot be mounted again after a
   * volatile mount; {@link LocalSnapshotter.mounts} clears that marker of an active snapshot.
   */
  #probeVolatile(): void {
    // Off unless asked for: KILN_OVERLAY_VOLATILE=1 probes the kernel and uses it if accepted.
    const forced = this.#volatileOpt ?? (process.env['KILN_OVERLAY_VOLATILE'] === '1' ? undefined : false);
    if (forced !== undefined) {
      this.#volatile = forced;
      return;
    }
    this.#volatileProbe ??= probeOverlay(this.#snapRoot, ['volatile']).then(
      (ok) => {
        this.#volatile = ok;
      },
      () => undefined,
    );
  }

  /** Resolves once it is known whether writable overlays are mounted `volatile` (tests, diagnostics). */
  async volatileMounts(): Promise<boolean> {
    await this.init();
    await this.#volatileProbe;
    return this.#volatile;
  }

  /** The driver in use; call {@link LocalSnapshotter.init} (or any method) first when not forced. */
  get driver(): 'overlay' | 'copy' {
    return this.#driver ?? 'copy';
  }

  /** Creates the directories and probes overlayfs once (idempotent). */
  init(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#byId, { recursive: true });
      await mkdir(this.#mountRoot, { recursive: true });
      await mkdir(this.#abs(EMPTY_LOWER), { recursive: true, mode: 0o755 });
      this.#driver ??= (await probeOverlay(this.#snapRoot)) ? 'overlay' : 'copy';
      // Start the mount helper now, off the critical path of the first mount (its start-up is a
      // process spawn: 20-200 ms under load).
      if (this.#driver === 'overlay') {
        warmMountHelper();
        this.#probeVolatile();
      }
    })();
    return this.#ready;
  }

  async prepare(id: string, parent?: string, opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    await this.init();
    throwIfAborted(opts.signal);
    const p = parent === undefined ? undefined : await this.#committed(parent);
    const dir = await this.#newDir();
    try {
      if (this.driver === 'copy' && p !== undefined) {
        await copyTree(this.#abs(p.chain[0] as string), join(this.#snapRoot, dir, 'fs'), opts.signal);
      }
      return await this.#create(id, dir, 'active', p, opts.labels ?? {});
    } catch (e) {
      await rm(join(this.#snapRoot, dir), { recursive: true, force: true });
      throw e;
    }
  }

  async view(id: string, parent: string, opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    await this.init();
    const p = await this.#committed(parent);
    const dir = await this.#newDir();
    try {
      return await this.#create(id, dir, 'view', p, opts.labels ?? {});
    } catch (e) {
      await rm(join(this.#snapRoot, dir), { recursive: true, force: true });
      throw e;
    }
  }

  async commit(id: string, activeId: string, opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    await this.init();
    assertId(id);
    const a = await this.#load(activeId);
    if (a.kind !== 'active') throw new WorkerError('SNAPSHOT_STATE', `snapshot ${activeId} is ${a.kind}, not active`);
    const own = `${a.dir}/fs`;
    const parentChain = a.parent === undefined ? [] : (await this.#committed(a.parent)).chain;
    let chain: string[] = this.driver === 'copy' ? [own] : [own, ...parentChain];
    if (chain.length > this.#maxDepth || this.#lowerOption(chain).length > MAX_OPTION_BYTES) {
      chain = [await this.#flatten(a.dir, chain, opts.signal)];
    }
    const meta: SnapshotMeta = {
      ...a,
      id,
      kind: 'committed',
      labels: { ...a.labels, ...(opts.labels ?? {}) },
      chain,
    };
    await this.#writeMeta(meta);
    try {
      symlinkSync(`../${a.dir}`, join(this.#byId, id));
    } catch (e) {
      await this.#writeMeta(a);
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new WorkerError('SNAPSHOT_EXISTS', `snapshot ${id} already exists`);
      throw e;
    }
    try {
      unlinkSync(join(this.#byId, activeId));
    } catch {
      // already gone
    }
    // The overlay workdir (a couple of empty dirs once unmounted) stays until the snapshot is
    // removed: deleting it here cost 3-4 metadata operations on every step.
    return publicInfo(meta);
  }

  async mounts(id: string): Promise<readonly Mount[]> {
    await this.init();
    const m = await this.#load(id);
    switch (m.kind) {
      case 'committed':
        return [this.#readOnly(m.chain, m.layer !== undefined || m.whiteouts === true)];
      case 'view': {
        const p = await this.#committed(m.parent ?? '');
        return [this.#readOnly(p.chain, p.layer !== undefined || p.whiteouts === true)];
      }
      case 'active': {
        const upper = join(this.#snapRoot, m.dir, 'fs');
        if (this.driver === 'copy' || m.parent === undefined) return [{ type: 'bind', source: upper, options: ['rbind', 'rw'] }];
        const lowers = (await this.#committed(m.parent)).chain;
        // A volatile mount of these directories before (a look at the snapshot on the host, then a
        // container on it) leaves a marker that refuses the next mount: the active snapshot is
        // intact (the machine did not crash, or its process would not hold it), so it goes.
        const work = join(this.#snapRoot, m.dir, 'work');
        rmSync(join(work, 'work', 'incompat'), { recursive: true, force: true });
        return [
          {
            type: 'overlay',
            source: 'overlay',
            options: [this.#lowerOption(lowers), `upperdir=${upper}`, `workdir=${work}`, ...(this.#volatile ? ['volatile'] : [])],
          },
        ];
      }
    }
  }

  async mount(id: string, signal?: AbortSignal): Promise<MountedSnapshot> {
    const ms = await this.mounts(id);
    throwIfAborted(signal);
    const only = ms[0];
    if (ms.length === 1 && only?.type === 'bind' && only.options.includes('rw')) {
      // A writable snapshot without parent is its own directory: a bind mount of it would show
      // exactly the same thing (unpacking a base layer, a file op on scratch), so none is made.
      return { path: only.source, release: async () => undefined };
    }
    // The owner's pid in the name: recoverMounts() of a later process can tell its mounts from live ones.
    const target = await mkdtemp(join(this.#mountRoot, `m-${process.pid}-`));
    const done: string[] = [];
    try {
      for (const m of ms) {
        await mountAt(m, target);
        done.push(target);
      }
      throwIfAborted(signal);
    } catch (e) {
      for (const t of done.reverse()) await unmount(t);
      await rmdir(target).catch(() => undefined);
      throw e;
    }
    let released = false;
    return {
      path: target,
      release: async () => {
        if (released) return;
        released = true;
        for (const t of done.reverse()) await unmount(t);
        await rmdir(target).catch(() => undefined);
      },
    };
  }

  async stat(id: string): Promise<SnapshotInfo> {
    await this.init();
    return publicInfo(await this.#load(id));
  }

  async list(): Promise<readonly SnapshotInfo[]> {
    await this.init();
    const out: SnapshotInfo[] = [];
    for (const id of (await readdir(this.#byId)).sort()) {
      try {
        out.push(publicInfo(await this.#load(id)));
      } catch {
        // A half-created or half-removed entry: not a snapshot.
      }
    }
    return out;
  }

  /**
   * Removes a snapshot (see {@link Snapshotter.remove}). `confirm` is asked synchronously right
   * before the id is given up, after every await of the removal: when it says false (the cache
   * store's `stillUnused()`: a build recorded or leased the snapshot meanwhile) nothing is removed
   * and it rejects with `SNAPSHOT_STATE`.
   */
  async remove(id: string, opts: SnapshotRemoveOptions = {}): Promise<void> {
    await this.init();
    assertId(id);
    // A removal that failed part-way (EBUSY: something mounted below; a killed process) left its
    // trash link: finish that one. A snapshot created since under the same id is not touched.
    const trash = join(this.#byId, `${REMOVING}${id}`);
    const leftover = trashDir(trash);
    if (leftover !== undefined) {
      await this.#finishRemoval(trash, leftover);
      return;
    }
    const m = await this.#load(id);
    if (m.kind === 'committed') {
      const users = await this.#users(id);
      if (users.length > 0) {
        throw new WorkerError('SNAPSHOT_STATE', `snapshot ${id} has ${users.length} child snapshot(s)`, {
          hint: `remove ${users.join(', ')} first`,
        });
      }
    }
    // No await from here to the rename: what confirm() answers still holds when the id goes.
    if (opts.confirm?.() === false) {
      throw new WorkerError('SNAPSHOT_STATE', `snapshot ${id} is in use again; not removed`, { hint: 'a later prune removes it once nothing uses it' });
    }
    // The id goes first, in one rename: from then on no lookup finds a half-removed snapshot (a
    // FROM reusing `layer-<chain>` would stack on missing files), and a new snapshot may take the
    // id. The trash link keeps the directory findable when deleting its files fails part-way.
    renameSync(join(this.#byId, id), trash);
    await this.#finishRemoval(trash, m.dir);
    // Intermediate snapshots of a merge go with their last user.
    if (m.parent !== undefined) {
      const p = await this.#load(m.parent).catch(() => undefined);
      if (p?.mergePart === true && (await this.#users(p.id)).length === 0) await this.remove(p.id).catch(() => undefined);
    }
  }

  /** Deletes the directory of a snapshot being removed, then its trash link. */
  async #finishRemoval(trash: string, dir: string): Promise<void> {
    await rm(join(this.#snapRoot, dir), { recursive: true, force: true });
    await unlink(trash);
    this.#metas.delete(dir);
    this.#skeletons.delete(`${dir}/fs`);
  }

  /** Snapshots that stack on `id`: its children, and merge/diff results that reuse its layer dir. */
  async #users(id: string): Promise<string[]> {
    const out: string[] = [];
    for (const name of await readdir(this.#byId)) {
      const m = await this.#load(name).catch(() => undefined);
      if (m !== undefined && (m.parent === id || m.layerOwner === id)) out.push(m.id);
    }
    return out;
  }

  /**
   * Creates committed snapshot `id` holding `parents` merged in order (BuildKit's MergeOp): as if
   * the layers of every parent were applied on top of one another, so later parents win and their
   * deletions (whiteouts, opaque directories) hide what earlier parents have. With overlayfs
   * nothing is copied: the parents' layer dirs are stacked (a shared base only once, at its
   * topmost place), new snapshots referencing them are created above the longest common base,
   * and each keeps its layer's labels (`kiln.diffID`) so exports reuse the layer blobs. The
   * parents cannot be removed while the result exists.
   *
   * Resolves `undefined` when this cannot be done without copying (the copy driver, a flattened
   * parent, or a stack too deep for one overlay mount): the caller copies instead.
   */
  async merge(id: string, parents: readonly string[], opts: SnapshotOptions = {}): Promise<SnapshotInfo | undefined> {
    await this.init();
    assertId(id);
    if (this.driver === 'copy') return undefined;
    const stacks: StackLayer[][] = [];
    for (const p of parents) {
      const st = await this.#stack(p);
      if (st === undefined) return undefined;
      stacks.push(st);
    }
    const merged = mergeStacks(stacks);
    if (!this.#stackable(merged)) return undefined;
    const base = commonBase(merged, stacks);
    return this.#stackLayers(id, merged.slice(0, merged.length - (base?.length ?? 0)), base?.snapshot, opts);
  }

  /**
   * Creates committed snapshot `id` holding what `upper` adds on top of `lower` (BuildKit's
   * DiffOp; `lower` undefined is scratch, which makes `id` equal to `upper`): the layers of
   * `upper` above `lower`, stacked without copying. Resolves `undefined` when `lower` is not the
   * base of `upper` (or on the copy driver), which would need a file-by-file comparison.
   */
  async diffLayers(id: string, lower: string | undefined, upper: string, opts: SnapshotOptions = {}): Promise<SnapshotInfo | undefined> {
    await this.init();
    assertId(id);
    if (this.driver === 'copy') return undefined;
    const up = await this.#stack(upper);
    const low = lower === undefined ? [] : await this.#stack(lower);
    if (up === undefined || low === undefined) return undefined;
    const layers = diffStacks(low, up);
    if (layers === undefined || !this.#stackable(layers)) return undefined;
    return this.#stackLayers(id, layers, undefined, opts);
  }

  /**
   * Creates committed snapshot `id` holding the changes that turn `lower` into `upper` (BuildKit's
   * DiffOp for any two snapshots; `undefined` is scratch): files `upper` adds or changes are
   * copied into a new layer, and every path of `lower` that `upper` lacks becomes an overlay
   * whiteout in it. Mounted alone the result shows the added files only; merged on top of
   * `lower` it gives `upper`, and its exported layer carries the deletions as OCI whiteouts.
   * The copy driver cannot hold whiteouts: a diff with deletions fails there (`SNAPSHOT_STATE`).
   */
  async diffTrees(id: string, lower: string | undefined, upper: string | undefined, opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    await this.init();
    assertId(id);
    const tmp = `${id.slice(0, 150)}.diff-${randomBytes(4).toString('hex')}`;
    const active = await this.prepare(tmp, undefined, opts);
    try {
      const a = await this.#load(active.id);
      const low = lower === undefined ? undefined : await this.mount(lower, opts.signal);
      try {
        const up = upper === undefined ? undefined : await this.mount(upper, opts.signal);
        try {
          const empty = this.#abs(EMPTY_LOWER);
          const written = await writeTreeDiff(low?.path ?? empty, up?.path ?? empty, this.#abs(ownLayer(a)), {
            whiteouts: this.driver === 'overlay',
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          // Overlayfs hides whiteouts only in directories it merges, so each directory holding
          // some gets an empty twin in a skeleton layer mounted right below this one.
          for (const d of written.whiteoutDirs) await mkdir(join(this.#snapRoot, a.dir, 'skel', d), { recursive: true, mode: 0o755 });
        } finally {
          await up?.release();
        }
      } finally {
        await low?.release();
      }
      await this.#writeMeta({ ...a, whiteouts: true });
      return await this.commit(id, tmp, opts);
    } catch (e) {
      await this.remove(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** The layer stack (top-first) of committed `id`; undefined if any part was flattened. */
  async #stack(id: string): Promise<StackLayer[] | undefined> {
    const out: StackLayer[] = [];
    let cur: SnapshotMeta | undefined = await this.#committed(id);
    while (cur !== undefined) {
      const own = ownLayer(cur);
      if (cur.chain[0] !== own) return undefined; // flattened: its deletions are gone
      if (!(await this.#nothing(cur, own))) out.push({ dir: own, owner: cur.layerOwner ?? cur.id, snapshot: cur.id, labels: cur.labels });
      cur = cur.parent === undefined ? undefined : await this.#committed(cur.parent);
    }
    return out;
  }

  /**
   * Whether committed `m`'s own layer `own` stands for no layer, so a stack leaves it out: an
   * empty dir that is scratch (no parent and not an image's layer: the shared empty snapshot, an
   * empty DiffOp result) or a merge's filler. Every other empty layer is a layer (an image's empty
   * layer, labelled with its diffID; a step that changed no file): BuildKit's merge keeps each
   * input's whole layer chain, and a plain export of the input keeps it too.
   */
  async #nothing(m: SnapshotMeta, own: string): Promise<boolean> {
    const scratch = m.filler === true || (m.parent === undefined && m.labels['kiln.diffID'] === undefined);
    return scratch && (await readdir(this.#abs(own))).length === 0;
  }

  #stackable(layers: readonly StackLayer[]): boolean {
    return layers.length <= this.#maxDepth && this.#lowerOption(layers.map((l) => l.dir)).length <= MAX_OPTION_BYTES;
  }

  /** Commits `layers` (top-first) as snapshots referencing their dirs, on top of `base`; the top one is `id`. */
  async #stackLayers(id: string, layers: readonly StackLayer[], base: string | undefined, opts: SnapshotOptions): Promise<SnapshotInfo> {
    let parent = base === undefined ? undefined : await this.#committed(base);
    if (layers.length === 0) {
      // Nothing above the base: a snapshot with an empty layer of its own on top of it.
      const tmp = `${id.slice(0, 150)}.empty-${randomBytes(4).toString('hex')}`;
      await this.prepare(tmp, parent?.id, opts);
      await this.#writeMeta({ ...(await this.#load(tmp)), filler: true });
      return this.commit(id, tmp, opts);
    }
    const created: string[] = [];
    try {
      for (let j = layers.length - 1; j >= 0; j--) {
        const l = layers[j] as StackLayer;
        const top = j === 0;
        const sid = top ? id : `${id.slice(0, 150)}.part-${randomBytes(4).toString('hex')}`;
        const dir = await this.#newDir(false);
        const meta: SnapshotMeta = {
          id: sid,
          kind: 'committed',
          parent: parent?.id,
          depth: (parent?.depth ?? 0) + 1,
          createdAt: new Date().toISOString(),
          labels: top ? { ...l.labels, ...(opts.labels ?? {}) } : l.labels,
          dir,
          chain: [l.dir, ...(parent?.chain ?? [])],
          layer: l.dir,
          layerOwner: l.owner,
          ...(top ? {} : { mergePart: true }),
          ...creator(),
        };
        await this.#writeMeta(meta);
        try {
          await symlink(`../${dir}`, join(this.#byId, sid));
        } catch (e) {
          await rm(join(this.#snapRoot, dir), { recursive: true, force: true });
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new WorkerError('SNAPSHOT_EXISTS', `snapshot ${sid} already exists`);
          throw e;
        }
        created.push(sid);
        parent = meta;
      }
      return publicInfo(parent as SnapshotMeta);
    } catch (e) {
      for (const sid of created.reverse()) {
        const m = await this.#load(sid).catch(() => undefined);
        await unlink(join(this.#byId, sid)).catch(() => undefined);
        if (m !== undefined) await rm(join(this.#snapRoot, m.dir), { recursive: true, force: true });
      }
      throw e;
    }
  }

  async diff(id: string, opts: DiffOptions): Promise<LayerDescriptor> {
    const src = await this.diffSource(id);
    return writeLayer(changes(src, this.#mountRoot, opts.signal), opts);
  }

  /**
   * Disk used by the layer directory of `id` alone (not its parents): allocated bytes and inodes,
   * hardlinked files counted once. For `kiln du`; walks the tree, so it costs one lstat per entry.
   */
  async usage(id: string): Promise<{ readonly size: number; readonly inodes: number }> {
    await this.init();
    const m = await this.#load(id);
    const seen = new Set<number>();
    let size = 0;
    let inodes = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const p = join(dir, name);
        const st = await lstat(p).catch(() => undefined);
        if (st === undefined) continue;
        if (st.nlink > 1 && !st.isDirectory()) {
          if (seen.has(st.ino)) continue;
          seen.add(st.ino);
        }
        size += st.blocks * 512;
        inodes += 1;
        if (st.isDirectory()) await walk(p);
      }
    };
    await walk(join(this.#snapRoot, m.dir));
    return { size, inodes };
  }

  /**
   * Unmounts and removes the mount points under `<root>/mounts` of kiln processes that no longer
   * run (killed with SIGKILL mid-build), leaving those of live processes alone, so it is safe while
   * other builds run. Returns how many mounts it removed.
   */
  async recoverMounts(): Promise<number> {
    await this.init();
    const deadOwner = (name: string): boolean => {
      const pid = Number(/^(?:m|flat|diff-[pm])-(\d+)-/.exec(name)?.[1] ?? Number.NaN);
      return !Number.isNaN(pid) && pid !== process.pid && !processAlive(pid);
    };
    let n = 0;
    for (const mp of (await mountsUnder(this.#mountRoot)).sort((a, b) => b.length - a.length)) {
      if (!deadOwner(mp.slice(this.#mountRoot.length + 1).split('/')[0] ?? '')) continue;
      await unmount(mp);
      n += 1;
    }
    for (const name of await readdir(this.#mountRoot)) if (deadOwner(name)) await rmdir(join(this.#mountRoot, name)).catch(() => undefined);
    return n;
  }

  /**
   * Cleans up after a crashed process: unmounts and removes leftover mount points under
   * `<root>/mounts` and overlay probes, drops ids whose directory is gone, and removes snapshot
   * directories no id points to once they are older than `olderThanMs` (default one hour, so a
   * snapshot another process is creating right now is safe). Returns what it removed.
   */
  async recover(opts: { readonly olderThanMs?: number } = {}): Promise<{ mounts: number; ids: number; dirs: number }> {
    await this.init();
    const result = { mounts: 0, ids: 0, dirs: 0 };
    for (const mp of (await mountsUnder(this.#mountRoot)).sort((a, b) => b.length - a.length)) {
      await unmount(mp);
      result.mounts += 1;
    }
    for (const name of await readdir(this.#mountRoot)) await rmdir(join(this.#mountRoot, name)).catch(() => undefined);
    const referenced = new Set<string>();
    for (const id of await readdir(this.#byId)) {
      if (id.startsWith(REMOVING)) {
        // a removal a dead process left half done: finish it (or leave it for the next remove)
        const dir = trashDir(join(this.#byId, id));
        if (dir !== undefined) await this.#finishRemoval(join(this.#byId, id), dir).catch(() => referenced.add(dir));
        continue;
      }
      try {
        const m = await this.#load(id);
        referenced.add(m.dir);
      } catch {
        await unlink(join(this.#byId, id)).catch(() => undefined);
        result.ids += 1;
      }
    }
    const cutoff = Date.now() - (opts.olderThanMs ?? 3_600_000);
    for (const name of await readdir(this.#snapRoot)) {
      if (name === 'by-id' || name === EMPTY_LOWER || referenced.has(name)) continue;
      const dir = join(this.#snapRoot, name);
      const st = await lstat(dir).catch(() => undefined);
      if (st === undefined || !st.isDirectory() || st.mtimeMs > cutoff) continue;
      for (const mp of await mountsUnder(dir)) await unmount(mp);
      await rm(dir, { recursive: true, force: true });
      result.dirs += 1;
    }
    return result;
  }

  /**
   * Snapshots nothing will ever use again, left by kiln processes that died (SIGKILL) mid-build:
   * every active snapshot or view whose creator process is gone (a RUN's writable rootfs, a
   * scratch layer, a debug container's root), and committed ones of the `transient` kinds whose
   * creator is gone and that nothing `owned` stacks on. Kept: anything made by a live process
   * (this one included), anything `owned`, and every parent and layer owner of a kept snapshot.
   * A snapshot whose meta names no creator counts as gone once `unknownCreatorAgeMs` old. While
   * some id's meta cannot be read, no committed snapshot is an orphan (that one may stack on it).
   * Reads each snapshot's meta (no directory walk); the result is ordered so that removing in
   * order never removes a snapshot before another that stacks on it.
   */
  async orphans(opts: OrphanOptions = {}): Promise<OrphanSnapshot[]> {
    await this.init();
    const metas = new Map<string, SnapshotMeta>();
    // An id whose meta cannot be read (torn by a crash, an I/O error, a commit rewriting it right
    // now) may stack on any committed snapshot: then only active snapshots and views (nothing
    // stacks on those) may go this time.
    let unreadable = false;
    for (const id of readdirSync(this.#byId)) {
      if (id.startsWith(REMOVING)) continue;
      const m = await this.#load(id).catch(() => undefined);
      if (m !== undefined) metas.set(id, m);
      else if (existsSync(join(this.#byId, id))) unreadable = true; // gone meanwhile, or a link to nothing: no user of anything
    }
    const creatorGone = this.#creatorGone(opts);
    const candidates = new Set<string>();
    for (const m of metas.values()) {
      const mayGo = m.kind !== 'committed' || (!unreadable && opts.transient?.(m.id) === true);
      if (mayGo && opts.owned?.(m.id) !== true && creatorGone(m)) candidates.add(m.id);
    }
    if (candidates.size === 0) return [];
    // What a kept snapshot stacks on stays, transitively.
    const stack = [...metas.keys()].filter((id) => !candidates.has(id));
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      const m = metas.get(id);
      for (const dep of [m?.parent, m?.layerOwner]) {
        if (dep !== undefined && candidates.delete(dep)) stack.push(dep);
      }
    }
    // Users first: a snapshot goes after every candidate stacking on it.
    const users = new Map<string, number>();
    for (const id of candidates) {
      const m = metas.get(id);
      for (const dep of new Set([m?.parent, m?.layerOwner])) if (dep !== undefined && candidates.has(dep)) users.set(dep, (users.get(dep) ?? 0) + 1);
    }
    const out: OrphanSnapshot[] = [];
    const ready = [...candidates].filter((id) => (users.get(id) ?? 0) === 0).sort();
    for (let id = ready.shift(); id !== undefined; id = ready.shift()) {
      const m = metas.get(id) as SnapshotMeta;
      out.push({ ...publicInfo(m), pid: m.pid });
      for (const dep of new Set([m.parent, m.layerOwner])) {
        if (dep === undefined || !candidates.has(dep)) continue;
        const n = (users.get(dep) ?? 0) - 1;
        users.set(dep, n);
        if (n === 0) ready.push(dep);
      }
    }
    return out;
  }

  /**
   * Removes the {@link LocalSnapshotter.orphans} (call it only while no other process can record
   * or lease them: kiln holds its root's prune lock with no other build running). Returns those
   * removed; one that cannot be removed (files busy) is skipped, left for the next sweep. Then
   * finishes removals a killed process left half done (see #finishDeadRemovals).
   */
  async removeOrphans(opts: OrphanOptions = {}): Promise<OrphanSnapshot[]> {
    const removed: OrphanSnapshot[] = [];
    for (const o of await this.orphans(opts)) {
      try {
        await this.remove(o.id);
      } catch (e) {
        // An intermediate merge snapshot went with its last user already.
        if ((e as { code?: unknown }).code !== 'SNAPSHOT_NOT_FOUND') continue;
      }
      removed.push(o);
    }
    await this.#finishDeadRemovals(opts);
    return removed;
  }

  /** Whether the process that created a snapshot is gone (see {@link OrphanOptions}); asks each pid once. */
  #creatorGone(opts: OrphanOptions): (m: SnapshotMeta) => boolean {
    const cutoff = Date.now() - (opts.unknownCreatorAgeMs ?? 3_600_000);
    const alive = new Map<number, boolean>();
    const own = ownProcessStart();
    const ns = ownPidNamespace();
    return (m) => {
      if (m.pid === undefined) return Date.parse(m.createdAt) < cutoff;
      // Made in another pid namespace (or this one's unknown): its pid means nothing here.
      if (m.pidNs !== undefined && m.pidNs !== ns) return false;
      // This pid is this process's now: a snapshot of another start made in this namespace was
      // made by an earlier process that had it (and is gone, or this one could not have it).
      if (m.pid === process.pid) return m.pidNs !== undefined && m.pidStart !== undefined && own !== undefined && m.pidStart !== own;
      let a = alive.get(m.pid);
      if (a === undefined) alive.set(m.pid, (a = processAlive(m.pid)));
      // A live pid keeps the snapshot even when that process started at another time than the
      // meta says (a pid reused: kept too long, never removed under a live creator). Another
      // process's start read through /proc is not compared: a time namespace shifts it.
      return !a;
    };
  }

  /**
   * Finishes removals a killed process left half done (a sweep or prune SIGKILLed mid-way: the id
   * already renamed to its trash link, nothing finds the snapshot, its files partly deleted), which
   * otherwise stay until the same id is removed again (never, for the random ids of op results).
   * One goes when its creator is gone, or, with its meta already deleted, once its directory has
   * not changed for `unknownCreatorAgeMs`. A live process's own removal in progress is left alone.
   */
  async #finishDeadRemovals(opts: OrphanOptions): Promise<void> {
    const creatorGone = this.#creatorGone(opts);
    const cutoff = Date.now() - (opts.unknownCreatorAgeMs ?? 3_600_000);
    for (const name of readdirSync(this.#byId)) {
      if (!name.startsWith(REMOVING)) continue;
      const trash = join(this.#byId, name);
      const dir = trashDir(trash);
      if (dir === undefined) continue;
      let finish: boolean;
      try {
        finish = creatorGone(JSON.parse(readFileSync(join(this.#snapRoot, dir, 'meta.json'), 'utf8')) as SnapshotMeta);
      } catch {
        const st = lstatSync(join(this.#snapRoot, dir), { throwIfNoEntry: false });
        finish = st === undefined || st.mtimeMs < cutoff;
      }
      if (finish) await this.#finishRemoval(trash, dir).catch(() => undefined);
    }
  }

  /** Where the changes of `id` (active or committed) against its parent live, for the differ. */
  async diffSource(id: string): Promise<DiffSource> {
    await this.init();
    const m = await this.#load(id);
    if (m.kind === 'view') throw new WorkerError('SNAPSHOT_STATE', `snapshot ${id} is a view; it has no changes`);
    const parentChain = m.parent === undefined ? [] : (await this.#committed(m.parent)).chain;
    const upper = this.#abs(ownLayer(m));
    if (this.driver === 'copy') {
      const pc = parentChain[0];
      return { driver: 'copy', dir: upper, parentDir: pc === undefined ? undefined : this.#abs(pc) };
    }
    const bottom = parentChain.length === 0 && (m.layer !== undefined || m.whiteouts === true);
    return { driver: 'overlay', upper, lowers: this.#withSkeletons(parentChain).map((c) => this.#abs(c)), ...(bottom ? { whiteoutsAtBottom: true } : {}) };
  }

  /** The kiln root this snapshotter lives in. */
  get root(): string {
    return this.#root;
  }

  /**
   * `chain` with the skeleton of each DiffOp result layer right below it (see diffTrees): the
   * empty directories that hold its whiteouts, so overlayfs sees those directories as merged and
   * hides the whiteouts from listings even with nothing else below.
   */
  #withSkeletons(chain: readonly string[]): string[] {
    const out: string[] = [];
    for (const c of chain) {
      out.push(c);
      if (!c.endsWith('/fs')) continue;
      let has = this.#skeletons.get(c);
      if (has === undefined) {
        has = existsSync(this.#abs(skeletonOf(c)));
        this.#skeletons.set(c, has);
      }
      if (has) out.push(skeletonOf(c));
    }
    return out;
  }

  #abs(rel: string): string {
    // Concatenation: `rel` is one of our clean relative layer paths, and path.join's normalising,
    // once per layer of a chain on every step, showed in profiles of deep chains.
    return `${this.#snapRoot}/${rel}`;
  }

  #lowerOption(chain: readonly string[]): string {
    return `lowerdir=${this.#withSkeletons(chain).map((c) => this.#abs(c)).join(':')}`;
  }

  /**
   * A read-only mount of `chain`. One layer dir is bind-mounted, unless it may hold whiteouts (a
   * diff result's bottom layer), which only overlayfs hides; overlay needs two lowers, so an
   * empty dir goes below it.
   */
  #readOnly(chain: readonly string[], whiteoutsAtBottom = false): Mount {
    if (chain.length === 1 && !whiteoutsAtBottom) return { type: 'bind', source: this.#abs(chain[0] as string), options: ['rbind', 'ro'] };
    const lowers = chain.length === 1 ? [...chain, EMPTY_LOWER] : chain;
    return { type: 'overlay', source: 'overlay', options: [this.#lowerOption(lowers)] };
  }

  async #flatten(dir: string, chain: readonly string[], signal: AbortSignal | undefined): Promise<string> {
    const target = await mkdtemp(join(this.#mountRoot, `flat-${process.pid}-`));
    const flat = `${dir}/flat`;
    try {
      await mountAt(this.#readOnly(chain), target);
      try {
        await copyTree(target, this.#abs(flat), signal);
      } finally {
        await unmount(target);
      }
    } finally {
      await rmdir(target).catch(() => undefined);
    }
    return flat;
  }

  async #newDir(withFs = true): Promise<string> {
    for (;;) {
      const dir = randomBytes(4).toString('hex');
      try {
        mkdirSync(join(this.#snapRoot, dir));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      if (!withFs) return dir;
      mkdirSync(join(this.#snapRoot, dir, 'fs'), { mode: 0o755 });
      if (this.driver === 'overlay') mkdirSync(join(this.#snapRoot, dir, 'work'), { mode: 0o700 });
      return dir;
    }
  }


  async #create(
    id: string,
    dir: string,
    kind: SnapshotKind,
    parent: SnapshotMeta | undefined,
    labels: Readonly<Record<string, string>>,
  ): Promise<SnapshotInfo> {
    assertId(id);
    const meta: SnapshotMeta = {
      id,
      kind,
      parent: parent?.id,
      depth: (parent?.depth ?? 0) + (kind === 'view' ? 0 : 1),
      createdAt: new Date().toISOString(),
      labels,
      dir,
      chain: [],
      ...creator(),
    };
    await this.#writeMeta(meta);
    try {
      symlinkSync(`../${dir}`, join(this.#byId, id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new WorkerError('SNAPSHOT_EXISTS', `snapshot ${id} already exists`);
      throw e;
    }
    return publicInfo(meta);
  }

  // Metadata is a few hundred bytes: synchronous calls take microseconds, while each thread-pool
  // round trip cost 1-3 ms under load, ~10 of them per exec step (prepare, commit, stat, mounts).
  // Written in place, without a temp file and rename (a rename on the snapshots' disk cost
  // 0.3-0.5 ms per call, two per exec): a meta is only ever written while no shared id refers to
  // its dir — a new dir before its id link exists, or an active snapshot's dir (ids of active
  // snapshots are private to the process preparing them) before the committed id link exists.
  // A torn file (crash) reads as "not found" through that private id, and recover() drops it.
  async #writeMeta(meta: SnapshotMeta): Promise<void> {
    writeFileSync(join(this.#snapRoot, meta.dir, 'meta.json'), JSON.stringify(meta));
    // What this process wrote is what the file holds (only it writes a dir's meta while the dir is
    // private to it, and a committed meta never changes): no read back on the next lookup.
    this.#metas.set(meta.dir, meta);
  }

  async #load(id: string): Promise<SnapshotMeta> {
    assertId(id);
    try {
      // The id link is read every time (another process may remove or re-create an id); the
      // meta of a committed snapshot never changes in place, so it is kept per directory, as is
      // every meta this process wrote.
      const dir = readlinkSync(join(this.#byId, id)).replace(/^\.\.\//, '');
      const cached = this.#metas.get(dir);
      if (cached !== undefined && cached.id === id) return cached;
      const meta = JSON.parse(readFileSync(join(this.#snapRoot, dir, 'meta.json'), 'utf8')) as SnapshotMeta;
      if (meta.id === id) {
        if (meta.kind === 'committed') this.#metas.set(dir, meta);
        return meta;
      }
    } catch {
      // fall through
    }
    throw new WorkerError('SNAPSHOT_NOT_FOUND', `snapshot ${id} not found`);
  }

  async #committed(id: string): Promise<SnapshotMeta> {
    const m = await this.#load(id);
    if (m.kind !== 'committed') throw new WorkerError('SNAPSHOT_STATE', `snapshot ${id} is ${m.kind}, not committed`);
    return m;
  }
}

/** The creator fields of a new snapshot's meta: this process, when it started, its pid namespace. */
function creator(): { readonly pid: number; readonly pidStart?: string; readonly pidNs?: string } {
  const start = ownProcessStart();
  const ns = ownPidNamespace();
  return { pid: process.pid, ...(start === undefined ? {} : { pidStart: start }), ...(ns === undefined ? {} : { pidNs: ns }) };
}

/** The skeleton dir of layer dir `<dir>/fs`: `<dir>/skel`. */
function skeletonOf(layer: string): string {
  return `${layer.slice(0, -'/fs'.length)}/skel`;
}

/** The layer dir (relative) a committed snapshot adds over its parent. */
function ownLayer(m: SnapshotMeta): string {
  return m.layer ?? `${m.dir}/fs`;
}

function publicInfo(m: SnapshotMeta): SnapshotInfo {
  return { id: m.id, kind: m.kind, parent: m.parent, depth: m.depth, createdAt: m.createdAt, labels: m.labels };
}

function assertId(id: string): void {
  if (!ID_RE.test(id)) throw new WorkerError('SNAPSHOT_STATE', `invalid snapshot id ${JSON.stringify(id)}`);
}

/** Copies a tree keeping owners, modes, times, hardlinks and xattrs; reflinks when the fs can. */
async function copyTree(src: string, dst: string, signal: AbortSignal | undefined): Promise<void> {
  await mkdir(dst, { recursive: true });
  await execFileP('cp', ['-a', '--reflink=auto', `${src}/.`, `${dst}/`], signal ? { signal } : {});
}

/** Tries one tiny overlay mount (two lowers, an upper) under `dir`. */
async function probeOverlay(dir: string, extraOptions: readonly string[] = []): Promise<boolean> {
  const probe = await mkdtemp(join(dir, '.probe-'));
  const names = ['l1', 'l2', 'u', 'w', 'm'];
  for (const n of names) await mkdir(join(probe, n));
  const m = join(probe, 'm');
  try {
    await mountAt(
      {
        type: 'overlay',
        source: 'overlay',
        options: [`lowerdir=${join(probe, 'l1')}:${join(probe, 'l2')}`, `upperdir=${join(probe, 'u')}`, `workdir=${join(probe, 'w')}`, ...extraOptions],
      },
      m,
    );
    await unmount(m);
    return true;
  } catch {
    return false;
  } finally {
    await rm(probe, { recursive: true, force: true });
  }
}
