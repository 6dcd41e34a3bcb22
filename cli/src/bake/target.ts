import { suggest } from '@kiln/llb-core';
import { BakeError, type BakeLocation } from './errors.js';
import { redactCacheValue } from '../engine/cache-s3-spec.js';

/** Scalar keys of a bake target (buildx's `*string` fields), by their bake file names. */
export const STRING_KEYS = ['description', 'context', 'dockerfile', 'dockerfile-inline', 'target', 'network', 'shm-size', 'call'] as const;
/** List keys, by how a later definition combines with an earlier one (buildx's Target.Merge). */
export const REPLACED_LIST_KEYS = ['tags', 'platforms', 'cache-to', 'output'] as const;
export const MERGED_LIST_KEYS = ['annotations', 'attest', 'secret', 'ssh', 'cache-from', 'no-cache-filter', 'ulimits', 'entitlements'] as const;
/** Map keys (a later definition sets its keys over the earlier ones; a null value sets nothing). */
export const MAP_KEYS = ['args', 'labels', 'contexts', 'extra-hosts'] as const;
export const BOOL_KEYS = ['pull', 'no-cache'] as const;

type StringKey = (typeof STRING_KEYS)[number];
type ListKey = (typeof REPLACED_LIST_KEYS)[number] | (typeof MERGED_LIST_KEYS)[number];
type MapKey = (typeof MAP_KEYS)[number];
type BoolKey = (typeof BOOL_KEYS)[number];

/**
 * One bake target with buildx's key names (docker-bake.json's spelling). Mutable while a
 * definition is merged and overridden; a resolved target has no `inherits`.
 */
export type Target = { [K in StringKey]?: string } & { [K in ListKey]?: string[] } & { [K in MapKey]?: Record<string, string | null> } & {
  [K in BoolKey]?: boolean;
} & { inherits?: string[] };

const LIST_KEYS: readonly string[] = [...REPLACED_LIST_KEYS, ...MERGED_LIST_KEYS];
/** Every key a target block may set (`matrix` and `name` are read by the HCL decoder). */
export const TARGET_KEYS: readonly string[] = [...STRING_KEYS, ...LIST_KEYS, ...MAP_KEYS, ...BOOL_KEYS, 'inherits'];

const isKey = <T extends string>(keys: readonly T[], k: string): k is T => (keys as readonly string[]).includes(k);

/** A value of a bake file (JSON, or an evaluated HCL value) where a string is wanted. */
function scalarString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * buildx accepts `{type = "local", dest = "out"}` for CSV list values (output, cache-*, secret,
 * attest), as the entry itself (no CSV). `quote`: the value is read back with encoding/csv rules
 * (cache-*, attest: csv-record.ts), so a field with a comma or quote is quoted whole, `""` for a
 * quote, and `src = "a,b"` stays a,b.
 */
