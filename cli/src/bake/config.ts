import { suggest } from '@kiln/llb-core';
import { BakeError, type BakeLocation } from './errors.js';
import { addOverride, applyOverrides, mergeTarget, normalizeTarget, printTarget, type Override, type Target } from './target.js';

/** A bake group: targets and groups built together. */
export interface Group {
  description?: string;
  targets: string[];
}

/**
 * The definitions of one or more bake files, merged as buildx merges them: a target or group
 * defined twice (in one file or in several) is one, the later definition over the earlier.
 */
export class BakeConfig {
  readonly groups = new Map<string, Group>();
  readonly targets = new Map<string, Target>();
  /** Where each target was (first) defined, for errors. */
  readonly locations = new Map<string, BakeLocation>();

  addGroup(name: string, g: Group): void {
    const cur = this.groups.get(name);
    if (cur === undefined) this.groups.set(name, { ...g, targets: [...new Set(g.targets)] });
    else {
      for (const t of g.targets) if (!cur.targets.includes(t)) cur.targets.push(t);
      if (g.description !== undefined) cur.description = g.description;
    }
  }

  /** The variables of the files, for `--list variables`: value evaluated on demand. */
  readonly variables = new Map<string, { readonly description?: string; readonly value: () => unknown }>();
  /** The directory of the file that (first) defined each target. */
  readonly dirs = new Map<string, string>();

  addTarget(name: string, t: Target, location?: BakeLocation, dir?: string): void {
    validateName(name, location);
    const cur = this.targets.get(name);
    if (cur === undefined) {
      this.targets.set(name, t);
      if (location !== undefined) this.locations.set(name, location);
      if (dir !== undefined) this.dirs.set(name, dir);
    } else mergeTarget(cur, t);
  }
}

const NAME = /^[a-zA-Z0-9_-]+$/;

function validateName(name: string, location: BakeLocation | undefined): void {
  if (!NAME.test(name)) {
    throw new BakeError('KLN0853', `invalid target name "${name}"`, { location, hint: 'a target name has letters, digits, _ and - only' });
  }
}

/** One target ready to build. `linked`: built only as another target's `target:NAME` context. */
export interface ResolvedTarget {
  readonly name: string;
  readonly target: Target;
  readonly linked: boolean;
}

/** What `kiln bake` builds: the targets (by name, sorted) and the groups they came from. */
export interface Resolved {
  readonly targets: ReadonlyMap<string, ResolvedTarget>;
  readonly groups: ReadonlyMap<string, Group>;
}

