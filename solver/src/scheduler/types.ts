import type { CacheKey } from '../cache/cache-key.js';
import type { ImportedCache, ImportedResult } from '../cache/remote-import.js';
import type { CacheRecordKind } from '../cache/store.js';
import type { SourceLocation } from '../errors.js';
import type { FailedExecState } from '../llb/worker.js';
import type { ProgressSink } from '../progress/events.js';

/**
 * A vertex of the build graph (BuildKit's solver.Vertex): identified by `digest`, with input
 * edges, options and an opaque `op` payload the {@link ResolveOp} function understands.
 * Two vertices with the same digest are the same work and run once.
 */
export interface SolverVertex<O = unknown> {
  readonly digest: string;
  /** Display name for progress, e.g. `[stage 2/4] RUN make`. */
  readonly name: string;
  readonly inputs: readonly SolverEdge[];
  readonly options: VertexOptions;
  readonly op: O;
}

/** One output of a vertex (BuildKit's Edge: vertex + output index). */
export interface SolverEdge<O = unknown> {
  readonly vertex: SolverVertex<O>;
  readonly index: number;
}

/** Per-vertex options (BuildKit's VertexOptions). */
export interface VertexOptions {
  /** Never use a cached result for this vertex (LLB metadata `ignore_cache`). */
  readonly ignoreCache?: boolean;
  /** LLB metadata description (`llb.customname`, …). */
  readonly description?: Readonly<Record<string, string>>;
  /** Where the vertex comes from (the Definition's source map), for errors. */
  readonly locations?: readonly SourceLocation[];
  readonly progressGroup?: string;
}

/**
 * A result an op produced: a committed snapshot of the worker. Every result is recorded in the
 * cache store, which owns it (prune releases it); `cacheable: false` results are recorded under
 * a key that never matches, so they are listed and pruned but never reused.
 */
export interface WorkerRef {
  readonly snapshot: string;
  readonly size: number;
}

/** How one input takes part in the cache key (BuildKit's CacheMap.Deps[i]). */
export interface CacheMapDep {
  /** Narrows which part of the input matters (digest of the selected paths); '' or undefined for all of it. */
  readonly selector?: string;
  /**
   * Content-based digest of the input's result (BuildKit's ComputeDigestFunc), used when the
   * definition-based key misses: e.g. the checksum of the files a COPY selects.
   */
  readonly computeDigest?: (ref: WorkerRef, signal: AbortSignal) => Promise<string>;
}

/** BuildKit's CacheMap: the op's own digest (inputs left out) and one entry per input. */
export interface CacheMap {
  readonly digest: string;
  readonly deps: readonly CacheMapDep[];
}

/** What a build lends the steps it takes part in, by id (BuildKit's session attachables). */
export interface SessionAttachables {
  /** `--secret` values; never logged or stored. */
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  /** `--ssh` agent sockets. */
  readonly ssh?: Readonly<Record<string, string>>;
  /** Takes the state a failed step left, for a debug shell (`--invoke on-error`). */
  readonly onFailedExec?: (state: FailedExecState) => void;
}

/**
 * The builds attached to a vertex (BuildKit's session.Group): a step shared by builds takes a
 * session-bound resource from the first build still in it that has it, asked when the resource is
 * used (a secret when the container starts, an ssh agent per connection), not from the build
 * that started the step, which may have left (Ctrl-C) with its agent.
 */
export interface SessionGroup {
  secret(id: string): Uint8Array | undefined;
  /** Every attached build's agent socket for `id`, first joined first: the next is tried when one does not answer (none: no build forwards `id`). */
  sshSockets(id: string): readonly string[];
  /** Where the state of a failed step goes: the first attached build that keeps one (undefined: none does). */
  onFailedExec(): ((state: FailedExecState) => void) | undefined;
}

/** What an op sees while computing its cache map or running. */
export interface OpContext {
  readonly signal: AbortSignal;
  readonly vertex: SolverVertex;
  /** The builds attached to the vertex, for their secrets and ssh agents (absent outside a scheduler). */
  readonly group?: SessionGroup;
  /**
   * Output of the running op as it wrote it (any encoding), shown as `#N 0.123 text` (a progress
   * event per line; `data` may hold many) and kept for error reports.
   */
  log(stream: 1 | 2, data: Uint8Array): void;
  /** Progress of a sub-task (pull, transfer): current/total bytes or items. */
  status(id: string, current: number, total?: number, done?: boolean): void;
}

