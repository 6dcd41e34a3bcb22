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
  /** `Platform.Architecture` (field 1). */
  readonly architecture?: string;
  /** `Platform.OS` (field 2). */
  readonly os?: string;
  /** `Platform.Variant` (field 3). */
  readonly variant?: string;
  /** `Platform.OSVersion` (field 4). */
  readonly osVersion?: string;
  /** `Platform.OSFeatures` (field 5). */
  readonly osFeatures?: readonly string[];
}

/** `pb.Input`: an edge to output `index` of the op with digest `digest`. */
export interface Input {
  /** Digest of the input op (`pb.Input.digest`, field 1). */
  readonly digest: Digest;
  /** Output index of that op (field 2); 0 is the first output. */
  readonly index: number;
}

/** `pb.WorkerConstraints`: containerd-style filters a worker must match. */
export interface WorkerConstraints {
  /** `WorkerConstraints.filter` (field 1): containerd-style filters. */
  readonly filter?: readonly string[];
}

/** `pb.ProxyEnv`. */
export interface ProxyEnv {
  /** `ProxyEnv.http_proxy` (field 1). */
  readonly httpProxy?: string;
  /** `ProxyEnv.https_proxy` (field 2). */
  readonly httpsProxy?: string;
  /** `ProxyEnv.ftp_proxy` (field 3). */
  readonly ftpProxy?: string;
  /** `ProxyEnv.no_proxy` (field 4). */
  readonly noProxy?: string;
  /** `ProxyEnv.all_proxy` (field 5). */
  readonly allProxy?: string;
}

/** `pb.HostIP`: an /etc/hosts entry. */
export interface HostIP {
  /** `HostIP.Host` (field 1). */
  readonly host?: string;
  /** `HostIP.IP` (field 2). */
  readonly ip?: string;
}

/** `pb.Ulimit`. */
export interface Ulimit {
  /** `Ulimit.Name` (field 1). */
  readonly name?: string;
  /** `Ulimit.Soft` (field 2). */
  readonly soft?: bigint;
  /** `Ulimit.Hard` (field 3). */
  readonly hard?: bigint;
}

/** `pb.Meta`: the process of an exec. */
export interface Meta {
  /** `Meta.args` (field 1): argv. */
  readonly args?: readonly string[];
  /** `Meta.env` (field 2): `KEY=value` entries. */
  readonly env?: readonly string[];
  /** `Meta.cwd` (field 3). */
  readonly cwd?: string;
  /** `Meta.user` (field 4). */
  readonly user?: string;
  /** `Meta.proxy_env` (field 5). */
  readonly proxyEnv?: ProxyEnv;
  /** `Meta.extraHosts` (field 6). */
  readonly extraHosts?: readonly HostIP[];
  /** `Meta.hostname` (field 7). */
  readonly hostname?: string;
  /** `Meta.ulimit` (field 9). */
  readonly ulimit?: readonly Ulimit[];
  /** `Meta.cgroupParent` (field 10). */
  readonly cgroupParent?: string;
  /** `Meta.removeMountStubsRecursive` (field 11). */
  readonly removeMountStubsRecursive?: boolean;
  /** `Meta.validExitCodes` (field 12): upstream addition. */
  readonly validExitCodes?: readonly number[];
}

/** `pb.TmpfsOpt`. */
export interface TmpfsOpt {
  /** `TmpfsOpt.size` (field 1): bytes. */
  readonly size?: bigint;
}
/** `pb.CacheOpt`. */
export interface CacheOpt {
  /** `CacheOpt.ID` (field 1). */
  readonly id?: string;
  /** `CacheOpt.sharing` (field 2): a `CacheSharingOpt`. */
  readonly sharing?: number;
}
/** `pb.SecretOpt`. */
export interface SecretOpt {
  /** `SecretOpt.ID` (field 1). */
  readonly id?: string;
  /** `SecretOpt.uid` (field 2). */
  readonly uid?: number;
  /** `SecretOpt.gid` (field 3). */
  readonly gid?: number;
  /** `SecretOpt.mode` (field 4). */
  readonly mode?: number;
  /** `SecretOpt.optional` (field 5). */
  readonly optional?: boolean;
}
/** `pb.SSHOpt`. */
export interface SSHOpt {
  /** `SSHOpt.ID` (field 1). */
  readonly id?: string;
  /** `SSHOpt.uid` (field 2). */
  readonly uid?: number;
  /** `SSHOpt.gid` (field 3). */
  readonly gid?: number;
  /** `SSHOpt.mode` (field 4). */
  readonly mode?: number;
  /** `SSHOpt.optional` (field 5). */
  readonly optional?: boolean;
}