/** `path.Match`-style glob (`*`, `?`, `[…]`) as a RegExp. */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new BakeError('KLN0854', `invalid pattern "${pattern}": no closing ]`);
      const body = pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
      re += `[${body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  try {
    return new RegExp(`^${re}$`);
  } catch (e) {
    throw new BakeError('KLN0854', `invalid pattern "${pattern}": ${e instanceof Error ? e.message.replace(/^Invalid regular expression: /, '') : String(e)}`, { hint: 'a pattern has *, ? and [a-z] classes, as Go\'s path.Match' });
  }
}

/** buildx's singular `--set` key names (current buildx's canonical spelling) as kiln's plural ones. */
const KEY_ALIASES: Readonly<Record<string, string>> = {
  arg: 'args',
  label: 'labels',
  tag: 'tags',
  annotation: 'annotations',
  entitlement: 'entitlements',
  'extra-host': 'extra-hosts',
  platforms: 'platform',
  secret: 'secrets',
  ulimit: 'ulimits',
};

/** A `--set` key (after `PATTERN.`) with buildx's singular spellings made kiln's plural ones. */
export function canonicalKey(key: string, set: string): string {
  const dot = key.indexOf('.');
  const head = dot < 0 ? key : key.slice(0, dot);
  const alias = Object.hasOwn(KEY_ALIASES, head) ? KEY_ALIASES[head] : undefined;
  if (alias === undefined) return key;
  if (head === 'secret' && dot >= 0) throw new BakeError('KLN0855', `--set "${set}": secret.ID (changing the source of a declared secret) is not supported`, { hint: 'set the whole list: --set TARGET.secret=id=ID,src=PATH' });
  return dot < 0 ? alias : `${alias}${key.slice(dot)}`;
}

const isPattern = (s: string): boolean => /[*?[\]]/.test(s);

/**
 * Parses `--set PATTERN.KEY[+]=VALUE` values into overrides per target name (buildx's
 * newOverrides): the pattern is a target name or a glob over the target names.
 */
export function parseOverrides(config: BakeConfig, sets: readonly string[], env: Readonly<Record<string, string | undefined>>): Map<string, Map<string, Override>> {
  const out = new Map<string, Map<string, Override>>();
  for (const s of sets) {
    const eq = s.indexOf('=');
    const rawKey = eq < 0 ? s : s.slice(0, eq);
    const value = eq < 0 ? undefined : s.slice(eq + 1);
    const append = rawKey.endsWith('+');
    const key = append ? rawKey.slice(0, -1) : rawKey;
    const dot = key.indexOf('.');
    if (dot <= 0 || dot === key.length - 1) throw new BakeError('KLN0854', `invalid --set "${s}": expected TARGET.KEY=VALUE`, { hint: 'e.g. --set app.tags=app:dev or --set *.platform=linux/amd64' });
    const pattern = key.slice(0, dot);
    const okey = canonicalKey(key.slice(dot + 1), s);
    if (value === undefined && !okey.startsWith('args.')) throw new BakeError('KLN0854', `invalid --set "${s}": expected TARGET.KEY=VALUE`, { hint: 'only args.NAME may omit =VALUE (it takes the environment variable NAME)' });
    let names: string[];
    if (config.targets.has(pattern)) names = [pattern];
    else {
      const re = globRegExp(pattern);
      names = [...config.targets.keys()].filter((n) => re.test(n));
      if (names.length === 0) throw new BakeError('KLN0854', `--set "${s}": no target matches "${pattern}"`, { hint: `targets: ${[...config.targets.keys()].join(', ')}` });
    }
    for (const n of names) {
      const m = out.get(n) ?? new Map<string, Override>();
      addOverride(m, okey, value, append, env);
      out.set(n, m);
    }
  }
  return out;
}

/** buildx's sanitizeTargetName: `.` in a requested name is `_` (matrix names use `_` too). */
const sanitize = (n: string): string => n.replaceAll('.', '_');

/**
 * The targets `names` (targets, groups, or globs over both; default `default`) resolve to, with
 * inherits applied, the `--set` overrides, buildx's defaults (context `.`, dockerfile
 * `Dockerfile`) and the targets linked as `target:NAME` contexts (output cacheonly).
 */
export function resolveTargets(config: BakeConfig, requested: readonly string[], overrides: ReadonlyMap<string, ReadonlyMap<string, Override>>): Resolved {
  const names: string[] = [];
  for (const raw of requested.length === 0 ? ['default'] : requested) {
    const n = sanitize(raw);
    if (!isPattern(n)) {
      names.push(n);
      continue;
    }
    const re = globRegExp(n);
    const m = [...config.groups.keys(), ...config.targets.keys()].filter((x) => re.test(x));
    if (m.length === 0) throw new BakeError('KLN0853', `could not find any target matching "${raw}"`, { hint: knownHint(config) });
    names.push(...m);
  }
  const wanted = [...new Set(names)];
  // Each target's inherits are merged once (a diamond of inherits would be exponential).
  const inherited = new Map<string, Target>();
  const resolveOne = (name: string): Target => resolveTarget(config, name, (n) => overrides.get(n), inherited);
  const targets = new Map<string, ResolvedTarget>();
  const groups = new Map<string, Group>();
  for (const n of wanted) {
    const { targets: ts, groups: gs } = expandGroup(config, n, new Set());
    for (const t of ts) if (!targets.has(t)) targets.set(t, { name: t, target: resolveOne(t), linked: false });
    for (const g of gs) {
      const def = config.groups.get(g);
      if (def !== undefined) groups.set(g, { ...def, targets: [...def.targets] });
    }
  }
  // buildx: the requested names that are not the default group itself form the default group.
  const dflt = groups.get('default');
  for (const n of wanted) {
    if (dflt !== undefined && n === 'default') continue;
    const g = groups.get('default') ?? { targets: [] };
    g.targets = [...new Set([...g.targets, n])].sort();
    groups.set('default', g);
  }
  const linked = new Set<string>();
  for (const [name, rt] of [...targets]) if (!linked.has(name)) linkTargets(config, name, rt.target, targets, resolveOne, [name], linked);
  return { targets: new Map([...targets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), groups };
}

function knownHint(config: BakeConfig): string {
  const all = [...config.groups.keys(), ...config.targets.keys()];
  return all.length === 0 ? 'the bake files define no targets' : `defined: ${all.join(', ')}`;
}

function expandGroup(config: BakeConfig, name: string, visiting: Set<string>): { targets: string[]; groups: string[] } {
  const g = config.groups.get(name);
  if (g === undefined) return { targets: [name], groups: [] };
  if (visiting.has(name)) return { targets: [], groups: [] };
  visiting.add(name);
  const targets: string[] = [];
  const groups = [name];
  for (const t of g.targets) {
    const sub = expandGroup(config, t, visiting);
    targets.push(...sub.targets);
    groups.push(...sub.groups);
  }
  visiting.delete(name);
  return { targets: [...new Set(targets)], groups: [...new Set(groups)] };
}

type OverridesOf = (name: string) => ReadonlyMap<string, Override> | undefined;

function resolveTarget(config: BakeConfig, name: string, overrides: OverridesOf, inherited: Map<string, Target>): Target {
  const merged = inherit(config, name, [], overrides, inherited);
  merged.context ??= '.';
  if (merged.dockerfile === undefined || merged.dockerfile === '') merged.dockerfile = 'Dockerfile';
  normalizeTarget(merged);
  return merged;
}

/**
 * `name`'s definition over its parents', then its `--set` overrides: buildx's Config.target applies
 * the overrides of every target of the chain, so `--set base.KEY=…` reaches what inherits base.
 * Returns a fresh object; `inherited` keeps each result, never handed out itself.
 */
function inherit(config: BakeConfig, name: string, chain: readonly string[], overrides: OverridesOf, inherited: Map<string, Target>): Target {
  const done = inherited.get(name);
  if (done !== undefined) {
    const copy: Target = {};
    mergeTarget(copy, done);
    return copy;
  }
  const def = config.targets.get(name);
  if (def === undefined) {
    const near = suggest(name, [...config.groups.keys(), ...config.targets.keys()]);
    const what = `${chain.length === 0 ? `failed to find target "${name}"` : `target "${chain[chain.length - 1] ?? ''}" inherits "${name}", which is not defined`}${near === undefined ? '' : ` (did you mean ${near}?)`}`;
    throw new BakeError('KLN0853', what, { location: chain.length === 0 ? undefined : config.locations.get(chain[chain.length - 1] ?? ''), hint: knownHint(config) });
  }
  if (chain.includes(name)) {
    throw new BakeError('KLN0853', `inherits cycle: ${[...chain, name].join(' -> ')}`, { location: config.locations.get(name), hint: 'a target cannot inherit from itself, directly or through others' });
  }
  const t: Target = {};
  for (const parent of def.inherits ?? []) mergeTarget(t, inherit(config, parent, [...chain, name], overrides, inherited));
  const own: Target = { ...def };
  delete own.inherits;
  mergeTarget(t, own);
  delete t.inherits;
  const o = overrides(name);
  if (o !== undefined) applyOverrides(t, o);
  const keep: Target = {};
  mergeTarget(keep, t);
  inherited.set(name, keep);
  return t;
}

/** buildx's loadLinks: targets named by `target:NAME` contexts are built too (cacheonly when not requested). */
function linkTargets(config: BakeConfig, name: string, t: Target, all: Map<string, ResolvedTarget>, resolveOne: (name: string) => Target, visited: readonly string[], done: Set<string>): void {
  for (const v of Object.values(t.contexts ?? {})) {
    if (v === null || !v.startsWith('target:')) continue;
    const other = v.slice('target:'.length);
    if (other === name) throw new BakeError('KLN0853', `target ${other} cannot link to itself`, { location: config.locations.get(name) });
    if (visited.includes(other)) throw new BakeError('KLN0853', `infinite loop from ${name} to ${other}`, { location: config.locations.get(name) });
    let rt = all.get(other);
    if (rt === undefined) {
      const linked = resolveOne(other);
      linked.output = ['type=cacheonly'];
      rt = { name: other, target: linked, linked: true };
      all.set(other, rt);
    }
    // A target whose links are all walked has its entitlements complete (a diamond is walked once).
    if (!done.has(other)) linkTargets(config, other, rt.target, all, resolveOne, [...visited, other], done);
    // entitlements are inherited from linked targets
    for (const e of rt.target.entitlements ?? []) if (!(t.entitlements ?? []).includes(e)) t.entitlements = [...(t.entitlements ?? []), e];
  }
  done.add(name);
}

/** buildx's `--print`: `{"group": {...}, "target": {...}}`, two-space indented. */
export function printResolved(r: Resolved): string {
  const group: Record<string, unknown> = {};
  for (const name of [...r.groups.keys()].sort()) {
    const g = r.groups.get(name);
    if (g === undefined) continue;
    group[name] = { ...(g.description === undefined ? {} : { description: g.description }), targets: g.targets };
  }
  const target: Record<string, unknown> = {};
  for (const [name, rt] of r.targets) target[name] = printTarget(rt.target);
  // Go's json.MarshalIndent (buildx's --print) escapes <, >, & and U+2028/U+2029.
  return `${JSON.stringify({ group, target }, null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}

export type { Override };
