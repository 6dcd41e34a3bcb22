/**
 * The frontend contract: what a frontend (Dockerfile, Buildpacks, TypeScript DSL) sees of
 * the gateway, shaped like BuildKit's Go `frontend/gateway/client.Client`. Frontends depend
 * on this module only, never on the solver, so every frontend plugs in the same way.
 */
import type { Definition } from './op.js';
import type { ImageMetaResolver } from './image-config.js';
import type { Platform } from './platform.js';

/** Metadata of one file in a solved result, like BuildKit's `fstypes.Stat`. */
export interface FileStat {
  /** Path relative to the directory that was listed (or the path asked for). */
  readonly path: string;
  /** Go `os.FileMode` bits: permission bits plus type bits (dir `1 << 31`, symlink `1 << 27`). */
  readonly mode: number;
  /** Owner user id. */
  readonly uid: number;
  /** Owner group id. */
  readonly gid: number;
  /** Size in bytes (0 for directories). */
  readonly size: number;
  /** Modification time in Unix nanoseconds. */
  readonly modTime: bigint;
  /** Symlink target, when the file is a symlink. */
  readonly linkname?: string;
}

/** Options of {@link Ref.readFile}: an optional byte range. */
export interface ReadFileOptions {
  /** First byte to read. */
  readonly offset?: number;
  /** Bytes to read at most. */
  readonly length?: number;
}

/**
 * A handle on a solved (or lazily solvable) result inside the gateway. Reading from it forces
 * the solve of its graph. Refs live until the frontend returns.
 */
export interface Ref {
  /** Reads a file of the result; throws when the path is missing or not a regular file. */
  readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array>;
  /** Lists a directory of the result, optionally filtered by a glob include pattern. */
  readDir(path: string, include?: string): Promise<readonly FileStat[]>;
  /** Stats one path of the result (symlinks are not followed). */
  statFile(path: string): Promise<FileStat>;
  /** The LLB this ref stands for, so a frontend can keep building on it. */
  readonly definition: Definition;
}

/** A solve request from a frontend: a raw Definition to evaluate. */
export interface SolveRequest {
  /** The LLB to evaluate. */
  readonly definition: Definition;
  /** Force evaluation now, so errors surface at this call rather than on first read. */
  readonly evaluate?: boolean;
}

/**
 * A solve request that names a frontend instead of a Definition: BuildKit's `client.SolveRequest`
 * with `Frontend`, `FrontendOpt` and `FrontendInputs` set (`Definition` left empty). The gateway
 * runs that frontend as it would run a build's top-level frontend (the same selection: built-in
 * names, `gateway.v0` with opt `source`, an image name run as a frontend image where the gateway
 * can) with exactly these options and inputs, nothing inherited from the caller, and answers its
 * whole result. Wrapper frontends use it to delegate (`frontend: 'dockerfile.v0'`), and a
 * Dockerfile frontend forwards `# syntax=<image>` with it (`frontend: 'gateway.v0'`, opts plus
 * `source` and `cmdline`, inputs = its own inputs), as BuildKit's dockerfile builder's
 * `forwardGateway` does.
 */
export interface SolveFrontendRequest {
  /** The frontend to run (BuildKit's `Frontend`): `dockerfile.v0`, `gateway.v0`, a kiln name or an image. */
  readonly frontend: string;
  /** Its options (BuildKit's `FrontendOpt`): `filename`, `target`, `build-arg:NAME`, `source`, `cmdline`, … */
  readonly opts: ReadonlyMap<string, string>;
  /** Its named inputs as LLB (BuildKit's `FrontendInputs`); none when absent. */
  readonly inputs?: ReadonlyMap<string, Definition>;
  /** Solve every ref of the result now, so errors surface at this call (BuildKit's `Evaluate`). */
  readonly evaluate?: boolean;
  /**
   * Cancels this frontend run (its solves, and its container if it is a frontend image), as the
   * context of BuildKit's `Solve` call does: the LLBBridge server aborts it when the frontend that
   * asked goes away before the answer. The build's own signal cancels it as well.
   */
  readonly signal?: AbortSignal;
}

/**
 * What a frontend returns: one ref, or refs per platform key, plus metadata such as
 * `containerimage.config` (the image config JSON) as BuildKit's gateway `Result` carries.
 */
