import type { Digest } from '../content/digest.js';

/** An OCI platform (`os`/`architecture`/`variant`). */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
  readonly 'os.version'?: string | undefined;
  readonly 'os.features'?: ReadonlyArray<string> | undefined;
}

/** An OCI content descriptor. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly urls?: ReadonlyArray<string> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly platform?: Platform | undefined;
}

/** An image manifest (OCI or Docker schema 2). */
export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly config: Descriptor;
  readonly layers: ReadonlyArray<Descriptor>;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** An image index (OCI) or manifest list (Docker). */
export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType?: string | undefined;
  readonly manifests: ReadonlyArray<Descriptor>;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** Docker's healthcheck (durations in nanoseconds). */
export interface HealthConfig {
  readonly Test?: ReadonlyArray<string> | undefined;
  readonly Interval?: number | undefined;
  readonly Timeout?: number | undefined;
  readonly StartPeriod?: number | undefined;
  readonly StartInterval?: number | undefined;
  readonly Retries?: number | undefined;
}

/** The `config` part of an image config (Docker's container config subset that images carry). */
export interface ContainerConfig {
  readonly User?: string | undefined;
  readonly ExposedPorts?: Readonly<Record<string, Record<string, never>>> | undefined;
  readonly Env?: ReadonlyArray<string> | undefined;
  readonly Entrypoint?: ReadonlyArray<string> | undefined;
  readonly Cmd?: ReadonlyArray<string> | undefined;
  readonly Volumes?: Readonly<Record<string, Record<string, never>>> | undefined;
  readonly WorkingDir?: string | undefined;
  readonly Labels?: Readonly<Record<string, string>> | undefined;
  readonly StopSignal?: string | undefined;
  readonly ArgsEscaped?: boolean | undefined;
  readonly Healthcheck?: HealthConfig | undefined;
  readonly OnBuild?: ReadonlyArray<string> | undefined;
  readonly Shell?: ReadonlyArray<string> | undefined;
}

/** One history entry of an image config. */
export interface HistoryEntry {
  readonly created?: string | undefined;
  readonly created_by?: string | undefined;
  readonly author?: string | undefined;
  readonly comment?: string | undefined;
  readonly empty_layer?: boolean | undefined;
}

/** An OCI / Docker image config. Unknown fields survive a parse → serialise round trip. */
export interface ImageConfig {
  readonly created?: string | undefined;
  readonly author?: string | undefined;
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string | undefined;
  readonly 'os.version'?: string | undefined;
  readonly config?: ContainerConfig | undefined;
  readonly rootfs: { readonly type: 'layers'; readonly diff_ids: ReadonlyArray<Digest> };
  readonly history?: ReadonlyArray<HistoryEntry> | undefined;
  readonly [extra: string]: unknown;
}