/** `pb.Mount`. `input` -1 means scratch; `output` -1 means the mount produces no output. */
export interface Mount {
  /** `Mount.input` (field 1): input index, -1 for scratch. */
  readonly input?: number;
  /** `Mount.selector` (field 2): path within the input. */
  readonly selector?: string;
  /** `Mount.dest` (field 3): mount point. */
  readonly dest?: string;
  /** `Mount.output` (field 4): output index, -1 for none. */
  readonly output?: number;
  /** `Mount.readonly` (field 5). */
  readonly readonly?: boolean;
  /** `Mount.mountType` (field 6): a `MountType`. */
  readonly mountType?: number;
  /** `Mount.TmpfsOpt` (field 19). */
  readonly tmpfsOpt?: TmpfsOpt;
  /** `Mount.cacheOpt` (field 20). */
  readonly cacheOpt?: CacheOpt;
  /** `Mount.secretOpt` (field 21). */
  readonly secretOpt?: SecretOpt;
  /** `Mount.SSHOpt` (field 22). */
  readonly sshOpt?: SSHOpt;
  /** `Mount.resultID` (field 23). */
  readonly resultId?: string;
  /** `Mount.contentCache` (field 24): a `MountContentCache`; upstream addition. */
  readonly contentCache?: number;
}

/** `pb.SecretEnv`: an environment variable backed by a secret. */
export interface SecretEnv {
  /** `SecretEnv.ID` (field 1). */
  readonly id?: string;
  /** `SecretEnv.name` (field 2): environment variable name. */
  readonly name?: string;
  /** `SecretEnv.optional` (field 3). */
  readonly optional?: boolean;
}

/** `pb.CDIDevice` (upstream addition). */
export interface CDIDevice {
  /** `CDIDevice.name` (field 1). */
  readonly name?: string;
  /** `CDIDevice.optional` (field 2). */
  readonly optional?: boolean;
}

/** `pb.ExecOp`. */
export interface ExecOp {
  /** `ExecOp.meta` (field 1). */
  readonly meta?: Meta;
  /** `ExecOp.mounts` (field 2). */
  readonly mounts?: readonly Mount[];
  /** `ExecOp.network` (field 3): a `NetMode`. */
  readonly network?: number;
  /** `ExecOp.security` (field 4): a `SecurityMode`. */
  readonly security?: number;
  /** `ExecOp.secretenv` (field 5). */
  readonly secretenv?: readonly SecretEnv[];
  /** `ExecOp.cdiDevices` (field 6): upstream addition. */
  readonly cdiDevices?: readonly CDIDevice[];
}

/** `pb.SourceOp`: identifier such as `docker-image://…`, `local://…`, plus attributes. */
export interface SourceOp {
  /** `SourceOp.identifier` (field 1): e.g. `docker-image://…`. */
  readonly identifier?: string;
  /** `SourceOp.attrs` (field 2). */
  readonly attrs?: ReadonlyMap<string, string>;
}

/** `pb.NamedUserOpt`: a user or group name resolved against input `input`'s /etc files. */
export interface NamedUserOpt {
  /** `NamedUserOpt.name` (field 1). */
  readonly name?: string;
  /** `NamedUserOpt.input` (field 2): input whose /etc/passwd resolves the name. */
  readonly input?: number;
}

/** `pb.UserOpt`: the `user` oneof. `byId: 0` is a set value (root), distinct from absent. */
export type UserOpt =
  | { readonly kind: 'byName'; readonly byName: NamedUserOpt }
  | { readonly kind: 'byId'; readonly byId: number }
  | { readonly kind: 'none' };

/** `pb.ChownOpt`. */
export interface ChownOpt {
  /** `ChownOpt.user` (field 1). */
  readonly user?: UserOpt;
  /** `ChownOpt.group` (field 2). */
  readonly group?: UserOpt;
}