export interface FrontendResult {
  /** The single result. */
  readonly ref?: Ref;
  /** Results by key (a platform string for multi-platform builds). */
  readonly refs?: ReadonlyMap<string, Ref>;
  /** Exporter metadata, see {@link ResultMetadataKey}. */
  readonly metadata: ReadonlyMap<string, Uint8Array>;
  /**
   * Attestations of the results, by the key of the result they belong to: the platform key
   * (`linux/amd64`, as in `refs` and `refs.platforms`), also for a single `ref` (BuildKit's
   * gateway `Result.attestations`, keyed by the exporter's platform ID). Absent: none. The
   * exporter adds its own (provenance) after these and fills empty subjects with the image.
   */
  readonly attestations?: ReadonlyMap<string, readonly FrontendAttestation[]>;
}

/**
 * The kind of a {@link FrontendAttestation} (BuildKit's gateway `AttestationKind`):
 * `in-toto` is one predicate, the file at `path` of `ref`; `bundle` is a directory of `ref`
 * (at `path`, default its root) holding whole in-toto statements, one JSON file each, which the
 * exporter splits into one attestation per file (exporter/attestation/unbundle.go).
 */
export type AttestationKind = 'in-toto' | 'bundle';

/** A statement subject a frontend sets (BuildKit's `InTotoSubject`). */
export interface AttestationSubject {
  /** `self`: the exported image (name and manifest digest filled by the exporter); `raw`: as given. */
  readonly kind: 'self' | 'raw';
  /** Subject name (`raw`); empty is written as `_`. */
  readonly name?: string;
  /** Digests (`sha256:…`) of a `raw` subject. */
  readonly digest?: readonly string[];
}

/**
 * One attestation of a result, shaped like BuildKit's gateway `Attestation` (pb field 12 of
 * `Result`): its kind, metadata (see {@link AttestationMetadataKey}), the ref holding its
 * content, the path in that ref, and for `in-toto` its predicate type and subjects (none: the
 * exported image). A `bundle` may name the predicate type every statement in it must have.
 */
export interface FrontendAttestation {
  readonly kind: AttestationKind;
  readonly metadata?: ReadonlyMap<string, Uint8Array>;
  /** The result holding the content (a solved ref of this client). */
  readonly ref: Ref;
  /** The predicate file (`in-toto`) or the bundle directory (`bundle`) in `ref`; `''` is its root. */
  readonly path?: string;
  readonly predicateType?: string;
  readonly subjects?: readonly AttestationSubject[];
}

/** Metadata keys and values of a {@link FrontendAttestation} (BuildKit solver/result/attestation.go). */
export const AttestationMetadataKey = {
  /** Why it was made: `sbom` or `provenance` (`AttestationReasonKey`). */
  reason: 'reason',
  reasonSBOM: 'sbom',
  reasonProvenance: 'provenance',
  /** The name of the core scan (`sbom`): its statement file `sbom.*` goes first (`AttestationSBOMCore`). */
  sbomCore: 'sbom-core',
  /** Only for inline use, never exported to an image (`AttestationInlineOnlyKey`). */
  inlineOnly: 'inline-only',
} as const;

/** A lint-style warning with an optional source location. */
export interface FrontendWarning {
  /** What is wrong, in one line. */
  readonly message: string;
  /** The file it is in. */
  readonly file?: string;
  /** 1-based line. */
  readonly line?: number;
  /** 1-based column. */
  readonly column?: number;
}

/**
 * A mount of a {@link NewContainerRequest}, as BuildKit's gateway `NewContainer` takes a pb.Mount.
 * `bind` mounts `ref` (at `selector` inside it, default its root); writable ones get a throw-away
 * layer on top, dropped at release, so the ref itself never changes. `bind` without a ref is an
 * empty scratch directory. `cache` is the cache mount `cacheId` the builds of this root share
 * (`RUN --mount=type=cache`), `tmpfs` a fresh tmpfs, `secret` the build's secret `secretId` as a
 * read-only file, `ssh` a socket forwarding to the build's agent `sshId` (default `default`).
 */
export interface ContainerMount {
  /** Absolute path inside the container; exactly one mount has `/`, the root filesystem. */
  readonly dest: string;
  readonly type?: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  readonly ref?: Ref;
  readonly selector?: string;
  readonly readonly?: boolean;
  readonly cacheId?: string;
  /** As `RUN --mount=type=cache,sharing=`: default `shared`. */
  readonly cacheSharing?: 'shared' | 'private' | 'locked';
  readonly secretId?: string;
  readonly sshId?: string;
  /** File mode of a `secret` file or `ssh` socket (default 0400 / 0600). */
  readonly mode?: number;
}

