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
  type FileOpAction,
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
export { definitionToJsonLines, definitionJsonLineChunks, opJson, opMetadataJson } from './json-view.js';
export { definitionToDot } from './dot-view.js';
export {
  type Platform,
  parsePlatform,
  formatPlatform,
  normalizePlatform,
  defaultPlatform,
  platformToPb,
  platformFromPb,
  platformEquals,
} from './platform.js';
export {
  type ImageConfig,
  type ImageConfigConfig,
  type HealthConfig,
  type ImageHistory,
  type ResolveMode,
  type ResolvedImageConfig,
  type ResolveImageConfigOptions,
  type ImageMetaResolver,
  parseImageConfig,
} from './image-config.js';
export {
  type ImageReference,
  parseImageReference,
  formatImageReference,
  tagNameOnly,
  normalizeImageReference,
} from './reference.js';
export {
  State,
  ExecState,
  scratch,
  type StateValues,
  type NetworkMode,
  type SecurityModeName,
  type ExtraHost,
  type UlimitSpec,
} from './state/state.js';
export { SourceMap, type SourceLocation, type ConstraintsOptions } from './state/constraints.js';
export type { RunOptions, MountSpec, SecretSpec, SSHSpec, CacheSharing } from './state/exec.js';
export { defaultPathEnv } from './state/exec.js';
export {
  FileAction,
  FileActionWithState,
  mkdir,
  mkfile,
  rm,
  copy,
  symlink,
  type ChownSpec,
  type CreatedTime,
  type MkdirOptions,
  type MkfileOptions,
  type RmOptions,
  type SymlinkOptions,
  type CopyOptions,
} from './state/file.js';
export {
  image,
  resolveImage,
  local,
  git,
  http,
  ociLayout,
  type ImageOptions,
  type ResolveImageOptions,
  type LocalOptions,
  type GitOptions,
  type HttpOptions,
  type OCILayoutOptions,
} from './state/source.js';
export { merge, diff } from './state/merge-diff.js';
export type { BuildOptions } from './state/build.js';
export type { MarshalOptions } from './state/marshal.js';
export { Caps, CAPS_V0_11_6 } from './state/caps.js';
export { Attr, Scheme } from './state/attrs.js';
export { shlexSplit } from './state/shlex.js';
export {
  type FileStat,
  type ReadFileOptions,
  type Ref,
  type SolveRequest,
  type SolveFrontendRequest,
  type FrontendResult,
  type FrontendAttestation,
  type AttestationKind,
  type AttestationSubject,
  AttestationMetadataKey,
  type FrontendWarning,
  type FrontendClient,
  type Frontend,
  type LayerLabelsRequest,
  type ContainerMount,
  type NewContainerRequest,
  type ContainerProcessRequest,
  type OutputSink,
  type ContainerProcess,
  type Container,
  ResultMetadataKey,
} from './frontend.js';
export { fromDefinition } from './state/definition-op.js';
export { cleanPath, joinPath } from './state/paths.js';
// moby/patternmatcher: .dockerignore and include/exclude patterns, shared by the Dockerfile
// frontend (the ignore file, the CopyIgnoredFile check) and the solver (local context walks).
export { PatternMatcher, Pattern, matches, matchesOrParentMatches, NO_MATCH_INFO, type MatchInfo } from './patternmatcher/pattern-matcher.js';
export { parseDockerignore } from './patternmatcher/ignorefile.js';
export { suggest } from './suggest.js';
export { findJsonSyntaxError, type JsonSyntaxError } from './json-syntax.js';
export { parseGoDuration, formatGoDuration } from './go-duration.js';
export { ImageConfigValueError, parsePortSpecs, parseSignal } from './image-config-values.js';
