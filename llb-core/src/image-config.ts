/**
 * OCI image configuration types (image-spec `config.json`, plus the Docker fields
 * BuildKit's Dockerfile frontend writes) and the image metadata resolver contract.
 */
import type { Digest } from './digest.js';
import type { Platform } from './platform.js';

/** Docker health check (`config.Healthcheck`); durations are nanoseconds. */
export interface HealthConfig {
  readonly Test?: readonly string[];
  readonly Interval?: number;
  readonly Timeout?: number;
  readonly StartPeriod?: number;
  readonly StartInterval?: number;
  readonly Retries?: number;
}

/** The runtime part of an image config (`config` in the OCI JSON). */
export interface ImageConfigConfig {
  readonly User?: string;
  readonly ExposedPorts?: Readonly<Record<string, Record<string, never>>>;
  readonly Env?: readonly string[];
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly Volumes?: Readonly<Record<string, Record<string, never>>>;
  readonly WorkingDir?: string;
  readonly Labels?: Readonly<Record<string, string>>;
  readonly StopSignal?: string;
  readonly ArgsEscaped?: boolean;
  readonly Healthcheck?: HealthConfig;
  readonly OnBuild?: readonly string[];
  readonly Shell?: readonly string[];
}

/** One `history` entry. */
export interface ImageHistory {
  readonly created?: string;
  readonly created_by?: string;
  readonly author?: string;
  readonly comment?: string;
  readonly empty_layer?: boolean;
}

/** An OCI image config (`application/vnd.oci.image.config.v1+json`). */
export interface ImageConfig {
  readonly created?: string;
  readonly author?: string;
  readonly architecture: string;
  readonly os: string;
  readonly 'os.version'?: string;
  readonly 'os.features'?: readonly string[];
  readonly variant?: string;
  readonly config?: ImageConfigConfig;
  readonly rootfs?: { readonly type: string; readonly diff_ids: readonly string[] };
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
  readonly platform?: Platform;
  readonly resolveMode?: ResolveMode;
  readonly signal?: AbortSignal;
}

/**
 * Resolves an image reference and platform to its manifest digest and config, like
 * BuildKit's `llb.ImageMetaResolver`. Implemented by the runtime (registry) or a test
 * fixture (OCI layout); used by frontends and by {@link resolveImage}.
 */
export interface ImageMetaResolver {
  resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig>;
}

/** Parses image config JSON bytes (throws a SyntaxError on invalid JSON). */
export function parseImageConfig(bytes: Uint8Array | string): ImageConfig {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  return JSON.parse(text) as ImageConfig;
}
