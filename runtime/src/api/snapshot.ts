import type { DiffOptions, LayerDescriptor } from './layer.js';

/**
 * A filesystem mount as the kernel (or runc's config.json) sees it, like containerd's mount.Mount.
 * `bind` mounts `source` (add `ro` to `options` for read-only); `overlay` carries its
 * `lowerdir=…`, `upperdir=…`, `workdir=…` in `options`; `tmpfs` takes `size=…`, `mode=…`.
 */
export interface Mount {
  readonly type: 'bind' | 'overlay' | 'tmpfs';
  readonly source: string;
  readonly options: readonly string[];
}

/**
 * - `committed`: immutable, usable as a parent; its directory is read-only by contract.
 * - `active`: writable, made by {@link Snapshotter.prepare}; {@link Snapshotter.commit} turns it into a committed one.
 * - `view`: a read-only handle on a committed parent (no upper dir); removed like an active one.
 */
export type SnapshotKind = 'committed' | 'active' | 'view';

/** The stored metadata of one snapshot. */
export interface SnapshotInfo {
  readonly id: string;
  readonly kind: SnapshotKind;
  /** The committed snapshot this one is stacked on. */
  readonly parent: string | undefined;
  /** Number of layer directories from the root of the chain up to and including this one. */
  readonly depth: number;
  /** ISO-8601 creation time. */
  readonly createdAt: string;
  /** Free-form labels (e.g. the layer diffID a committed snapshot was applied from). */
  readonly labels: Readonly<Record<string, string>>;
}

/** Options for {@link Snapshotter.prepare} and {@link Snapshotter.commit}. */
export interface SnapshotOptions {
  readonly labels?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

/**
 * A snapshot mounted on the host. The mount stays until {@link MountedSnapshot.release} runs;
 * release is idempotent and must be called on every path (use try/finally).
 */
export interface MountedSnapshot {
  readonly path: string;
  release(): Promise<void>;
}

/** Options of {@link Snapshotter.remove}. */
export interface SnapshotRemoveOptions {
  /**
   * Asked synchronously right before the snapshot's id is given up (nothing awaited in between);
   * false keeps the snapshot and the removal rejects with `SNAPSHOT_STATE`. The cache store uses
   * it to spare a snapshot a build recorded or leased again while the removal was on its way.
   */
  readonly confirm?: () => boolean;
}

/**
 * The snapshotter contract the solver uses, shaped after containerd's snapshots.Snapshotter.
 * Ids are chosen by the caller (e.g. cache-record ids) and are `[A-Za-z0-9._-]+`.
 * Metadata is persisted by the snapshotter itself (atomic JSON renames), so the solver only
 * needs to remember ids. Nothing here holds a mount between calls except {@link Snapshotter.mount}.
 */
export interface Snapshotter {
  /** Whether overlayfs is used (`overlay`) or full copies (`copy`); detected once. */
  readonly driver: 'overlay' | 'copy';
  /** Creates a writable snapshot on top of committed `parent` (or empty). */
  prepare(id: string, parent?: string, opts?: SnapshotOptions): Promise<SnapshotInfo>;
  /** Creates a read-only view of committed `parent`. */
  view(id: string, parent: string, opts?: SnapshotOptions): Promise<SnapshotInfo>;
  /** Turns active snapshot `activeId` into committed snapshot `id`; `activeId` no longer exists afterwards. */
  commit(id: string, activeId: string, opts?: SnapshotOptions): Promise<SnapshotInfo>;
  /** The mounts that make up `id` (no mount is performed): what the executor hands to runc. */
  mounts(id: string): Promise<readonly Mount[]>;
  /** Mounts `id` at a private host directory. */
  mount(id: string, signal?: AbortSignal): Promise<MountedSnapshot>;
  stat(id: string): Promise<SnapshotInfo>;
  list(): Promise<readonly SnapshotInfo[]>;
  /**
   * Writes the changes of active or committed `id` against its parent as an OCI layer blob
   * (sorted, deterministic headers; whiteouts for deletions), hashing diffID and digest in the same pass.
   */
  diff(id: string, opts: DiffOptions): Promise<LayerDescriptor>;
  /** Removes a snapshot; refused for a committed snapshot that still has children. */
  remove(id: string, opts?: SnapshotRemoveOptions): Promise<void>;
  /**
   * Creates committed snapshot `id` from `parents` merged in order, as if their layers were
   * applied on top of one another (BuildKit's MergeOp: later parents win, their deletions apply)
   * without copying files. Optional; resolves `undefined` when the snapshotter would have to copy
   * (the caller then copies the parents' files itself).
   */
  merge?(id: string, parents: readonly string[], opts?: SnapshotOptions): Promise<SnapshotInfo | undefined>;
  /**
   * Creates committed snapshot `id` holding what `upper` adds on top of `lower` (BuildKit's
   * DiffOp; `lower` undefined means scratch) without copying files. Optional; resolves
   * `undefined` when `lower` is not a base of `upper`.
   */
  diffLayers?(id: string, lower: string | undefined, upper: string, opts?: SnapshotOptions): Promise<SnapshotInfo | undefined>;
  /**
   * Creates committed snapshot `id` holding the changes that turn `lower` into `upper` for any
   * two snapshots (BuildKit's DiffOp; `undefined` means scratch): files `upper` adds or changes
   * are copied, and paths of `lower` that `upper` lacks become deletions that apply when the
   * result is merged or exported. Optional.
   */
  diffTrees?(id: string, lower: string | undefined, upper: string | undefined, opts?: SnapshotOptions): Promise<SnapshotInfo>;
}