/** `pb.FileActionCopy`. */
export interface FileActionCopy {
  /** `FileActionCopy.src` (field 1). */
  readonly src?: string;
  /** `FileActionCopy.dest` (field 2). */
  readonly dest?: string;
  /** `FileActionCopy.owner` (field 3). */
  readonly owner?: ChownOpt;
  /** `FileActionCopy.mode` (field 4): -1 keeps the source mode. */
  readonly mode?: number;
  /** `FileActionCopy.followSymlink` (field 5). */
  readonly followSymlink?: boolean;
  /** `FileActionCopy.dirCopyContents` (field 6). */
  readonly dirCopyContents?: boolean;
  /** `FileActionCopy.attemptUnpackDockerCompatibility` (field 7). */
  readonly attemptUnpackDockerCompatibility?: boolean;
  /** `FileActionCopy.createDestPath` (field 8). */
  readonly createDestPath?: boolean;
  /** `FileActionCopy.allowWildcard` (field 9). */
  readonly allowWildcard?: boolean;
  /** `FileActionCopy.allowEmptyWildcard` (field 10). */
  readonly allowEmptyWildcard?: boolean;
  /** `FileActionCopy.timestamp` (field 11): nanoseconds, -1 for none. */
  readonly timestamp?: bigint;
  /** `FileActionCopy.include_patterns` (field 12). */
  readonly includePatterns?: readonly string[];
  /** `FileActionCopy.exclude_patterns` (field 13). */
  readonly excludePatterns?: readonly string[];
  /** `FileActionCopy.alwaysReplaceExistingDestPaths` (field 14). */
  readonly alwaysReplaceExistingDestPaths?: boolean;
  /** `FileActionCopy.modeStr` (field 15): upstream addition. */
  readonly modeStr?: string;
  /** `FileActionCopy.required_paths` (field 16): upstream addition. */
  readonly requiredPaths?: readonly string[];
}

/** `pb.FileActionMkFile`. */
export interface FileActionMkFile {
  /** `FileActionMkFile.path` (field 1). */
  readonly path?: string;
  /** `FileActionMkFile.mode` (field 2). */
  readonly mode?: number;
  /** `FileActionMkFile.data` (field 3). */
  readonly data?: Uint8Array;
  /** `FileActionMkFile.owner` (field 4). */
  readonly owner?: ChownOpt;
  /** `FileActionMkFile.timestamp` (field 5): nanoseconds, -1 for none. */
  readonly timestamp?: bigint;
}

/** `pb.FileActionMkDir`. */
export interface FileActionMkDir {
  /** `FileActionMkDir.path` (field 1). */
  readonly path?: string;
  /** `FileActionMkDir.mode` (field 2). */
  readonly mode?: number;
  /** `FileActionMkDir.makeParents` (field 3). */
  readonly makeParents?: boolean;
  /** `FileActionMkDir.owner` (field 4). */
  readonly owner?: ChownOpt;
  /** `FileActionMkDir.timestamp` (field 5): nanoseconds, -1 for none. */
  readonly timestamp?: bigint;
}

/** `pb.FileActionRm`. */
export interface FileActionRm {
  /** `FileActionRm.path` (field 1). */
  readonly path?: string;
  /** `FileActionRm.allowNotFound` (field 2). */
  readonly allowNotFound?: boolean;
  /** `FileActionRm.allowWildcard` (field 3). */
  readonly allowWildcard?: boolean;
}

/** `pb.FileActionSymlink` (upstream addition). */
export interface FileActionSymlink {
  /** `FileActionSymlink.oldpath` (field 1): link target. */
  readonly oldpath?: string;
  /** `FileActionSymlink.newpath` (field 2): link path. */
  readonly newpath?: string;
  /** `FileActionSymlink.owner` (field 3). */
  readonly owner?: ChownOpt;
  /** `FileActionSymlink.timestamp` (field 4). */
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
  /** `FileAction.input` (field 1). */
  readonly input?: number;
  /** `FileAction.secondaryInput` (field 2). */
  readonly secondaryInput?: number;
  /** `FileAction.output` (field 3). */
  readonly output?: number;
  /** The the `action` oneof (fields 4-8).. */
  readonly action: FileActionBody;
}

/** `pb.FileOp`. */
export interface FileOp {
  /** `FileOp.actions` (field 2). */
  readonly actions?: readonly FileOpAction[];
}

/** `pb.BuildInput`. */
export interface BuildInput {
  /** `BuildInput.input` (field 1). */
  readonly input?: number;
}

/** `pb.BuildOp` (experimental nested build). */
export interface BuildOp {
  /** `BuildOp.builder` (field 1): -1: the LLB builder. */
  readonly builder?: number;
  /** `BuildOp.inputs` (field 2). */
  readonly inputs?: ReadonlyMap<string, BuildInput>;
  /** `BuildOp.def` (field 3). */
  readonly def?: PbDefinition;
  /** `BuildOp.attrs` (field 4). */
  readonly attrs?: ReadonlyMap<string, string>;
}

