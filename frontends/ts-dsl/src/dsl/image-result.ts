/**
 * `state.image({...})`: a State plus the image config fields the build sets. Unset fields
 * inherit the base image's config (the image the state was built on), as a Dockerfile stage
 * inherits its FROM image's config.
 */
import { defaultPathEnv, parseGoDuration, parsePortSpecs, parseSignal, type Platform } from '@kiln/llb-core';
import type { State } from './state.js';
import type { BuildLocation } from './source-location.js';
import { checkOptions, count, recordOf, str, strings, withHint, type Field } from './options.js';

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
  /** `8080/tcp`, `53/udp`, a range `8000-8010` (each port), or a port number (tcp), as EXPOSE takes them; added to the base image's. */
  readonly exposedPorts?: readonly (string | number)[];
  /** Paths the container runtime makes volumes (Dockerfile `VOLUME`); added to the base image's. */
  readonly volumes?: readonly string[];
  /** The signal that stops the container (Dockerfile `STOPSIGNAL`): `SIGTERM`, `SIGQUIT`, `9`. */
  readonly stopSignal?: string;
  /** A health check (Dockerfile `HEALTHCHECK`), or `"none"` to turn off the base image's. */
  readonly healthcheck?: Healthcheck | 'none';
}

/** Dockerfile's `HEALTHCHECK` as an {@link ImageSpec} field; unset durations use the runtime's defaults. */
export interface Healthcheck {
  /** A shell command line (`CMD-SHELL`, run with `/bin/sh -c`) or an argv (`CMD`, no shell). */
  readonly cmd: string | readonly string[];
  /** Time between checks, as Docker writes durations: `30s`, `1m30s`, `500ms`. */
  readonly interval?: string;
  /** Time one check may take. */
  readonly timeout?: string;
  /** Time after start during which failures do not count. */
  readonly startPeriod?: string;
  /** Time between checks during the start period. */
  readonly startInterval?: string;
  /** Consecutive failures that make the container unhealthy. */
  readonly retries?: number;
}

/**
 * Nanoseconds of a duration as Go's time.ParseDuration reads HEALTHCHECK flags (`1m30s`, `1.5s`,
 * `.5s`, `1500us`, `0`), or undefined if it is not one (or is negative).
 */
function durationNs(d: string): number | undefined {
  try {
    const ns = parseGoDuration(d);
    return ns >= 0 && Number.isSafeInteger(ns) ? ns : undefined;
  } catch {
    return undefined;
  }
}

// as Dockerfile's HEALTHCHECK flags: 0 is the runtime's default, anything else at least 1ms
const duration: Field = { what: 'a duration such as "30s", "1m30s" or "500ms"', ok: (v) => typeof v === 'string' && ((n) => n !== undefined && (n === 0 || n >= 1e6))(durationNs(v)) };
const healthcheckField: Field = {
  what: '"none" or { cmd, interval, timeout, startPeriod, startInterval, retries }',
  ok: (v) => v === 'none' || (typeof v === 'object' && v !== null && 'cmd' in v),
  hint: 'healthcheck: { cmd: "wget -q -O- localhost:3000/health", interval: "30s", retries: 3 }',
};
/** The `N/proto` keys of one EXPOSE word (go-connections' nat.ParsePortSpecs, as the Dockerfile frontend reads them), or undefined. */
function portKeys(p: unknown): string[] | undefined {
  if (typeof p !== 'string' && typeof p !== 'number') return undefined;
  return valid(() => parsePortSpecs([String(p)]));
}
const valid = <T>(f: () => T): T | undefined => {
  try {
    return f();
  } catch {
    return undefined;
  }
};
const port: Field = {
  what: 'a list of ports such as "8080/tcp", "53/udp", "8000-8010" or 3000',
  ok: (v) => Array.isArray(v) && v.every((p) => portKeys(p) !== undefined),
  hint: 'exposedPorts: [3000, "53/udp"]',
};

/** @internal Throws KLN0805 (at the `.image` call) for an unknown or mistyped field of `spec`. */
export function checkImageSpec(spec: ImageSpec): void {
  checkOptions('image', spec, {
    entrypoint: withHint(strings, 'an argv list: entrypoint: ["node", "server.js"]'),
    cmd: withHint(strings, 'an argv list: cmd: ["npm", "start"] (or ["sh", "-c", "npm start"] for a shell)'),
    env: recordOf(str, 'env values are strings: env: { PORT: "3000" }'),
    workdir: str,
    user: str,
    labels: recordOf(str),
    exposedPorts: port,
    volumes: { what: 'a list of paths', ok: (v) => strings.ok(v) && (v as string[]).every((x) => x !== ''), hint: 'volumes: ["/data"] (as VOLUME, a path may not be empty)' },
    stopSignal: { what: 'a signal name or number such as "SIGTERM" or "15"', ok: (v) => typeof v === 'string' && valid(() => parseSignal(v)) !== undefined },
    healthcheck: healthcheckField,
  });
  const h = spec.healthcheck;
  if (typeof h === 'object') {
    checkOptions('image', h, {
      cmd: { what: 'a shell command line or an argv list', ok: (v) => (typeof v === 'string' && v.trim() !== '') || (strings.ok(v) && (v as string[]).length > 0) },
      interval: duration,
      timeout: duration,
      startPeriod: duration,
      startInterval: duration,
      retries: count,
    });
  }
}

/** Docker's Healthcheck JSON: zero durations and retries left out, as the Dockerfile frontend writes it. */
function healthJson(h: Healthcheck | 'none'): Json {
  if (h === 'none') return { Test: ['NONE'] };
  const ns = (d: string | undefined): number => (d === undefined ? 0 : (durationNs(d) ?? 0));
  const out: Json = { Test: typeof h.cmd === 'string' ? ['CMD-SHELL', h.cmd] : ['CMD', ...h.cmd] };
  const fields: readonly (readonly [string, number])[] = [
    ['Interval', ns(h.interval)],
    ['Timeout', ns(h.timeout)],
    ['StartPeriod', ns(h.startPeriod)],
    ['StartInterval', ns(h.startInterval)],
    ['Retries', h.retries ?? 0],
  ];
  for (const [k, v] of fields) if (v !== 0) out[k] = v;
  return out;
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
    for (const p of spec.exposedPorts) for (const k of portKeys(p) ?? []) ports[k] = {};
    cfg['ExposedPorts'] = ports;
  }
  if (spec.volumes !== undefined) {
    const vols: Json = { ...(isObj(cfg['Volumes']) ? cfg['Volumes'] : {}) };
    for (const v of spec.volumes) vols[v] = {};
    cfg['Volumes'] = vols;
  }
  if (spec.stopSignal !== undefined) cfg['StopSignal'] = spec.stopSignal;
  if (spec.healthcheck !== undefined) cfg['Healthcheck'] = healthJson(spec.healthcheck);
  img['config'] = cfg;
  return JSON.stringify(img);
}
