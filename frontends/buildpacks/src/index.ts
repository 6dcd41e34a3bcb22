/**
 * @kiln/buildpacks: the Cloud Native Buildpacks frontend `kiln/buildpacks`. kiln is the
 * lifecycle: detect and build run as ExecOps, the app image is a merge of the run image, the
 * launch layers, the app and a POSIX-sh launcher.
 * @packageDocumentation
 */
export { BuildpacksError, type BuildpacksErrorCode, type BuildpacksLocation } from './errors.js';
export {
  readBuildpackToml,
  readOrderToml,
  readSystemToml,
  readRunToml,
  readDetectPlan,
  readLayerToml,
  readLaunchToml,
  readBuildToml,
  readStoreToml,
  type BuildpackDescriptor,
  type GroupEntry,
  type Order,
  type SystemGroups,
  type PlanRequire,
  type PlanSections,
  type DetectPlan,
  type LayerMetadata,
  type ProcessType,
  type LaunchToml,
} from './descriptors.js';
export { readProjectToml, gitignoreToPatterns, type ProjectDescriptor, type ProjectBuildpack } from './project-toml.js';
export { resolveOrder, lookupIn, entryKey, type BuildpackLookup, type ResolvedEntry, type OrderInput } from './order.js';
export { resolveGroup, DETECT_PASS, DETECT_FAIL, type DetectRun, type PlanEntry, type GroupResolution } from './detect-resolve.js';
export { applyEnvOps, envDirOps, rootDirOps, withPlatformEnv, BUILD_ROOT_DIRS, LAUNCH_ROOT_DIRS, PATH_VARS, BUILD_ENV_ALLOWLIST, type EnvOp } from './env.js';
export { launcherScript, type LauncherSpec } from './launcher.js';
export { createBuildpacksFrontend } from './frontend.js';
export { BUILDPACKS_FRONTEND, DEFAULT_PROJECT_FILE, selectsBuildpacks } from './wire.js';
export { CnbLabel, RUN_IMAGE_LABEL_PREFIXES, readRunImageMetadata, type RunImageMetadata } from './image-labels.js';
