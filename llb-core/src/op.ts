/**
 * The LLB data model: hand-written TypeScript mirrors of BuildKit's `solver/pb/ops.proto`
 * (v0.11.6 plus the fields added upstream since). Every type is a plain readonly value;
 * the wire codec lives in `pb/`. Optional scalar fields that are absent mean the proto3
 * zero value (`''`, `0`, `false`), exactly as on the wire. int64 fields that index into
 * input lists are `number`; int64 fields that can exceed 2^53 (timestamps, sizes,
 * ulimits) are `bigint`.
 */
import type { Digest } from './digest.js';

/** `pb.NetMode`: the network namespace of an exec. */
export const NetMode = { UNSET: 0, HOST: 1, NONE: 2, SESSION: 3 } as const;
/** `pb.SecurityMode`: sandboxed or privileged exec. */
export const SecurityMode = { SANDBOX: 0, INSECURE: 1 } as const;
/** `pb.MountType`. */
export const MountType = { BIND: 0, SECRET: 1, SSH: 2, CACHE: 3, TMPFS: 4 } as const;
/** `pb.MountContentCache`. */
export const MountContentCache = { DEFAULT: 0, ON: 1, OFF: 2 } as const;
/** `pb.CacheSharingOpt`. */
export const CacheSharingOpt = { SHARED: 0, PRIVATE: 1, LOCKED: 2 } as const;

/** `pb.Platform` (OCI image-spec platform). */
export interface PbPlatform {
  readonly architecture?: string;
  readonly os?: string;
  readonly variant?: string;
  readonly osVersion?: string;
  readonly osFeatures?: readonly string[];
}

/** `pb.Input`: an edge to output `index` of the op with digest `digest`. */
export interface Input {
  readonly digest: Digest;
  readonly index: number;
}

/** `pb.WorkerConstraints`: containerd-style filters a worker must match. */
export interface WorkerConstraints {
  readonly filter?: readonly string[];
}

/** `pb.ProxyEnv`. */
export interface ProxyEnv {
  readonly httpProxy?: string;
  readonly httpsProxy?: string;
  readonly ftpProxy?: string;
  readonly noProxy?: string;
  readonly allProxy?: string;
}

/** `pb.HostIP`: an /etc/hosts entry. */
export interface HostIP {
  readonly host?: string;
  readonly ip?: string;
}

/** `pb.Ulimit`. */
export interface Ulimit {
  readonly name?: string;
  readonly soft?: bigint;
  readonly hard?: bigint;
}

/** `pb.Meta`: the process of an exec. */
export interface Meta {
  readonly args?: readonly string[];
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly user?: string;
  readonly proxyEnv?: ProxyEnv;
  readonly extraHosts?: readonly HostIP[];
  readonly hostname?: string;
  readonly ulimit?: readonly Ulimit[];
  readonly cgroupParent?: string;
  readonly removeMountStubsRecursive?: boolean;
  readonly validExitCodes?: readonly number[];
}

/** `pb.TmpfsOpt`. */
export interface TmpfsOpt {
  readonly size?: bigint;
}
/** `pb.CacheOpt`. */
export interface CacheOpt {
  readonly id?: string;
  readonly sharing?: number;
}
/** `pb.SecretOpt`. */
export interface SecretOpt {
  readonly id?: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly mode?: number;
  readonly optional?: boolean;
}
/** `pb.SSHOpt`. */
export interface SSHOpt {
  readonly id?: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly mode?: number;
  readonly optional?: boolean;
}

/** `pb.Mount`. `input` -1 means scratch; `output` -1 means the mount produces no output. */
export interface Mount {
  readonly input?: number;
  readonly selector?: string;
  readonly dest?: string;
  readonly output?: number;
  readonly readonly?: boolean;
  readonly mountType?: number;
  readonly tmpfsOpt?: TmpfsOpt;
  readonly cacheOpt?: CacheOpt;
  readonly secretOpt?: SecretOpt;
  readonly sshOpt?: SSHOpt;
  readonly resultId?: string;
  readonly contentCache?: number;
}

