/**
 * The order resolver: turns the project's group or the builder's order (plus pre/post groups)
 * into the flat groups of component buildpacks detect tries, in the order lifecycle tries them.
 * Composites expand depth-first, left to right; an optional composite adds a copy of its group
 * without it, right after (lifecycle's detectOrder appends an empty group to an optional order).
 */
import type { BuildpackDescriptor, GroupEntry, Order } from './descriptors.js';
import { BuildpacksError } from './errors.js';

/** Finds a buildpack by id and optional version; throws KLN0902 when it is not there. */
export type BuildpackLookup = (entry: GroupEntry) => BuildpackDescriptor;

/** A group entry whose version is pinned (the descriptor's). */
export interface ResolvedEntry extends GroupEntry {
  readonly version: string;
  readonly descriptor: BuildpackDescriptor;
}

/** `id@version`, the key detect results are memoised under. */
export const entryKey = (e: { readonly id: string; readonly version?: string | undefined }): string => (e.version === undefined ? e.id : `${e.id}@${e.version}`);

const MAX_DEPTH = 32;

function expandOrder(order: Order, lookup: BuildpackLookup, path: readonly string[]): ResolvedEntry[][] {
  return order.flatMap((group) => expandGroup(group, lookup, path));
}

function expandGroup(group: readonly GroupEntry[], lookup: BuildpackLookup, path: readonly string[]): ResolvedEntry[][] {
  let alternatives: ResolvedEntry[][] = [[]];
  for (const entry of group) {
    const descriptor = lookup(entry);
    if (descriptor.order === undefined) {
      const resolved: ResolvedEntry = { id: descriptor.id, version: descriptor.version, optional: entry.optional, descriptor };
      alternatives = alternatives.map((a) => [...a, resolved]);
      continue;
    }
    const key = entryKey(descriptor);
    if (path.includes(key) || path.length >= MAX_DEPTH) {
      throw new BuildpacksError('KLN0902', `composite buildpack ${key} includes itself (${[...path, key].join(' -> ')})`);
    }
    const inner = expandOrder(descriptor.order, lookup, [...path, key]);
    if (entry.optional) inner.push([]);
    alternatives = alternatives.flatMap((a) => inner.map((i) => [...a, ...i]));
  }
  // lifecycle skips a buildpack already in the group (hasIDForKind on `done`)
  return alternatives.map((a) => a.filter((e, i) => a.findIndex((o) => o.id === e.id) === i));
}

/** Inputs of {@link resolveOrder}: the order to try and the groups around it. */
export interface OrderInput {
  readonly order: Order;
  readonly pre?: readonly GroupEntry[];
  readonly post?: readonly GroupEntry[];
}

/**
 * The flat groups detect tries, in order. Pre and post entries whose id is already in a group
 * are skipped for that group.
 */
export function resolveOrder(input: OrderInput, lookup: BuildpackLookup): ResolvedEntry[][] {
  const groups = expandOrder(input.order, lookup, []);
  const pre = input.pre ?? [];
  const post = input.post ?? [];
  if (pre.length === 0 && post.length === 0) return groups;
  const preGroups = expandGroup(pre, lookup, []);
  const postGroups = expandGroup(post, lookup, []);
  const out: ResolvedEntry[][] = [];
  for (const g of groups) {
    const ids = new Set(g.map((e) => e.id));
    for (const p of preGroups) {
      for (const q of postGroups) {
        out.push([...p.filter((e) => !ids.has(e.id)), ...g, ...q.filter((e) => !ids.has(e.id))]);
      }
    }
  }
  return out;
}

/** A lookup over a list of descriptors: exact version, else the only (or highest) version of the id. */
export function lookupIn(descriptors: readonly BuildpackDescriptor[]): BuildpackLookup {
  return (entry) => {
    const same = descriptors.filter((d) => d.id === entry.id);
    const found = entry.version === undefined ? same.sort((a, b) => compareVersions(b.version, a.version))[0] : same.find((d) => d.version === entry.version);
    if (found === undefined) {
      const have = same.map((d) => d.version).join(', ');
      throw new BuildpacksError('KLN0902', `buildpack ${entryKey(entry)} is not in the builder${have === '' ? '' : ` (it has ${entry.id} ${have})`}`, { hint: 'list the builder buildpacks in /cnb/buildpacks, or fix the id in project.toml or order.toml' });
    }
    return found;
  };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).map((s) => Number.parseInt(s, 10));
  const pb = b.split(/[.+-]/).map((s) => Number.parseInt(s, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (Number.isNaN(x) || Number.isNaN(y)) return a.localeCompare(b);
    if (x !== y) return x - y;
  }
  return 0;
}
