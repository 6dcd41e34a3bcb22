import type { Readable, Writable } from 'node:stream';
import type { Container, ContainerMount, Definition, FileStat, ImageMetaResolver, NewContainerRequest, Platform, ReadFileOptions, ResolveImageConfigOptions } from '@kiln/llb-core';

/**
 * A solved result as the gateway needs it: readable, and released when the build is done.
 * The solver adapter implements this over a snapshot.
 */
export interface SolvedRef {
  readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array>;
  readDir(path: string, include?: string): Promise<readonly FileStat[]>;
  statFile(path: string): Promise<FileStat>;
}

/** Options of one {@link SolveBackend.solve} call. */
export interface BackendSolveOptions {
  readonly signal?: AbortSignal;
}

/**
 * What the gateway needs of the solver: evaluate a Definition into a readable result, and
 * resolve image configs (the frontend's `resolveImageConfig`). Kept narrow so the gateway can
 * be tested against a fake and so BuildKit's LLBBridge can be served over the same interface later.
 */
export interface SolveBackend extends ImageMetaResolver {
  solve(definition: Definition, options: BackendSolveOptions): Promise<SolvedRef>;
  /**
   * Optional: start making an image the frontend just resolved ready for the FROM that usually
   * follows (pull its layers, unpack them), while the frontend is still converting. Called by the
   * gateway after each successful `resolveImageConfig`, with the same reference and options. Must
   * return at once and never throw; what it starts must not fail the build or leak when the image
   * is not used after all.
   */
  prefetchImage?(ref: string, options: ResolveImageConfigOptions): void;
  /**
   * Optional: runs an external frontend's container (the `gateway.v0` frontend), as buildkitd's
   * gateway runs a frontend image: `rootfs` (a ref this backend's `solve` returned) as a writable
   * root that is thrown away afterwards, `files` bound read-only, fds 0/1 on `stdin`/`stdout`.
   * Resolves with the exit status once the container is gone; rejects when it could not run or
   * `signal` aborted (the container is killed first). Without it, only in-process frontends run.
   */
  runFrontendContainer?(request: FrontendContainerRequest): Promise<FrontendContainerResult>;
  /**
   * Optional: makes a container for a frontend (BuildKit's gateway `NewContainer`), with mounts
   * whose refs this backend's `solve` returned. The gateway has checked the request (one `/`
   * mount, absolute and distinct destinations, refs of this build) and releases what the
   * frontend leaves open when the build ends. The snapshots the container uses stay leased until
   * its release. Without it, frontends get no `newContainer`.
   */
  newContainer?(request: BackendContainerRequest): Promise<Container>;
  /**
   * Optional: the platforms this worker runs programs of, its own first, then those it emulates
   * (BuildKit's worker platforms, from archutil): what an external frontend reads in
   * `BUILDKIT_WORKERS` and LLBBridge's Ping. Without it, the host's platform alone.
   */
  workerPlatforms?(): readonly Platform[];
  /** The build's session id (`BUILDKIT_SESSION_ID` of an external frontend); optional. */
  readonly sessionId?: string;
}

/** A read-only file in a frontend container: `/run/config/buildkit/metadata/frontend.bin`. */
export interface FrontendContainerFile {
  /** Absolute path inside the container. */
  readonly path: string;
  readonly data: Uint8Array;
}

/** What {@link SolveBackend.runFrontendContainer} runs. */
export interface FrontendContainerRequest {
  /** The frontend image's filesystem: a result of this backend's `solve`. */
  readonly rootfs: SolvedRef;
  readonly args: readonly string[];
  /** `KEY=value` entries, passed as they are. */
  readonly env: readonly string[];
  /** Working directory inside the container (created if missing). */
  readonly cwd: string;
  readonly files: readonly FrontendContainerFile[];
  /** `host`, unless the image opts out with `moby.buildkit.frontend.network.none=true`. */
  readonly network: 'host' | 'none';
  /** Read by the container as fd 0 until it ends or the container exits; never destroyed. */
  readonly stdin: Readable;
  /** The container's fd 1, byte for byte; ended once the container has exited and all of it is written. */
  readonly stdout: Writable;
  /** Each line the container writes to fd 2, without its newline. */
  readonly onStderr?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/** How a frontend container ended. */
export interface FrontendContainerResult {
  /** The exit status; 128+n when killed by signal n. */
  readonly exitCode: number;
}

/** A {@link ContainerMount} with its ref solved. */
export interface BackendContainerMount extends Omit<ContainerMount, 'ref'> {
  readonly ref?: SolvedRef;
}

/** What {@link SolveBackend.newContainer} makes: a {@link NewContainerRequest} with solved refs. */
export interface BackendContainerRequest extends Omit<NewContainerRequest, 'mounts'> {
  readonly mounts: readonly BackendContainerMount[];
}
