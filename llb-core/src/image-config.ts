/**
 * OCI image configuration types (image-spec `config.json`, plus the Docker fields
 * BuildKit's Dockerfile frontend writes) and the image metadata resolver contract.
 */
import type { Digest } from './digest.js';
import type { Platform } from './platform.js';

/** Docker health check (`config.Healthcheck`); durations are nanoseconds. */
export interface HealthConfig {
  /** Test command (`NONE`, `CMD`, `CMD-SHELL` forms). */
  readonly Test?: readonly string[];
  /** Time between checks. */
  readonly Interval?: number;
  /** Time before a check fails. */
  readonly Timeout?: number;
  /** Grace period after start. */
  readonly StartPeriod?: number;
  /** Time between checks during the start period. */
  readonly StartInterval?: number;
  /** Failures before unhealthy. */
  readonly Retries?: number;
}

/** The runtime part of an image config (`config` in the OCI JSON). */
export interface ImageConfigConfig {
  /** Default user. */
  readonly User?: string;
  /** Ports as `port/proto` keys. */
  readonly ExposedPorts?: Readonly<Record<string, Record<string, never>>>;
  /** Environment as `KEY=value`. */
  readonly Env?: readonly string[];
  /** Entrypoint argv. */
  readonly Entrypoint?: readonly string[];
  /** Default arguments. */
  readonly Cmd?: readonly string[];
  /** Volume paths as keys. */
  readonly Volumes?: Readonly<Record<string, Record<string, never>>>;
  /** Working directory. */
  readonly WorkingDir?: string;
  /** Labels. */
  readonly Labels?: Readonly<Record<string, string>>;
  /** Stop signal, e.g. `SIGTERM`. */
  readonly StopSignal?: string;
  /** Windows: Cmd is already escaped. */
  readonly ArgsEscaped?: boolean;
  /** Docker health check. */
  readonly Healthcheck?: HealthConfig;
  /** Docker ONBUILD triggers. */
  readonly OnBuild?: readonly string[];
  /** Docker SHELL. */
  readonly Shell?: readonly string[];
}

/** One `history` entry. */
export interface ImageHistory {
  /** Creation time. */
  readonly created?: string;
  /** Instruction that created the layer. */
  readonly created_by?: string;
  /** Author. */
  readonly author?: string;
  /** Comment. */
  readonly comment?: string;
  /** True when the step made no layer. */
  readonly empty_layer?: boolean;
}

/** An OCI image config (`application/vnd.oci.image.config.v1+json`). */
export interface ImageConfig {
  /** Creation time (RFC 3339). */
  readonly created?: string;
  /** Author. */
  readonly author?: string;
  /** CPU architecture. */
  readonly architecture: string;
  /** Operating system. */
  readonly os: string;
  /** OS version (Windows). */
  readonly 'os.version'?: string;
  /** Required OS features. */
  readonly 'os.features'?: readonly string[];
  /** Architecture variant. */
  readonly variant?: string;
  /** Runtime defaults for containers. */
  readonly config?: ImageConfigConfig;
  /** Layer diff IDs, in order. */
  readonly rootfs?: { readonly type: string; readonly diff_ids: readonly string[] };
  /** One entry per build step. */
  readonly history?: readonly ImageHistory[];
}

/** How a source image reference is resolved (`image.resolvemode`). */
export type ResolveMode = 'default' | 'pull' | 'local';

/** What an {@link ImageMetaResolver} returns. */
export interface ResolvedImageConfig {
  /**
   * The manifest digest the reference resolved to (pinned into the LLB when asked).
   * A plain string so resolvers can return digests branded by other packages.
   */
  readonly digest: Digest | string;
  /** The raw image config JSON bytes. */
  readonly config: Uint8Array;
  /** The reference actually resolved, when the resolver rewrote it. */
  readonly ref?: string;
}

/** Options for {@link ImageMetaResolver.resolveImageConfig}. */
export interface ResolveImageConfigOptions {
  /** Platform to pick from a multi-platform index. */
  readonly platform?: Platform;
  /** Registry lookup policy. */
  readonly resolveMode?: ResolveMode;
  /** Cancels the lookup. */
  readonly signal?: AbortSignal;
}

/**
 * Resolves an image reference and platform to its manifest digest and config, like
 * BuildKit's `llb.ImageMetaResolver`. Implemented by the runtime (registry) or a test
 * fixture (OCI layout); used by frontends and by {@link resolveImage}.
 */
export interface ImageMetaResolver {
  /** Resolves `ref` (normalized, e.g. `docker.io/library/busybox:latest`) for a platform. */
  resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig>;
}

/** Parses image config JSON bytes (throws a SyntaxError on invalid JSON). */
export function parseImageConfig(bytes: Uint8Array | string): ImageConfig {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  return JSON.parse(text) as ImageConfig;
}