/** `pb.MergeOp`. */
export interface MergeOp {
  /** `MergeOp.inputs` (field 1). */
  readonly inputs?: readonly { readonly input?: number }[];
}

/** `pb.DiffOp`. */
export interface DiffOp {
  /** `DiffOp.lower` (field 1). */
  readonly lower?: { readonly input?: number };
  /** `DiffOp.upper` (field 2). */
  readonly upper?: { readonly input?: number };
}

/** Fields every op kind shares (`pb.Op` outside the oneof). */
export interface OpCommon {
  /** Input edges (`pb.Op.inputs`, field 1). */
  readonly inputs: readonly Input[];
  /** Platform the op runs for (field 10); absent on merge, diff and most sources. */
  readonly platform?: PbPlatform | undefined;
  /** Worker constraints (field 11); present, possibly empty, on every op but the terminal. */
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
  /** `ExportCache.Value` (field 1). */
  readonly value?: boolean;
}

/** `pb.ProgressGroup`. */
export interface ProgressGroup {
  /** `ProgressGroup.id` (field 1). */
  readonly id?: string;
  /** `ProgressGroup.name` (field 2). */
  readonly name?: string;
  /** `ProgressGroup.weak` (field 3). */
  readonly weak?: boolean;
}

/** `pb.OpMetadata`: per-op data that is not part of the op digest. */
export interface OpMetadata {
  /** `OpMetadata.ignore_cache` (field 1). */
  readonly ignoreCache?: boolean;
  /** `OpMetadata.description` (field 2): e.g. `llb.customname`. */
  readonly description?: ReadonlyMap<string, string>;
  /** `OpMetadata.export_cache` (field 4). */
  readonly exportCache?: ExportCache;
  /** `OpMetadata.caps` (field 5). */
  readonly caps?: ReadonlyMap<string, boolean>;
  /** `OpMetadata.progress_group` (field 6). */
  readonly progressGroup?: ProgressGroup;
}

/** `pb.Position` (1-based line, 0-based character as BuildKit records them). */
export interface Position {
  /** `Position.line` (field 1). */
  readonly line?: number;
  /** `Position.character` (field 2). */
  readonly character?: number;
}
/** `pb.Range`; both ends are always present on the wire (gogo non-nullable). */
export interface Range {
  /** `Range.start` (field 1). */
  readonly start: Position;
  /** `Range.end` (field 2). */
  readonly end: Position;
}
/** `pb.Location`. */
export interface Location {
  /** `Location.sourceIndex` (field 1): index into `Source.infos`. */
  readonly sourceIndex?: number;
  /** `Location.ranges` (field 2). */
  readonly ranges?: readonly Range[];
}
/** `pb.Locations`. */
export interface Locations {
  /** `Locations.locations` (field 1). */
  readonly locations?: readonly Location[];
}
/** `pb.SourceInfo`: one source file of a source map. */
export interface SourceInfo {
  /** `SourceInfo.filename` (field 1). */
  readonly filename?: string;
  /** `SourceInfo.data` (field 2). */
  readonly data?: Uint8Array;
  /** `SourceInfo.definition` (field 3). */
  readonly definition?: PbDefinition;
  /** `SourceInfo.language` (field 4). */
  readonly language?: string;
}
/** `pb.Source`: the source map of a definition, keyed by op digest. */
export interface Source {
  /** `Source.locations` (field 1): by op digest. */
  readonly locations?: ReadonlyMap<string, Locations>;
  /** `Source.infos` (field 2). */
  readonly infos?: readonly SourceInfo[];
}

/**
 * `pb.Definition`: the marshaled graph. `def` holds each op's exact bytes (its digest is
 * the sha256 of those bytes); the last entry is the terminal op. Metadata and source
 * maps are keyed by op digest and are not part of any digest.
 */
export interface Definition {
  /** `Definition.def` (field 1): marshaled ops; the last is the terminal. */
  readonly def: readonly Uint8Array[];
  /** `Definition.metadata` (field 2): by op digest. */
  readonly metadata: ReadonlyMap<Digest, OpMetadata>;
  /** `Definition.Source` (field 3). */
  readonly source?: Source;
}

/** A definition nested in another message (`BuildOp.def`, `SourceInfo.definition`). */
export type PbDefinition = Definition;