/** What {@link FrontendClient.newContainer} makes (BuildKit's gateway `NewContainerRequest`). */
export interface NewContainerRequest {
  readonly mounts: readonly ContainerMount[];
  /**
   * BuildKit's pb.NetMode: `sandbox` (UNSET, the default) is what RUN steps get without
   * `--network` (in kiln the host's network namespace, as buildkitd with --oci-worker-net=host);
   * `none` is its own namespace with only `lo`; `host` needs the build's network.host entitlement.
   */
  readonly network?: 'sandbox' | 'none' | 'host';
  /** Default `buildkitsandbox`. */
  readonly hostname?: string;
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  /** The platform of its programs (NewContainerRequest.platform): refused or emulated as a RUN of it; default the host's. */
  readonly platform?: Platform;
  /** Releases the container when aborted (as the end of the build does). */
  readonly signal?: AbortSignal;
}

/**
 * A process to start in a {@link Container} (BuildKit's gateway `StartRequest`). The first one
 * started is the container's init; the container lives until that one exits or it is released.
 */
export interface ContainerProcessRequest {
  readonly args: readonly string[];
  /** `KEY=value` entries, as they are. */
  readonly env?: readonly string[];
  /**
   * Build secrets set as environment variables (StartRequest.SecretEnv, pb.SecretEnv): `name`
   * gets the value of secret `id` from the build's session, as a `secret` mount does; a missing
   * one is an error unless `optional`. Not on the LLBBridge wire kiln speaks (v0.11.6's).
   */
  readonly secretEnv?: readonly { readonly name: string; readonly id: string; readonly optional?: boolean }[];
  /** Default `/`. */
  readonly cwd?: string;
  /** `name`, `uid`, `name:group` or `uid:gid`, resolved in the container's /etc files. Default root. */
  readonly user?: string;
  /** A pseudo-terminal for fds 0-2 (stderr then comes through `stdout`). */
  readonly tty?: boolean;
  /**
   * The terminal's size from the start (default 24x80), so a program that reads it at once sees
   * the caller's; later changes go through {@link ContainerProcess.resize}. kiln's own: BuildKit
   * has only Resize, which can come after the program looked.
   */
  readonly ttySize?: { readonly rows: number; readonly cols: number };
  readonly security?: 'sandbox' | 'insecure';
  /** Read as the process's fd 0 until it ends; absent: an empty stdin. */
  readonly stdin?: AsyncIterable<Uint8Array>;
  /**
   * Fd 1's bytes as the process writes them; absent: dropped. Backpressure: when the callback
   * returns a promise, no more of that fd's output is read until it settles, so a process
   * writing faster than the caller takes it blocks in its write (a full pipe), as under
   * BuildKit, instead of kiln buffering it; kiln then holds about a pipe's buffer per fd (over
   * LLBBridge add the HTTP/2 stream window and the small queue the client reads ahead). A
   * callback returning nothing (`void`) takes output as fast as it comes. A throw or a rejected
   * promise is ignored: reading goes on. {@link ContainerProcess.wait} resolves only
   * after the last chunk's promise settled; {@link Container.release} stops waiting for
   * them (the rest is still handed over). Over LLBBridge the frontend side reads one
   * ExecProcess stream for all the processes of a connection (as BuildKit's grpcclient does):
   * a pending promise holds up the output of the connection's other processes too.
   */
  readonly stdout?: OutputSink;
  /** Fd 2's bytes as the process writes them; absent: dropped. Backpressure as {@link stdout}'s. */
  readonly stderr?: OutputSink;
}

/**
 * Takes a container process's output (see {@link ContainerProcessRequest.stdout}): returning a
 * promise holds further output of that fd until it settles.
 */
export type OutputSink = (chunk: Uint8Array) => void | Promise<void>;

/** A running process of a {@link Container}. */
export interface ContainerProcess {
  /** Resolves with its exit status (128+n when killed by signal n) once its output is all delivered. */
  wait(): Promise<number>;
  /** Sends it a signal by name (`SIGTERM`, `SIGINT`, …). */
  signal(signal: string): Promise<void>;
  /** Resizes its terminal (a `tty` process; otherwise nothing happens). */
  resize(size: { readonly rows: number; readonly cols: number }): Promise<void>;
}