function csvOf(v: unknown, quote = false): string | undefined {
  const s = scalarString(v);
  if (s !== undefined) return s;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const entries = Object.entries(v as Record<string, unknown>);
  const parts: string[] = [];
  // `type` first, as buildx writes these entries.
  entries.sort(([a], [b]) => (a === 'type' ? -1 : b === 'type' ? 1 : 0));
  for (const [k, x] of entries) {
    const sx = scalarString(x);
    if (sx === undefined) return undefined;
    const field = `${k}=${sx}`;
    parts.push(quote && /[",\r\n]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field);
  }
  return parts.join(',');
}

/**
 * A target definition from a bake file's value (a JSON object or an evaluated HCL block body).
 * `where` gives the location of a key for error messages.
 */
export function decodeTarget(name: string, raw: Readonly<Record<string, unknown>>, where: (key: string) => BakeLocation | undefined): Target {
  const t: Target = {};
  const bad = (key: string, want: string): BakeError =>
    new BakeError('KLN0853', `target "${name}": ${key} must be ${want}`, { location: where(key), hint: `see docs/bake.md for the value of ${key}` });
  for (const [key, v] of Object.entries(raw)) {
    if (v === null || v === undefined) continue;
    if (isKey(STRING_KEYS, key)) {
      const s = scalarString(v);
      if (s === undefined) throw bad(key, 'a string');
      t[key] = s;
    } else if (isKey(BOOL_KEYS, key)) {
      // buildx's reference writes `no-cache = 1`: numbers 1 and 0 are taken as bools too.
      if (typeof v === 'boolean') t[key] = v;
      else if (v === 'true' || v === 'false') t[key] = v === 'true';
      else if (v === 1 || v === 0) t[key] = v === 1;
      else throw bad(key, 'true or false');
    } else if (isKey(MAP_KEYS, key)) {
      if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, 'a map of strings');
      const m: Record<string, string | null> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === null) m[k] = null;
        else {
          const s = scalarString(x);
          if (s === undefined) throw bad(`${key}.${k}`, 'a string');
          m[k] = s;
        }
      }
      t[key] = m;
    } else if (key === 'inherits' || isKey(LIST_KEYS as readonly ListKey[], key)) {
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list)) throw bad(key, 'a list of strings');
      const out: string[] = [];
      for (const x of list as unknown[]) {
        if (x === null) continue;
        const s = key === 'inherits' ? scalarString(x) : csvOf(x, key === 'cache-from' || key === 'cache-to' || key === 'attest');
        if (s === undefined) throw bad(key, 'a list of strings');
        out.push(s);
      }
      if (key === 'inherits') t.inherits = out;
      else t[key as ListKey] = out;
    } else {
      const near = suggest(key, TARGET_KEYS);
      throw new BakeError('KLN0853', `target "${name}": unknown key "${key}"${near === undefined ? '' : ` (did you mean ${near}?)`}`, { location: where(key), hint: `a target takes ${TARGET_KEYS.join(', ')}` });
    }
  }
  return t;
}

/** The identity of a list entry that a later entry with the same identity replaces. */
function entryKey(listKey: string, entry: string): string {
  const attr = (name: string): string | undefined => entry.split(',').find((p) => p.startsWith(`${name}=`))?.slice(name.length + 1);
  switch (listKey) {
    case 'attest':
      return `type:${attr('type') ?? entry}`;
    case 'secret':
      return `id:${attr('id') ?? entry}`;
    case 'ssh':
      return `id:${entry.split(/[=,]/)[0] ?? entry}`;
    default:
      return entry;
  }
}

function mergeList(key: string, a: readonly string[] | undefined, b: readonly string[]): string[] {
  if (key !== 'attest' && key !== 'secret' && key !== 'ssh' && key !== 'cache-from') return [...(a ?? []), ...b];
  const byKey = new Map<string, string>();
  for (const e of [...(a ?? []), ...b]) {
    const k = entryKey(key, e);
    byKey.delete(k);
    byKey.set(k, e);
  }
  return [...byKey.values()];
}

/** buildx's Target.Merge: `t2` over `t` (replaced, merged or map keys as the key says). */
export function mergeTarget(t: Target, t2: Target): void {
  for (const k of STRING_KEYS) if (t2[k] !== undefined) t[k] = t2[k];
  for (const k of BOOL_KEYS) if (t2[k] !== undefined) t[k] = t2[k];
  for (const k of REPLACED_LIST_KEYS) if (t2[k] !== undefined) t[k] = [...(t2[k] ?? [])];
  for (const k of MERGED_LIST_KEYS) {
    const v = t2[k];
    if (v !== undefined) t[k] = mergeList(k, t[k], v);
  }
  for (const k of MAP_KEYS) {
    const v = t2[k];
    if (v === undefined) continue;
    const m = { ...(t[k] ?? {}) };
    for (const [mk, mv] of Object.entries(v)) if (mv !== null || k === 'contexts') m[mk] = mv;
    t[k] = m;
  }
  if (t2.inherits !== undefined) t.inherits = [...(t.inherits ?? []), ...t2.inherits];
}

