/**
 * `state.image({...})`: a State plus the image config fields the build sets. Unset fields
 * inherit the base image's config (the image the state was built on), as a Dockerfile stage
 * inherits its FROM image's config.
 */
import { defaultPathEnv, type Platform } from '@kiln/llb-core';
import type { State } from './state.js';
import type { BuildLocation } from './source-location.js';
import { checkOptions, recordOf, str, strings, withHint } from './options.js';

/** The image config fields a build can set (OCI `config`). */
export interface ImageSpec {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** Merged into the base image's Env by name. */
  readonly env?: Readonly<Record<string, string>>;
  readonly workdir?: string;
  readonly user?: string;
  /** Merged into the base image's labels. */
  readonly labels?: Readonly<Record<string, string>>;
  /** `8080/tcp`, `53/udp`; added to the base image's. */
  readonly exposedPorts?: readonly string[];
}

/** @internal Throws KLN0805 (at the `.image` call) for an unknown or mistyped field of `spec`. */
export function checkImageSpec(spec: ImageSpec): void {
  checkOptions('image', spec, {
    entrypoint: withHint(strings, 'an argv list: entrypoint: ["node", "server.js"]'),
    cmd: withHint(strings, 'an argv list: cmd: ["npm", "start"] (or ["sh", "-c", "npm start"] for a shell)'),
    env: recordOf(str, 'env values are strings: env: { PORT: "3000" }'),
    workdir: str,
    user: str,
    labels: recordOf(str),
    exposedPorts: withHint(strings, 'exposedPorts: ["3000/tcp", "53/udp"]'),
  });
}

/** A State to export as an image with {@link ImageSpec} applied to its config. */
export class ImageResult {
  constructor(
    /** The filesystem. */
    readonly state: State,
    /** The config fields set by the build. */
    readonly spec: ImageSpec,
    /** @internal Where `.image()` was called (base image lookup failures point there). */
    readonly at: BuildLocation | undefined = undefined,
  ) {}
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * @internal The image config JSON for `spec` on `base` (the base image's config, or undefined
 * for scratch, which gets BuildKit's empty image: WorkingDir `/` and the default PATH).
 */
export function imageConfigFor(base: Json | undefined, spec: ImageSpec, platform: Platform): string {
  const img: Json = base === undefined ? { rootfs: { type: 'layers', diff_ids: null } } : structuredClone(base);
  // The base image's creation time is not this image's: left for the exporter to set (the build's
  // time or SOURCE_DATE_EPOCH), as BuildKit's Dockerfile frontend clears it (`img.Created = nil`).
  delete img['created'];
  img['architecture'] ??= platform.architecture;
  img['os'] ??= platform.os;
  if (platform.variant !== undefined && base === undefined) img['variant'] = platform.variant;
  const cfg: Json = isObj(img['config']) ? img['config'] : base === undefined ? { WorkingDir: '/', Env: [`PATH=${defaultPathEnv(platform.os)}`] } : {};
  if (spec.entrypoint !== undefined) {
    cfg['Entrypoint'] = [...spec.entrypoint];
    // Docker resets an inherited CMD when ENTRYPOINT changes; an explicit cmd still wins.
    if (spec.cmd === undefined) delete cfg['Cmd'];
  }
  if (spec.cmd !== undefined) cfg['Cmd'] = [...spec.cmd];
  if (spec.env !== undefined) {
    const env = Array.isArray(cfg['Env']) ? (cfg['Env'] as unknown[]).filter((e): e is string => typeof e === 'string') : [];
    for (const [k, v] of Object.entries(spec.env)) {
      const i = env.findIndex((e) => e === k || e.startsWith(`${k}=`));
      if (i >= 0) env[i] = `${k}=${v}`;
      else env.push(`${k}=${v}`);
    }
    cfg['Env'] = env;
  }
  if (spec.workdir !== undefined) cfg['WorkingDir'] = spec.workdir;
  if (spec.user !== undefined) cfg['User'] = spec.user;
  if (spec.labels !== undefined) cfg['Labels'] = { ...(isObj(cfg['Labels']) ? cfg['Labels'] : {}), ...spec.labels };
  if (spec.exposedPorts !== undefined) {
    const ports: Json = { ...(isObj(cfg['ExposedPorts']) ? cfg['ExposedPorts'] : {}) };
    for (const p of spec.exposedPorts) ports[p.includes('/') ? p : `${p}/tcp`] = {};
    cfg['ExposedPorts'] = ports;
  }
  img['config'] = cfg;
  return JSON.stringify(img);
}
