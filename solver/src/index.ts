/**
 * @kiln/solver: turns LLB into vertices, computes BuildKit-model cache keys, runs ops on a
 * worker in parallel, and reports progress.
 */
export { SolverError, throwIfCancelled, untilAborted, type SolverErrorCode, type SolverErrorOptions, type SourceLocation } from './errors.js';
export {
  ProgressStream,
  ProgressFanout,
  discardProgress,
  type ProgressEvent,
  type ProgressSink,
  type VertexStartedEvent,
  type VertexCachedEvent,
  type VertexDoneEvent,
  type VertexErrorEvent,
  type VertexLogEvent,
  type VertexStatusEvent,
} from './progress/events.js';
export { formatBytes, formatSeconds, type ProgressOutput, type ProgressRenderer } from './progress/output.js';
export { PlainRenderer } from './progress/plain.js';
export { TtyRenderer, type TtyRendererOptions } from './progress/tty.js';
export { RawJsonRenderer } from './progress/rawjson.js';
export { createRenderer, renderProgress, type ProgressMode } from './progress/render.js';
export { DEFAULT_STEP_LOG_LIMITS, stepLogLimitsFromEnv, type StepLogLimits } from './progress/step-log-limit.js';
export { parseDockerignore, readDockerignore, type DockerignoreResult } from './local/dockerignore.js';
export { walkLocal, followLinks, type LocalEntry, type LocalStat, type LocalFilter } from './local/walk.js';
export { ContentHashTree, hashFile, type ChecksumOptions, type HashedEntry, type RecordType } from './contenthash/tree.js';
export { tarsumHeaderHash, headerDigest, EMPTY_DIGEST } from './contenthash/tarsum.js';
export { goPathMatch } from './contenthash/go-path-match.js';
export { syncLocalSource, type SyncLocalOptions, type SyncLocalResult, type SyncLocalStats } from './local/sync.js';
export { CacheKey, rootKey, slowCacheKey, digestFromBytes, type CacheKeyWithSelector } from './cache/cache-key.js';
export { CacheManager, type CacheMatch, type ImportedMatch } from './cache/cache-manager.js';
export {
  CACHE_CONFIG_MEDIA_TYPE,
  INLINE_CACHE_KEY,
  ANNOTATION_UNCOMPRESSED,
  ANNOTATION_CREATED_AT,
  EMPTY_GZ_LAYER,
  goTime,
  marshalCacheConfig,
  marshalCacheRecords,
  parseCacheConfig,
  parseCacheRecords,
  layerChain,
  type CacheConfig,
  type CacheConfigLayer,
  type CacheConfigRecord,
  type CacheConfigInput,
  type CacheConfigResult,
  type CacheLayerAnnotations,
  type CacheLayerDescriptor,
} from './cache/remote-config.js';
export { CacheChains, ChainRecord, sortConfig, type ChainResult, type MarshaledCache } from './cache/remote-chains.js';
export { ImportedCache, isImportedId, type CacheBlobOpener, type ImportedBacklink, type ImportedResult } from './cache/remote-import.js';
export { addCacheKeyChains, backlinkSource, type BacklinkSource, type CacheExportMode, type ResolveChainResult } from './cache/remote-export.js';
export {
  CacheStore,
  selectPruneVictims,
  type CacheStoreOptions,
  type CacheLink,
  type CacheResultRecord,
  type CacheRecordKind,
  type DiskUsageRecord,
  type PruneOptions,
  type ReleaseSnapshotHook,
} from './cache/store.js';
export { Scheduler, defaultParallelism, type SchedulerOptions } from './scheduler/scheduler.js';
export { Semaphore } from './scheduler/semaphore.js';
export { VertexError, type VertexErrorInfo } from './scheduler/vertex-error.js';
export type {
  SolverVertex,
  SolverEdge,
  VertexOptions,
  WorkerRef,
  CacheMap,
  CacheMapDep,
  OpContext,
  Op,
  OpResourceClass,
  ResolveOp,
  BuildOptions,
  BuildResult,
  KeyResult,
  LoadImportedResult,
  SessionAttachables,
  SessionGroup,
} from './scheduler/types.js';
export { Solver, type SolverOptions, type SolveOptions } from './solver.js';
export { loadGraph, defaultName, type LoadedGraph, type LoadGraphOptions } from './llb/load.js';
export { SourcePolicyError, type SourcePolicyErrorCode, type SourcePolicyErrorOptions } from './policy/errors.js';
export {
  parseSourcePolicy,
  type SourcePolicy,
  type PolicyRule,
  type PolicySelector,
  type PolicyUpdate,
  type PolicyAction,
  type MatchType,
  type AttrMatch,
  type AttrConstraint,
} from './policy/policy.js';
export { SourcePolicyEngine, redactIdentifier, type PolicySource, type PolicyDecision } from './policy/engine.js';
export { applySourcePolicy } from './policy/apply.js';
export { readSourcePolicyFile, SOURCE_POLICY_ENV } from './policy/file.js';
export { resolveLlbOp } from './llb/ops.js';
export { ExecFailedError, type FailedExecState, type FailedExecMount, type FailedExecSecretEnv, type Worker, type WorkerOpContext } from './llb/worker.js';
export { execCacheMap, fileCacheMap, sourceCacheMap, plainCacheMap, contentHashFunc, defaultPlatform, type Selector, type ChecksumFn } from './llb/cache-map.js';
export { RuntimeWorker } from './worker/runtime-worker.js';
export type { RuntimeWorkerDeps } from './worker/deps.js';
export { EMPTY_SNAPSHOT, chainIds, removeLocalMirrors, type PrefetchImageOptions } from './worker/sources.js';
export { ensureLayer, layerSnapshotId, type EnsureLayerOptions, type EnsuredLayer, type LayerChainDeps } from './worker/layer-chain.js';
export { withFileLock, pidAlive } from './worker/file-lock.js';
export { gitRepoUsage, removeGitRepo, type GitRepoUsage } from './worker/git.js';
// Cache mount directories with BuildKit's sharing modes: RUN --mount=type=cache and a frontend's containers share them.
export { CacheMounts, type AcquiredCacheMount } from './worker/cache-mounts.js';
export { checkExecPlatform, emulatedCommand, type ExecEmulation, type ExecPlatformOptions } from './worker/exec-platform.js';
export { foreignProgramError } from './worker/exec-foreign.js';