/** buildx's normalize: duplicates dropped, `network = "host"` asks for the network.host entitlement. */
export function normalizeTarget(t: Target): void {
  for (const k of [...REPLACED_LIST_KEYS, ...MERGED_LIST_KEYS]) {
    const v = t[k];
    if (v !== undefined) t[k] = [...new Set(v)];
  }
  if (t.network === 'host') t.entitlements = [...new Set([...(t.entitlements ?? []), 'network.host'])];
  if (t.contexts !== undefined) {
    for (const [k, v] of Object.entries(t.contexts)) if (v === '' || v === null) delete t.contexts[k];
    if (Object.keys(t.contexts).length === 0) delete t.contexts;
  }
}

/** One `--set` value for one target key: a scalar, or the list values of every `--set` of the key. */
export interface Override {
  value?: string;
  list: string[];
  /** `KEY+=VALUE`: append to the file's list instead of replacing it. */
  append: boolean;
}

/** `--set` keys whose values are lists (several `--set`s of one key collect). */
const OVERRIDE_LIST_KEYS = new Set(['output', 'cache-to', 'cache-from', 'tags', 'platform', 'secrets', 'ssh', 'attest', 'entitlements', 'annotations', 'no-cache-filter', 'ulimits']);

/** Adds one parsed `--set KEY=VALUE` (key without the target part) to `acc`. */
export function addOverride(acc: Map<string, Override>, key: string, value: string | undefined, append: boolean, env: Readonly<Record<string, string | undefined>>): void {
  const o = acc.get(key) ?? { list: [], append: false };
  const [head] = key.split('.', 1);
  if (OVERRIDE_LIST_KEYS.has(head ?? '')) {
    if (value !== undefined) {
      o.list.push(value);
      o.append = append;
    }
  } else if (head === 'args' && value === undefined) {
    // `--set t.args.NAME`: the caller's environment variable NAME, as buildx reads it.
    const v = env[key.slice('args.'.length)];
    if (v === undefined) return;
    o.value = v;
  } else if (value !== undefined) o.value = value;
  acc.set(key, o);
}

const parseBool = (key: string, v: string | undefined): boolean => {
  const s = (v ?? '').toLowerCase();
  if (['1', 't', 'true'].includes(s)) return true;
  if (['0', 'f', 'false'].includes(s)) return false;
  throw new BakeError('KLN0854', `invalid value "${v ?? ''}" for boolean key ${key}`, { hint: `use --set TARGET.${key}=true or false` });
};

/** buildx's setPushOverride: `push=true` on image outputs, or an image output that pushes. */
export function setPush(outputs: readonly string[] | undefined, push: boolean): string[] {
  if (outputs === undefined || outputs.length === 0) return push ? ['type=image,push=true'] : [];
  return outputs.map((o) => {
    const type = o.split(',').find((p) => p.startsWith('type='))?.slice(5);
    if (type !== 'image') return o;
    const rest = o.split(',').filter((p) => !p.startsWith('push='));
    return [...rest, `push=${push}`].join(',');
  });
}

