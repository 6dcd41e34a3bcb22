/** Options and result of {@link convertDockerfile} (BuildKit's ConvertOpt and its outputs). */
import type { Definition, ImageMetaResolver, NetworkMode, Platform, ResolveMode, State, UlimitSpec } from '@kiln/llb-core';
import type { CheckWarning, CheckWarningSink } from '../lint/linter.js';
import type { SBOMScanTargets } from './sbom-targets.js';

/** A named build context (`--build-context NAME=…`): an LLB state and, for images, its config. */
export interface NamedContext {
  readonly state: State;
  /** Image config JSON for image contexts (env, workdir… are then inherited). */
  readonly imageConfig?: Uint8Array | string;
  /**
   * For an image context given without `imageConfig`: the reference whose config the converter
   * resolves through `metaResolver` for the platform of the stage that uses it (BuildKit's
   * dockerui does this for `docker-image://` contexts), when that stage is reachable. The
   * converter then also makes the image source itself, for that platform (`state` is not used).
   */
  readonly imageRef?: string;
}

/** Options of {@link convertDockerfile}. Everything is optional. */
export interface ConvertOptions {
  /** Dockerfile name for error locations and the source map (default `Dockerfile`). */
  readonly file?: string;
  /** `--build-arg` values. */
  readonly buildArgs?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  /** Stage to build (default: the last one). */
  readonly target?: string;
  /** Target platform (default: the first build platform). */
  readonly targetPlatform?: Platform | string;
  /** Build platforms (default: the target platform, else the host). */
  readonly buildPlatforms?: readonly (Platform | string)[];
  /** Session serving local sources (`local.session`). Without it sources get `local.unique`. */
  readonly sessionId?: string;
  /** Name of the build context local source (default `context`). */
  readonly contextName?: string;
  /** Resolves base images to digest and config; required when a reachable stage uses an image. */
  readonly metaResolver?: ImageMetaResolver;
  /** Named contexts replacing stages, images or the build context (`context`) by name. */
  readonly namedContexts?: ReadonlyMap<string, NamedContext>;
  /** LLB caps of the target BuildKit (default: every v0.11.6 cap, `CAPS_V0_11_6`). */
  readonly caps?: Iterable<string>;
  /** `local.unique` for session-less local sources (default: derived from the identifier). */
  readonly localUniqueId?: string;
  /** `.dockerignore` patterns for the build context. */
  readonly excludePatterns?: readonly string[];
  /** Labels added to the final image config. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Image resolve mode recorded on image sources (default `default`). */
  readonly resolveMode?: ResolveMode;
  /** Cache mount ID namespace (cache IDs become `<namespace>/<id>`). */
  readonly cacheIdNamespace?: string;
  /** Prefix progress names with the platform (multi-platform builds). */
  readonly multiPlatform?: boolean;
  /**
   * `--no-cache`: `true` for every stage, or the stage names whose RUN and COPY/ADD ops must
   * ignore the cache (BuildKit's IgnoreCache; an empty list means every stage).
   */
  readonly noCache?: boolean | readonly string[];
  /** Hostname of every RUN (`--hostname`). */
  readonly hostname?: string;
  /** `/etc/hosts` entries for every RUN (`--add-host host:ip`). */
  readonly extraHosts?: readonly { readonly host: string; readonly ip: string }[];
  /** Size of a tmpfs on /dev/shm for every RUN, in bytes (`--shm-size`). */
  readonly shmSize?: number;
  /** Resource limits of every RUN (`--ulimit`). */
  readonly ulimits?: readonly UlimitSpec[];
  /** cgroup parent of every RUN (`--cgroup-parent`). */
  readonly cgroupParent?: string;
  /** Network mode forced on every RUN (`--network`; a RUN's own `--network` still wins). */
  readonly forceNetworkMode?: NetworkMode;
  /** Attach a source map to the Definition (default true). */
  readonly sourceMap?: boolean;
  readonly signal?: AbortSignal;
  /**
   * Receives each build-check warning once, as soon as it is found (the checks of `# check=`;
   * `BUILDKIT_DOCKERFILE_CHECK` in `buildArgs` overrides it). They are also in the result.
   */
  readonly onWarning?: CheckWarningSink;
}

/** What {@link convertDockerfile} returns. */
export interface ConvertResult {
  /** The marshaled LLB of the target stage. */
  readonly definition: Definition;
  /** The image config (BuildKit's struct as Go's encoding/json writes it: history, OnBuild null…). */
  readonly imageConfig: Record<string, unknown>;
  /** `imageConfig` as Go `json.Marshal` text (`containerimage.config`). */
  readonly imageConfigJson: string;
  /** The target stage's state (to keep building on it). */
  readonly state: State;
  /** The target platform used. */
  readonly targetPlatform: Platform;
  /** Build-check warnings, in the order found (empty when every check passed or was skipped). */
  readonly checkWarnings: readonly CheckWarning[];
  /**
   * `noCache` stage names no stage has, each said as `no stage named "x" (stages: …)` with a
   * near one: BuildKit ignores them silently, so a misspelt `--no-cache-filter` cached everything.
   */
  readonly unmatchedNoCache: readonly string[];
  /**
   * What an SBOM scan of the result also covers (`BUILDKIT_SBOM_SCAN_CONTEXT`/`_STAGE`), and
   * whether it runs uncached (BuildKit's `SBOMTargets` without the core, which is `state`).
   */
  readonly sbom: SBOMScanTargets;
}
