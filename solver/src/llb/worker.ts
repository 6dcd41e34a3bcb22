import type { Definition, DiffOp, ExecOp, FileOp, MergeOp, PbPlatform, SourceOp } from '@kiln/llb-core';
import type { ExecPreparation } from '@kiln/runtime';
import type { ChecksumOptions } from '../contenthash/tree.js';
import type { OpContext, SessionAttachables, WorkerRef } from '../scheduler/types.js';

/** Where an op runs: the op's platform (or the worker's default). */
export interface WorkerOpContext extends OpContext {
  readonly platform: PbPlatform | undefined;
  /** The exec's announcement ({@link Worker.prepareExec}), which its run uses up. */
  readonly prepared?: ExecPreparation;
}

/**
 * What the solver needs from a worker (BuildKit's worker.Worker, cut to the op kinds): one
 * method per op kind, plus the pinning of sources and content checksums for cache keys.
 * Results are committed snapshots; the solver's cache store owns those it saves.
 */
export interface Worker {
  /**
   * The pinned identity of a source, as BuildKit's Source.CacheKey: an image's chain id (or
   * manifest digest), a git commit, an http checksum. A key starting with `session:` marks a
   * source that is never cached (a local directory); it is re-read every build.
   */
  sourceCacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string>;
  source(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef>;
  /** Runs an exec; returns one ref per mount with an output index, in output order. */
  exec(op: ExecOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]>;
  /** Applies file actions; returns one ref per action output, in output order. */
  file(op: FileOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<readonly WorkerRef[]>;
  merge(op: MergeOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef>;
  diff(op: DiffOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef>;
  /** BuildKit contenthash.Checksum of `path` inside a result. */
  checksum(ref: WorkerRef, path: string, opts: ChecksumOptions, signal: AbortSignal): Promise<string>;
  /**
   * Throws when an exec needs an entitlement this build was not granted (e.g. security.insecure).
   * Called before the exec's cache key is looked up, so a cached step is refused too. Optional.
   */
  validateExec?(op: ExecOp): void;
  /**
   * Announces an exec that will run once its inputs are ready, so the worker can start what does
   * not depend on them (the executor's `prepare`). Optional.
   */
  prepareExec?(): ExecPreparation | undefined;
  /**
   * Empties the cache mounts with these ids (BuildKit's Worker.PruneCacheMounts): the solver calls
   * it before a build for the cache mounts of every exec that ignores the cache. Optional.
   */
  pruneCacheMounts?(ids: readonly string[]): Promise<void>;
  /** Runs a nested definition (BuildOp); optional. */
  build?(def: Definition, ctx: WorkerOpContext): Promise<WorkerRef>;
  /**
   * The build's secrets and ssh agents: the solver lends them to every step the build is attached
   * to, so a shared step still finds them when the build whose worker runs it has left. Optional.
   */
  readonly attachables?: SessionAttachables;
}

/**
 * An exec that ended with a non-zero status. The scheduler turns it into a VertexError with
 * BuildKit's message `process "<args>" did not complete successfully: exit code: N`.
 */
export class ExecFailedError extends Error {
  override readonly name = 'ExecFailedError';
  readonly exitCode: number;
  readonly command: string;
  /** What the exec left, when the worker was asked to keep it (a debug shell after the failure). */
  readonly state: FailedExecState | undefined;
  constructor(command: string, exitCode: number, state?: FailedExecState) {
    super(`process ${JSON.stringify(command)} did not complete successfully: exit code: ${exitCode}`);
    this.exitCode = exitCode;
    this.command = command;
    this.state = state;
  }
}

/**
 * A mount of a failed exec as it was when the process exited: a committed snapshot (a writable
 * mount's changes are in it; `selector` is the sub-path that was mounted), the cache mount
 * directory of `cacheId`, or a tmpfs (empty again). Secret and ssh mounts are kept by id only,
 * never their values: a debugger mounts them again from the build's session (as buildx passes
 * the failed op's SecretOpt/SSHOpt to NewContainer).
 */
export type FailedExecMount =
  | { readonly kind: 'snapshot'; readonly dest: string; readonly snapshot: string; readonly selector: string; readonly readonly: boolean }
  | { readonly kind: 'cache'; readonly dest: string; readonly cacheId: string; readonly sharing: 'shared' | 'private' | 'locked'; readonly readonly: boolean }
  | { readonly kind: 'tmpfs'; readonly dest: string; readonly size?: number }
  | { readonly kind: 'secret'; readonly dest: string; readonly secretId: string; readonly mode?: number }
  | { readonly kind: 'ssh'; readonly dest: string; readonly sshId: string; readonly mode?: number };

/**
 * A secret the failed exec had as an environment variable (`RUN --mount=type=secret,env=NAME`,
 * pb.SecretEnv): by id only, as a secret mount; a debugger sets it again from the build's session.
 */
export interface FailedExecSecretEnv {
  readonly name: string;
  readonly secretId: string;
  readonly optional: boolean;
}

/**
 * The state of an exec that failed, kept for a debugger (BuildKit keeps the failed exec's mounts
 * for buildx's `--invoke on-error`): its process as it ran (secret environment values left out,
 * `secretEnv` names them by id) and its mounts. The snapshots stay (leased against prune) until
 * `release()`.
 */
export interface FailedExecState {
  readonly process: {
    readonly args: readonly string[];
    readonly env: readonly string[];
    readonly secretEnv: readonly FailedExecSecretEnv[];
    readonly cwd: string;
    readonly user: string;
  };
  /** The exec's platform (a debug shell in it runs that platform's programs, emulated or refused as the step was). */
  readonly platform?: PbPlatform;
  /** The exec's pb.NetMode: `sandbox` (unset, RUN's default), `none` or `host`. */
  readonly network: 'sandbox' | 'none' | 'host';
  readonly security: 'sandbox' | 'insecure';
  readonly hostname?: string;
  readonly extraHosts: readonly { readonly host: string; readonly ip: string }[];
  readonly mounts: readonly FailedExecMount[];
  release(): Promise<void>;
}