/** buildx's AddOverrides: the `--set` values of one target over its definition. */
export function applyOverrides(t: Target, overrides: ReadonlyMap<string, Override>): void {
  for (const [key, o] of overrides) {
    const dot = key.indexOf('.');
    const head = dot < 0 ? key : key.slice(0, dot);
    const sub = dot < 0 ? undefined : key.slice(dot + 1);
    const value = o.value ?? '';
    const list = (cur: string[] | undefined): string[] => (o.append ? [...(cur ?? []), ...o.list] : [...o.list]);
    const needSub = (): string => {
      if (sub === undefined || sub === '') throw new BakeError('KLN0854', `invalid --set key "${key}": ${head} needs a name`, { hint: `use --set TARGET.${head}.NAME=VALUE` });
      return sub;
    };
    switch (head) {
      case 'context':
      case 'dockerfile':
      case 'target':
      case 'call':
      case 'network':
      case 'shm-size':
        t[head] = value;
        break;
      case 'args':
      case 'labels':
      case 'contexts':
      case 'extra-hosts':
        t[head] = { ...(t[head] ?? {}), [needSub()]: value };
        break;
      case 'tags':
      case 'cache-to':
      case 'output':
      case 'no-cache-filter':
      case 'ulimits':
        t[head] = list(t[head]);
        break;
      case 'platform':
        t.platforms = list(t.platforms);
        break;
      case 'cache-from':
        t['cache-from'] = o.append ? mergeList('cache-from', t['cache-from'], o.list) : [...o.list];
        break;
      case 'secrets':
        t.secret = o.append ? mergeList('secret', t.secret, o.list) : [...o.list];
        break;
      case 'ssh':
        t.ssh = o.append ? mergeList('ssh', t.ssh, o.list) : [...o.list];
        break;
      case 'entitlements':
      case 'annotations':
        t[head] = [...(t[head] ?? []), ...o.list];
        break;
      case 'attest':
        t.attest = mergeList('attest', t.attest, o.list);
        break;
      case 'no-cache':
      case 'pull':
        t[head] = parseBool(head, o.value);
        break;
      case 'push':
        t.output = setPush(t.output, parseBool('push', o.value));
        break;
      case 'load':
        throw new BakeError('KLN0855', '--set *.load is not applicable: kiln has no Docker daemon to load images into', {
          hint: 'tags without an output store the image in kiln\'s image store (kiln images); or use --set TARGET.output=type=docker,dest=FILE.tar',
        });
      default:
        const near = suggest(head, SET_KEYS);
        throw new BakeError('KLN0854', `unknown --set key "${head}"${near === undefined ? '' : ` (did you mean ${near}?)`}`, {
          hint: 'use context, dockerfile, target, args.NAME, labels.NAME, contexts.NAME, tags, platform, output, cache-from, cache-to, secrets, ssh, attest, annotations, entitlements, no-cache, no-cache-filter, pull, push, network, shm-size, ulimits, call or extra-hosts.NAME',
        });
    }
  }
}

/** The keys `--set` takes (and their singular spellings), for a near miss in an unknown one. */
const SET_KEYS = ['context', 'dockerfile', 'target', 'args', 'arg', 'labels', 'label', 'contexts', 'tags', 'tag', 'platform', 'platforms', 'output', 'cache-from', 'cache-to', 'secrets', 'secret', 'ssh', 'attest', 'annotations', 'annotation', 'entitlements', 'entitlement', 'no-cache', 'no-cache-filter', 'pull', 'push', 'network', 'shm-size', 'ulimits', 'ulimit', 'call', 'extra-hosts', 'extra-host'];

/** Keys in buildx's Target struct order (the order of `--print`). */
const PRINT_ORDER = [
  'description',
  'annotations',
  'attest',
  'context',
  'contexts',
  'dockerfile',
  'dockerfile-inline',
  'args',
  'labels',
  'tags',
  'cache-from',
  'cache-to',
  'target',
  'secret',
  'ssh',
  'platforms',
  'output',
  'pull',
  'no-cache',
  'network',
  'no-cache-filter',
  'shm-size',
  'ulimits',
  'call',
  'entitlements',
  'extra-hosts',
] as const;

/** `${` and `%{` escaped as buildx's MarshalJSON does, so a printed definition reads back the same. */
// (A function replacement: in a replacement string `$$` means one `$`, which made this a no-op.)
const esc = (s: string): string => s.replaceAll('${', () => '$${').replaceAll('%{', () => '%%{');

/** A resolved target as buildx's `--print` shows it (key order, sorted maps, escaped templates). */
export function printTarget(t: Target): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of PRINT_ORDER) {
    const v = t[k];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    if (k === 'dockerfile-inline' && typeof v === 'string') out[k] = esc(v);
    else if (k === 'annotations' && Array.isArray(v)) out[k] = v.map(esc);
    // An s3 cache's keys (written in the file or interpolated from the environment) stay out of
    // what --print writes to a CI log.
    else if ((k === 'cache-to' || k === 'cache-from') && Array.isArray(v)) out[k] = v.map(redactCacheValue);
    else if (typeof v === 'object' && !Array.isArray(v)) {
      const m: Record<string, string | null> = {};
      for (const mk of Object.keys(v).sort()) {
        const mv = v[mk] ?? null;
        m[mk] = mv !== null && (k === 'args' || k === 'labels' || k === 'extra-hosts') ? esc(mv) : mv;
      }
      out[k] = m;
    } else out[k] = v;
  }
  return out;
}
