/**
 * @kiln/llb-core: BuildKit's LLB in TypeScript. The Op model and byte-exact codec,
 * graph loading, the dump-llb JSON and DOT views, and the immutable State API.
 * @packageDocumentation
 */
export { LlbError, type LlbErrorCode } from './errors.js';
export { type Digest, digestOf, parseDigest } from './digest.js';
export {
  NetMode,
  SecurityMode,
  MountType,
  MountContentCache,
  CacheSharingOpt,
  type PbPlatform,
  type Input,
  type WorkerConstraints,
  type ProxyEnv,
  type HostIP,
  type Ulimit,
  type Meta,
  type TmpfsOpt,
  type CacheOpt,
  type SecretOpt,
  type SSHOpt,
  type Mount,
  type SecretEnv,
  type CDIDevice,
  type ExecOp,
  type SourceOp,
  type NamedUserOpt,
  type UserOpt,
  type ChownOpt,
  type FileActionCopy,
  type FileActionMkFile,
  type FileActionMkDir,
  type FileActionRm,
  type FileActionSymlink,
  type FileActionBody,
  type FileAction,
  type FileOp,
  type BuildInput,
  type BuildOp,
  type MergeOp,
  type DiffOp,
  type OpCommon,
  type Op,
  type OpKind,
  type ExportCache,
  type ProgressGroup,
  type OpMetadata,
  type Position,
  type Range,
  type Location,
  type Locations,
  type SourceInfo,
  type Source,
  type Definition,
  type PbDefinition,
} from './op.js';
export { decodeOp, encodeOp } from './pb/op-codec.js';
export { decodeDefinition, encodeDefinition, decodeOpMetadata, encodeOpMetadata } from './pb/definition-codec.js';
export {
  type LlbVertex,
  type VertexInput,
  type LoadedDefinition,
  loadDefinition,
  validateDefinition,
  linkOps,
} from './graph.js';
export { definitionToJsonLines, opJson, opMetadataJson } from './json-view.js';
export { definitionToDot } from './dot-view.js';
