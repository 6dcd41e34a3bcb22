import type {
  ContentStore,
  EnsuredImage,
  EnsureImageOptions,
  Executor,
  FileAction as RuntimeFileAction,
  FileActionRoots,
  FileOpOptions,
  Platform,
  Snapshotter,
  SnapshotInfo,
  UnpackLayerOptions,
} from '@kiln/runtime';
import type { FailedExecState } from '../llb/worker.js';

/**
 * The runtime services a {@link RuntimeWorker} uses, injected by the CLI (the one place that
 * wires @kiln/runtime into the solver; the solver itself only imports runtime types).
 */
export interface RuntimeWorkerDeps {
  /** The kiln root: local-source mirrors and cache mounts live under `<root>/solver`. */
  readonly root: string;
  readonly snapshotter: Snapshotter;
  readonly executor: Executor;
  readonly content: ContentStore;
  /** Runtime's ensureImage bound to its stores/registry/layouts: makes an image's blobs local. */
  ensureImage(reference: string, opts: Pick<EnsureImageOptions, 'platform' | 'resolveMode' | 'signal'>): Promise<EnsuredImage>;
  /** Runtime's unpackLayer. */
  unpackLayer(
    snapshotter: Snapshotter,
    id: string,
    parent: string | undefined,
    layer: AsyncIterable<Uint8Array>,
    opts?: UnpackLayerOptions,
  ): Promise<{ readonly snapshot: SnapshotInfo }>;
  /** Runtime's applyFileAction. */
  applyFileAction(action: RuntimeFileAction, roots: FileActionRoots, opts?: FileOpOptions): Promise<void>;
  /**
   * The fetch of http(s) sources (ADD URL, remote contexts and bake files): the runtime's, which
   * honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY. Default: Node's global fetch.
   */
  readonly fetch?: typeof globalThis.fetch;
  /** Build context directories by local source name (`context`, `dockerfile`, named contexts). */
  readonly localDirs: Readonly<Record<string, string>>;
  /** Secret values by id (`--secret`); never logged or stored. */
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  /** ssh-agent sockets by id (`--ssh`). */
  readonly ssh?: Readonly<Record<string, string>>;
  /** Allow `--security=insecure` execs (`--allow security.insecure`). */
  readonly allowInsecure?: boolean;
  /** Allow `--network=host` execs (`--allow network.host`). */
  readonly allowNetworkHost?: boolean;
  /**
   * Called after a cache mount was used (`size` undefined: keep the last known size), and again once its
   * size was measured in the background: wire it to
   * `CacheStore.upsertRecord` so `du` lists cache mounts and `prune` removes them (the release hook
   * gets `snapshot` = `cachemount:<id>`, which {@link RuntimeWorker.releaseSnapshot} deletes). Image
   * layers unpacked by {@link RuntimeWorker.prefetchImage} are recorded the same way (kind `regular`).
   */
  readonly recordUsage?: (rec: { snapshot: string; size?: number | undefined; description: string; kind: 'exec.cachemount' | 'regular' }) => void;
  /**
   * Sets the measured size of a record {@link recordUsage} made, only if it still exists (a prune
   * may have removed it meanwhile; the late measurement must not bring it back). Absent:
   * `recordUsage` gets the size.
   */
  readonly recordSize?: (rec: { snapshot: string; size: number; kind: 'exec.cachemount' | 'regular' }) => void;
  /**
   * Work the worker leaves running in the background (a cache mount's size being measured): the
   * engine waits for it before it closes its cache store, so the result is not lost.
   */
  readonly background?: (task: Promise<unknown>) => void;
  /**
   * Protects a snapshot from the cache store's prune until the returned function is called: wire
   * it to `CacheStore.lease` (of the store the solver using this worker prunes). Image sources
   * lease each `layer-<chain>` snapshot before they look it up, so a `Solver.prune` running
   * beside the build cannot remove a layer between that lookup and the scheduler's record of it;
   * the lease ends when the last build needing the FROM ends. Without it, such a prune can
   * remove the layer a build is about to use.
   */
  readonly leaseSnapshot?: (snapshot: string) => () => void;
  /** Platform for images without an explicit one. */
  readonly platform?: Platform;
  /**
   * Keeps what each failed exec left (its mounts, committed) for a debug shell (`kiln build
   * --invoke`): called with the state, which its ExecFailedError's `state` holds too. The receiver
   * releases every state it gets (two execs may fail at once). Absent: dropped at once.
   */
  readonly onFailedExec?: (state: FailedExecState) => void;
}
