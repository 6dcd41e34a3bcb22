/**
 * The image config the converter builds alongside the LLB: BuildKit v0.11.6's
 * `dockerfile2llb.Image` (an OCI image plus Docker's Healthcheck, ArgsEscaped, OnBuild and
 * Shell), with Go `encoding/json` field presence so the result deep-equals BuildKit's.
 */
import { defaultPathEnv } from '@kiln/llb-core';
import type { Platform } from '@kiln/llb-core';

/** Docker's HealthConfig; durations in nanoseconds. */
export interface DockerHealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** `config` of {@link DockerImage}: OCI ImageConfig plus Docker's fields. */
export interface DockerImageConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: DockerHealthConfig;
  ArgsEscaped?: boolean;
  /** Always present in the JSON (`null` when unset), as BuildKit's struct has no omitempty. */
  OnBuild: string[] | null;
  Shell?: string[];
}

/** One history entry. */
export interface DockerHistory {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** BuildKit's image struct (JSON field names). Mutable while a stage is dispatched. */
export interface DockerImage {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  rootfs: { type: string; diff_ids: string[] | null };
  history?: DockerHistory[];
  config: DockerImageConfig;
}

/** The `comment` of history entries the converter adds. */
export const HISTORY_COMMENT = 'buildkit.dockerfile.v0';

/** BuildKit's emptyImage: the config of `FROM scratch`. */
export function emptyImage(platform: Platform): DockerImage {
  const img: DockerImage = {
    architecture: platform.architecture,
    os: platform.os,
    rootfs: { type: 'layers', diff_ids: null },
    config: { WorkingDir: '/', Env: [`PATH=${defaultPathEnv(platform.os)}`], OnBuild: null },
  };
  if (platform.variant) img.variant = platform.variant;
  return img;
}

/** A deep copy (BuildKit's clone). */
export function cloneImage(img: DockerImage): DockerImage {
  return structuredClone(img);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const strs = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const set = (v: unknown): Record<string, Record<string, never>> | undefined => {
  if (!isObj(v)) return undefined;
  const out: Record<string, Record<string, never>> = {};
  for (const k of Object.keys(v)) out[k] = {};
  return out;
};

/** Go `json.Unmarshal` keys match case-insensitively; exact match first. */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const l = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === l) return o[k];
  return undefined;
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

/**
 * Parse image config JSON the way Go unmarshals it into BuildKit's struct: unknown fields are
 * dropped, `created` is cleared (BuildKit sets `img.Created = nil`).
 */
export function parseDockerImage(bytes: Uint8Array | string): DockerImage {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  const raw: unknown = JSON.parse(text);
  const o = isObj(raw) ? raw : {};
  const img: DockerImage = {
    architecture: str(field(o, 'architecture')) ?? '',
    os: str(field(o, 'os')) ?? '',
    rootfs: { type: '', diff_ids: null },
    config: { OnBuild: null },
  };
  assign(img, 'author', str(field(o, 'author')));
  assign(img, 'os.version', str(field(o, 'os.version')));
  assign(img, 'os.features', strs(field(o, 'os.features')));
  assign(img, 'variant', str(field(o, 'variant')));
  const rootfs = field(o, 'rootfs');
  if (isObj(rootfs)) img.rootfs = { type: str(field(rootfs, 'type')) ?? '', diff_ids: strs(field(rootfs, 'diff_ids')) ?? null };
  const history = field(o, 'history');
  if (Array.isArray(history)) {
    img.history = history.map((h): DockerHistory => {
      const e: DockerHistory = {};
      if (!isObj(h)) return e;
      assign(e, 'created', str(field(h, 'created')));
      assign(e, 'created_by', str(field(h, 'created_by')));
      assign(e, 'author', str(field(h, 'author')));
      assign(e, 'comment', str(field(h, 'comment')));
      if (field(h, 'empty_layer') === true) e.empty_layer = true;
      return e;
    });
  }
  const c = field(o, 'config');
  if (isObj(c)) {
    const cfg = img.config;
    assign(cfg, 'User', str(field(c, 'User')));
    assign(cfg, 'ExposedPorts', set(field(c, 'ExposedPorts')));
    assign(cfg, 'Env', strs(field(c, 'Env')));
    assign(cfg, 'Entrypoint', strs(field(c, 'Entrypoint')));
    assign(cfg, 'Cmd', strs(field(c, 'Cmd')));
    assign(cfg, 'Volumes', set(field(c, 'Volumes')));
    assign(cfg, 'WorkingDir', str(field(c, 'WorkingDir')));
    const labels = field(c, 'Labels');
    if (isObj(labels)) {
      const l: Record<string, string> = {};
      for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') l[k] = v;
      cfg.Labels = l;
    }
    assign(cfg, 'StopSignal', str(field(c, 'StopSignal')));
    const hc = field(c, 'Healthcheck');
    if (isObj(hc)) {
      const h: DockerHealthConfig = {};
      assign(h, 'Test', strs(field(hc, 'Test')));
      assign(h, 'Interval', num(field(hc, 'Interval')));
      assign(h, 'Timeout', num(field(hc, 'Timeout')));
      assign(h, 'StartPeriod', num(field(hc, 'StartPeriod')));
      assign(h, 'StartInterval', num(field(hc, 'StartInterval')));
      assign(h, 'Retries', num(field(hc, 'Retries')));
      cfg.Healthcheck = h;
    }
    if (field(c, 'ArgsEscaped') === true) cfg.ArgsEscaped = true;
    cfg.OnBuild = strs(field(c, 'OnBuild')) ?? null;
    assign(cfg, 'Shell', strs(field(c, 'Shell')));
  }
  return img;
}

const nonEmpty = <T>(v: readonly T[] | undefined): v is readonly T[] => v !== undefined && v.length > 0;
const nonEmptyMap = (v: object | undefined): boolean => v !== undefined && Object.keys(v).length > 0;

function sortedMap<V>(m: Readonly<Record<string, V>>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const k of Object.keys(m).sort(compareBytes)) out[k] = m[k] as V;
  return out;
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function healthJson(h: DockerHealthConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (nonEmpty(h.Test)) out.Test = [...h.Test];
  if (h.Interval) out.Interval = h.Interval;
  if (h.Timeout) out.Timeout = h.Timeout;
  if (h.StartPeriod) out.StartPeriod = h.StartPeriod;
  if (h.StartInterval) out.StartInterval = h.StartInterval;
  if (h.Retries) out.Retries = h.Retries;
  return out;
}

/**
 * The image as Go's `encoding/json` writes BuildKit's struct: struct field order, `omitempty`
 * fields left out when empty, map keys sorted, `OnBuild` always present.
 */
export function imageToJson(img: DockerImage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (img.created) out.created = img.created;
  if (img.author) out.author = img.author;
  out.architecture = img.architecture;
  out.os = img.os;
  if (img['os.version']) out['os.version'] = img['os.version'];
  if (nonEmpty(img['os.features'])) out['os.features'] = [...img['os.features']];
  out.rootfs = { type: img.rootfs.type, diff_ids: img.rootfs.diff_ids === null ? null : [...img.rootfs.diff_ids] };
  if (nonEmpty(img.history)) {
    out.history = img.history.map((h) => {
      const e: Record<string, unknown> = {};
      if (h.created) e.created = h.created;
      if (h.created_by) e.created_by = h.created_by;
      if (h.author) e.author = h.author;
      if (h.comment) e.comment = h.comment;
      if (h.empty_layer) e.empty_layer = true;
      return e;
    });
  }
  const c = img.config;
  const cfg: Record<string, unknown> = {};
  if (c.User) cfg.User = c.User;
  if (c.ExposedPorts && nonEmptyMap(c.ExposedPorts)) cfg.ExposedPorts = sortedMap(c.ExposedPorts);
  if (nonEmpty(c.Env)) cfg.Env = [...c.Env];
  if (nonEmpty(c.Entrypoint)) cfg.Entrypoint = [...c.Entrypoint];
  if (nonEmpty(c.Cmd)) cfg.Cmd = [...c.Cmd];
  if (c.Volumes && nonEmptyMap(c.Volumes)) cfg.Volumes = sortedMap(c.Volumes);
  if (c.WorkingDir) cfg.WorkingDir = c.WorkingDir;
  if (c.Labels && nonEmptyMap(c.Labels)) cfg.Labels = sortedMap(c.Labels);
  if (c.StopSignal) cfg.StopSignal = c.StopSignal;
  if (c.Healthcheck) cfg.Healthcheck = healthJson(c.Healthcheck);
  if (c.ArgsEscaped) cfg.ArgsEscaped = true;
  cfg.OnBuild = c.OnBuild === null ? null : [...c.OnBuild];
  if (nonEmpty(c.Shell)) cfg.Shell = [...c.Shell];
  out.config = cfg;
  if (img.variant) out.variant = img.variant;
  return out;
}

/** Go `json.Marshal` text: HTML-safe escaping of `<`, `>`, `&` (and U+2028/2029). */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** BuildKit's commitToHistory: append a history entry (`# buildkit` when an op was made). */
export function commitToHistory(img: DockerImage, msg: string, withLayer: boolean, fromState: boolean): void {
  const entry: DockerHistory = { created_by: fromState ? `${msg} # buildkit` : msg, comment: HISTORY_COMMENT };
  if (!withLayer) entry.empty_layer = true;
  (img.history ??= []).push(entry);
}

/** BuildKit's addEnv for the image config: replace in place, else append. */
export function addImageEnv(env: readonly string[] | undefined, k: string, v: string): string[] {
  const out = [...(env ?? [])];
  const i = out.findIndex((e) => parseKeyValue(e)[0] === k);
  if (i >= 0) out[i] = `${k}=${v}`;
  else out.push(`${k}=${v}`);
  return out;
}

/** `KEY=value` → [KEY, value] (value `''` without `=`). */
export function parseKeyValue(env: string): [string, string] {
  const i = env.indexOf('=');
  return i < 0 ? [env, ''] : [env.slice(0, i), env.slice(i + 1)];
}
