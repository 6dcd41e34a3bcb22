/**
 * The library a `kiln.build.ts` imports as `kiln` (or `kiln/ts`): sources, State, mounts, the
 * `sh` tag, merge/diff and the build-function types.
 * @packageDocumentation
 */
export { State, Exec, type BaseImage, type CopyOpts, type MkdirOpts, type MkfileOpts, type RmOpts } from './state.js';
export { image, scratch, local, git, http, ociLayout, type ImageOpts, type LocalOpts, type GitOpts, type HttpOpts } from './sources.js';
export { merge, diff } from './graph.js';
export { cache, secret, bind, tmpfs, ssh, type Mount, type CacheMount, type SecretMount, type BindMount, type TmpfsMount, type SshMount } from './mounts.js';
export { sh, Sh, shellQuote, type ShValue } from './sh.js';
export type { Command, RunOpts } from './run.js';
export { ImageResult, type ImageSpec, type Healthcheck } from './image-result.js';
export { PlatformResults, type Ctx, type Build, type BuildResult, type SingleResult, type Target, type TargetBuild, type TargetSpec, type Targets, type Ref, type FileInfo, type ResolvedImage } from './ctx.js';
export { marshal, type MarshalOpts } from './marshal.js';