/**
 * The solver's view of one op (BuildKit's solver.Op): `cacheMap` is called before anything
 * runs, `exec` only on a cache miss, with the results of the inputs in order.
 */
export interface Op {
  cacheMap(ctx: OpContext): Promise<CacheMap>;
  exec(ctx: OpContext, inputs: readonly WorkerRef[]): Promise<readonly WorkerRef[]>;
  /**
   * Called once the op is known to run (its key missed), before its inputs are ready: a chance to
   * start what does not depend on them. Returns a function the scheduler calls after the run, or
   * when the run is abandoned (an input failed, cancellation). Optional.
   */
  prepare?(): (() => void) | undefined;
  /** False for results that must never be reused (a local source: it is re-synced every build). Default true. */
  readonly cacheable?: boolean;
  /** Cache record kind for `du`/`prune`. Default `regular`. */
  readonly recordKind?: CacheRecordKind;
  /**
   * Which parallelism bound the op counts against while it runs (see
   * {@link OpResourceClass}). Default `cpu`.
   */
  readonly resourceClass?: OpResourceClass;
}

/**
 * What an op mostly spends its time on, for the scheduler's bounds:
 * - `cpu`: kiln's own work in this process or its helpers (hashing, file copies, unpacking and
 *   compressing layers), bounded by the CPU count;
 * - `exec`: a container process, which mostly waits (sleep, network, disk) or burns its own CPU
 *   under the kernel's scheduler; BuildKit does not cap these by core count at all, so they get
 *   a larger bound of their own.
 */
export type OpResourceClass = 'cpu' | 'exec';

/** Turns a vertex into its {@link Op} (BuildKit's ResolveOpFunc). */
export type ResolveOp = (vertex: SolverVertex) => Op;

/** Options of one build ({@link Scheduler.build}). */
export interface BuildOptions {
  readonly signal?: AbortSignal;
  readonly progress?: ProgressSink;
  /** `--no-cache`: every vertex ignores the cache (results are still stored). */
  readonly noCache?: boolean;
  /** `--no-cache-filter`: vertices for which this returns true ignore the cache. */
  readonly noCacheFilter?: (vertex: SolverVertex) => boolean;
  /** Resolves ops for this build (e.g. a worker bound to this build's local directories). */
  readonly resolveOp?: ResolveOp;
  /**
   * This build's session id. Vertices that depend on a session-bound source (a local directory)
   * are merged only with builds of the same session; all others merge across builds.
   */
  readonly session?: string;
  /** This build's secrets and ssh agents, for the steps it is attached to (see {@link SessionGroup}). */
  readonly attachables?: SessionAttachables;
  /**
   * Imported caches (`--cache-from`): a key the local store misses is looked up in them; a hit is
   * fetched only when its result is needed, through {@link BuildOptions.loadImported}, then
   * recorded in the local store.
   */
  readonly cacheImports?: readonly ImportedCache[];
  /** Fetches and unpacks an imported result into a snapshot (required with `cacheImports`). */
  readonly loadImported?: LoadImportedResult;
}

/** Turns an imported result (a layer chain) into a committed snapshot of the worker. */
export type LoadImportedResult = (result: ImportedResult, ctx: OpContext) => Promise<WorkerRef>;

/**
 * What a build knows about the result of one cache key (for cache export): a snapshot (run, or
 * found in the local store) or an imported result that was not needed, so not fetched.
 */
export type KeyResult =
  | { readonly kind: 'snapshot'; readonly snapshot: string; readonly created: number }
  | { readonly kind: 'imported'; readonly result: ImportedResult };

/** The result of a build: the target's ref and whether it came from the cache. */
export interface BuildResult {
  readonly ref: WorkerRef;
  readonly cached: boolean;
  /** Ends this build's lease on the result (it may be pruned afterwards). */
  release(): void;
  /** The cache key of the result (its deps are the keys of the inputs, recursively). */
  readonly cacheKey?: CacheKey;
  /** The result this build knows for a key of {@link BuildResult.cacheKey}'s graph. */
  cacheResult?(key: CacheKey): KeyResult | undefined;
}
