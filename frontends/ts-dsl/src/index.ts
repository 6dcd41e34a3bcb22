/**
 * @kiln/ts-dsl: builds written in TypeScript. The DSL (`kiln` / `kiln/ts` inside a build
 * file) lowers onto `@kiln/llb-core`'s State, so the LLB is op-for-op what Go's `client/llb`
 * writes.
 * @packageDocumentation
 */
export {
  State,
  Exec,
  image,
  scratch,
  local,
  git,
  http,
  ociLayout,
  merge,
  diff,
  cache,
  secret,
  bind,
  tmpfs,
  ssh,
  sh,
  Sh,
  ImageResult,
  PlatformResults,
  marshal,
  shellQuote,
  type ImageSpec,
  type Healthcheck,
  type ImageOpts,
  type LocalOpts,
  type GitOpts,
  type HttpOpts,
  type CopyOpts,
  type MkdirOpts,
  type MkfileOpts,
  type RmOpts,
  type Mount,
  type Ref,
  type FileInfo,
  type ResolvedImage,
  type SingleResult,
  type Ctx,
  type Build,
  type Target,
  type TargetBuild,
  type TargetSpec,
  type Targets,
  type BuildResult,
  type RunOpts,
  type Command,
  type MarshalOpts,
} from './dsl/index.js';
export { TsDslError, type TsDslErrorCode, type TsDslLocation } from './errors.js';
export { createTsFrontend, DEFAULT_BUILD_FILE, type TsFrontendOptions } from './frontend.js';
export { compileBuildFile, directoryReader, type CompileOptions, type CompiledBuild } from './compile.js';
export type { SourceReader } from './load/bundle.js';
export { checkBuildFile, formatCheckDiagnostic, type CheckDiagnostic } from './check.js';