/** `pb.SecretEnv`: an environment variable backed by a secret. */
export interface SecretEnv {
  readonly id?: string;
  readonly name?: string;
  readonly optional?: boolean;
}

/** `pb.CDIDevice` (upstream addition). */
export interface CDIDevice {
  readonly name?: string;
  readonly optional?: boolean;
}

/** `pb.ExecOp`. */
export interface ExecOp {
  readonly meta?: Meta;
  readonly mounts?: readonly Mount[];
  readonly network?: number;
  readonly security?: number;
  readonly secretenv?: readonly SecretEnv[];
  readonly cdiDevices?: readonly CDIDevice[];
}

/** `pb.SourceOp`: identifier such as `docker-image://…`, `local://…`, plus attributes. */
export interface SourceOp {
  readonly identifier?: string;
  readonly attrs?: ReadonlyMap<string, string>;
}

/** `pb.NamedUserOpt`: a user or group name resolved against input `input`'s /etc files. */
export interface NamedUserOpt {
  readonly name?: string;
  readonly input?: number;
}

/** `pb.UserOpt`: the `user` oneof. `byId: 0` is a set value (root), distinct from absent. */
export type UserOpt =
  | { readonly kind: 'byName'; readonly byName: NamedUserOpt }
  | { readonly kind: 'byId'; readonly byId: number }
  | { readonly kind: 'none' };

/** `pb.ChownOpt`. */
export interface ChownOpt {
  readonly user?: UserOpt;
  readonly group?: UserOpt;
}

/** `pb.FileActionCopy`. */
export interface FileActionCopy {
  readonly src?: string;
  readonly dest?: string;
  readonly owner?: ChownOpt;
  readonly mode?: number;
  readonly followSymlink?: boolean;
  readonly dirCopyContents?: boolean;
  readonly attemptUnpackDockerCompatibility?: boolean;
  readonly createDestPath?: boolean;
  readonly allowWildcard?: boolean;
  readonly allowEmptyWildcard?: boolean;
  readonly timestamp?: bigint;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
  readonly alwaysReplaceExistingDestPaths?: boolean;
  readonly modeStr?: string;
  readonly requiredPaths?: readonly string[];
}

/** `pb.FileActionMkFile`. */
export interface FileActionMkFile {
  readonly path?: string;
  readonly mode?: number;
  readonly data?: Uint8Array;
  readonly owner?: ChownOpt;
  readonly timestamp?: bigint;
}

/** `pb.FileActionMkDir`. */
export interface FileActionMkDir {
  readonly path?: string;
  readonly mode?: number;
  readonly makeParents?: boolean;
  readonly owner?: ChownOpt;
  readonly timestamp?: bigint;
}

/** `pb.FileActionRm`. */
export interface FileActionRm {
  readonly path?: string;
  readonly allowNotFound?: boolean;
  readonly allowWildcard?: boolean;
}

/** `pb.FileActionSymlink` (upstream addition). */
export interface FileActionSymlink {
  readonly oldpath?: string;
  readonly newpath?: string;
  readonly owner?: ChownOpt;
  readonly timestamp?: bigint;
}

/** The `action` oneof of `pb.FileOpAction`. */
export type FileActionBody =
  | { readonly kind: 'copy'; readonly copy: FileActionCopy }
  | { readonly kind: 'mkfile'; readonly mkfile: FileActionMkFile }
  | { readonly kind: 'mkdir'; readonly mkdir: FileActionMkDir }
  | { readonly kind: 'rm'; readonly rm: FileActionRm }
  | { readonly kind: 'symlink'; readonly symlink: FileActionSymlink }
  | { readonly kind: 'none' };

/**
 * `pb.FileOpAction`. `input`/`secondaryInput` index the op's inputs, or, at
 * `inputs.length + i`, the result of action `i`; -1 means none/scratch.
 * `output` -1 means the action's result is not an op output.
 */
export interface FileOpAction {
  readonly input?: number;
  readonly secondaryInput?: number;
  readonly output?: number;
  readonly action: FileActionBody;
}