/** A container made from results (BuildKit's gateway `Container`). */
export interface Container {
  start(request: ContainerProcessRequest): Promise<ContainerProcess>;
  /** Kills what still runs, unmounts and drops writable layers. Safe to call more than once. */
  release(): Promise<void>;
}

/**
 * The client a frontend works through. `opts` are BuildKit's frontend options
 * (`filename`, `target`, `platform`, `build-arg:NAME`, `context:NAME`, `no-cache`, …);
 * `inputs` are named contexts handed over as LLB (`context`, `dockerfile`, or `--build-context` names).
 */
export interface FrontendClient extends ImageMetaResolver {
  /** Frontend options (BuildKit's `FrontendOpt`). */
  readonly opts: ReadonlyMap<string, string>;
  /** Named inputs as LLB. */
  readonly inputs: ReadonlyMap<string, Definition>;
  /**
   * The platforms of the worker that runs the build (BuildKit's first worker record in `Ping`),
   * its native one first: a frontend's BUILDPLATFORM. Left out, the frontend's own host is meant.
   */
  readonly workerPlatforms?: readonly Platform[];
  /** Solves a Definition and returns a ref to its result. */
  solve(request: SolveRequest): Promise<Ref>;
  /**
   * Runs another frontend and returns its whole result (refs and metadata), see
   * {@link SolveFrontendRequest}. The refs are this client's like those of {@link solve}: they
   * can be read, built on (their `definition`) and returned in this frontend's own result.
   * Optional: a client that cannot run frontends leaves it out, and a frontend that needs it
   * fails with its own error. The gateway bounds nesting (a frontend forwarding to itself).
   */
  solveFrontend?(request: SolveFrontendRequest): Promise<FrontendResult>;
  /**
   * Makes a container from results and mounts, to run processes in (BuildKit's gateway
   * `NewContainer`; a debugger's shell, a test runner streaming output). Optional: a client
   * without containers leaves it out. The build's end releases what the frontend did not.
   */
  newContainer?(request: NewContainerRequest): Promise<Container>;
  /** Reports a warning to the user (progress output); never fails the build. */
  warn(warning: FrontendWarning): void;
  /**
   * A line of the frontend's own output (a build file's `console.log`), shown in progress as an
   * external frontend's stderr is in BuildKit. Optional: a client may drop it.
   */
  log?(line: string): void;
  /** Cancels the frontend's work when aborted. */
  readonly signal?: AbortSignal;
}

/** A frontend: compiles a build description into a result through the {@link FrontendClient}. */
export type Frontend = (client: FrontendClient) => Promise<FrontendResult>;

/** Well-known metadata keys of a {@link FrontendResult}. */
export const ResultMetadataKey = {
  /** The image config JSON (`containerimage.config`). */
  imageConfig: 'containerimage.config',
  /** JSON list of platforms when `refs` is per-platform (`refs.platforms`). */
  platforms: 'refs.platforms',
  /**
   * kiln's own: image label values the exporter fills with layer diffIDs (the buildpacks
   * frontend's `io.buildpacks.lifecycle.metadata` shas), `/<platform>` per platform like the
   * config. BuildKit ignores it.
   */
  layerLabels: 'kiln.image.layer-labels',
} as const;

/**
 * The JSON value of {@link ResultMetadataKey.layerLabels}: a frontend asks the image exporter to
 * write layer diffIDs, which only the exporter knows, into label values of the image config (the
 * CNB `io.buildpacks.lifecycle.metadata` shas). Each label value is JSON; at each RFC 6901 pointer
 * in it, a string (left `""` by the frontend, so an exporter that ignores the key writes empty
 * shas) becomes the diffID of the given layer, counted from the top of the exported image
 * (0 = the topmost): the layers a frontend adds on a base image count the same whatever the base
 * holds. `check` names a layer whose diffID the frontend knows (the base image's top): when it
 * differs, or a layer is out of range (a merge was flattened into one layer), nothing is filled.
 * `kiln.image.layer-labels/<platform>` applies to one platform's ref, like the image config.
 */
export interface LayerLabelsRequest {
  /** label name -> JSON pointer -> layer index from the top. */
  readonly labels: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly check?: { readonly layer: number; readonly diffID: string };
}