/** `pb.FileOp`. */
export interface FileOp {
  readonly actions?: readonly FileOpAction[];
}

/** `pb.BuildInput`. */
export interface BuildInput {
  readonly input?: number;
}

/** `pb.BuildOp` (experimental nested build). */
export interface BuildOp {
  readonly builder?: number;
  readonly inputs?: ReadonlyMap<string, BuildInput>;
  readonly def?: PbDefinition;
  readonly attrs?: ReadonlyMap<string, string>;
}

/** `pb.MergeOp`. */
export interface MergeOp {
  readonly inputs?: readonly { readonly input?: number }[];
}

/** `pb.DiffOp`. */
export interface DiffOp {
  readonly lower?: { readonly input?: number };
  readonly upper?: { readonly input?: number };
}

/** Fields every op kind shares (`pb.Op` outside the oneof). */
export interface OpCommon {
  readonly inputs: readonly Input[];
  readonly platform?: PbPlatform | undefined;
  readonly constraints?: WorkerConstraints | undefined;
}

/**
 * `pb.Op`: a vertex of the LLB graph, a discriminated union over the `op` oneof.
 * `kind: 'none'` is an op without a body; BuildKit uses it as the terminal op
 * (one input, the build result) at the end of `Definition.def`.
 */
export type Op =
  | (OpCommon & { readonly kind: 'exec'; readonly exec: ExecOp })
  | (OpCommon & { readonly kind: 'source'; readonly source: SourceOp })
  | (OpCommon & { readonly kind: 'file'; readonly file: FileOp })
  | (OpCommon & { readonly kind: 'build'; readonly build: BuildOp })
  | (OpCommon & { readonly kind: 'merge'; readonly merge: MergeOp })
  | (OpCommon & { readonly kind: 'diff'; readonly diff: DiffOp })
  | (OpCommon & { readonly kind: 'none' });

/** The op kinds, i.e. the values of {@link Op}'s `kind`. */
export type OpKind = Op['kind'];

/** `pb.ExportCache`. */
export interface ExportCache {
  readonly value?: boolean;
}

/** `pb.ProgressGroup`. */
export interface ProgressGroup {
  readonly id?: string;
  readonly name?: string;
  readonly weak?: boolean;
}

/** `pb.OpMetadata`: per-op data that is not part of the op digest. */
export interface OpMetadata {
  readonly ignoreCache?: boolean;
  readonly description?: ReadonlyMap<string, string>;
  readonly exportCache?: ExportCache;
  readonly caps?: ReadonlyMap<string, boolean>;
  readonly progressGroup?: ProgressGroup;
}

/** `pb.Position` (1-based line, 0-based character as BuildKit records them). */
export interface Position {
  readonly line?: number;
  readonly character?: number;
}
/** `pb.Range`; both ends are always present on the wire (gogo non-nullable). */
export interface Range {
  readonly start: Position;
  readonly end: Position;
}
/** `pb.Location`. */
export interface Location {
  readonly sourceIndex?: number;
  readonly ranges?: readonly Range[];
}
/** `pb.Locations`. */
export interface Locations {
  readonly locations?: readonly Location[];
}
/** `pb.SourceInfo`: one source file of a source map. */
export interface SourceInfo {
  readonly filename?: string;
  readonly data?: Uint8Array;
  readonly definition?: PbDefinition;
  readonly language?: string;
}
/** `pb.Source`: the source map of a definition, keyed by op digest. */
export interface Source {
  readonly locations?: ReadonlyMap<string, Locations>;
  readonly infos?: readonly SourceInfo[];
}

/**
 * `pb.Definition`: the marshaled graph. `def` holds each op's exact bytes (its digest is
 * the sha256 of those bytes); the last entry is the terminal op. Metadata and source
 * maps are keyed by op digest and are not part of any digest.
 */
export interface Definition {
  readonly def: readonly Uint8Array[];
  readonly metadata: ReadonlyMap<Digest, OpMetadata>;
  readonly source?: Source;
}

/** A definition nested in another message (`BuildOp.def`, `SourceInfo.definition`). */
export type PbDefinition = Definition;
