/**
 * The order resolver: turns the project's group or the builder's order (plus pre/post groups)
 * into the flat groups of component buildpacks detect tries, in the order lifecycle tries them.
 * Composites expand depth-first, left to right; an optional composite adds a copy of its group
 * without it, right after (lifecycle's detectOrder appends an empty group to an optional order).
 */
import { suggest } from '@kiln/llb-core';
import type { BuildpackDescriptor, GroupEntry, Order } from './descriptors.js';
import { BuildpacksError } from './errors.js';

/** Finds a buildpack by id and optional version; throws KLN0902 when it is not there. */
export type BuildpackLookup = (entry: GroupEntry) => BuildpackDescriptor;

/** A group entry whose version is pinned (the descriptor's). */
export interface ResolvedEntry extends GroupEntry {
  readonly version: string;
  readonly descriptor: BuildpackDescriptor;
}

/** `id@version` (`extension id@version` for an image extension), the key detect results are memoised under. */
export const entryKey = (e: { readonly id: string; readonly version?: string | undefined; readonly extension?: boolean | undefined }): string =>
  `${e.extension === true ? 'extension ' : ''}${e.version === undefined ? e.id : `${e.id}@${e.version}`}`;

/** Buildpacks and extensions are looked up and deduplicated by kind and id (lifecycle's hasIDForKind). */
const kindId = (e: { readonly id: string; readonly extension?: boolean | undefined }): string => `${e.extension === true ? 'x' : 'b'}:${e.id}`;

const MAX_DEPTH = 32;

function expandOrder(order: Order, lookup: BuildpackLookup, path: readonly string[]): ResolvedEntry[][] {
  return order.flatMap((group) => expandGroup(group, lookup, path));
}

function expandGroup(group: readonly GroupEntry[], lookup: BuildpackLookup, path: readonly string[]): ResolvedEntry[][] {
  let alternatives: ResolvedEntry[][] = [[]];
  for (const entry of group) {
    const descriptor = lookup(entry);
    if (descriptor.order === undefined) {
      const resolved: ResolvedEntry = { id: descriptor.id, version: descriptor.version, optional: entry.optional, ...(entry.extension === true ? { extension: true } : {}), descriptor };
      alternatives = alternatives.map((a) => [...a, resolved]);
      continue;
    }
    const key = entryKey({ id: descriptor.id, version: descriptor.version });
    if (path.includes(key) || path.length >= MAX_DEPTH) {
      throw new BuildpacksError('KLN0902', `composite buildpack ${key} includes itself (${[...path, key].join(' -> ')})`);
    }
    const inner = expandOrder(descriptor.order, lookup, [...path, key]);
    if (entry.optional) inner.push([]);
    alternatives = alternatives.flatMap((a) => inner.map((i) => [...a, ...i]));
  }
  // lifecycle skips a buildpack already in the group (hasIDForKind on `done`)
  return alternatives.map((a) => a.filter((e, i) => a.findIndex((o) => kindId(o) === kindId(e)) === i));
}

/** Inputs of {@link resolveOrder}: the order to try, the groups around it and the image extensions' order. */
export interface OrderInput {
  readonly order: Order;
  readonly pre?: readonly GroupEntry[];
  readonly post?: readonly GroupEntry[];
  /** `[[order-extensions]]`: its groups go in front of every group of `order` (entries marked `extension`, optional). */
  readonly extensions?: Order;
}

/**
 * The flat groups detect tries, in order. Pre and post entries whose id is already in a group
 * are skipped for that group. With image extensions, each group of the order is tried behind
 * each extension group in turn and then alone (lifecycle's PrependExtensions puts the
 * extensions' order, detected as an optional order, in front of every group).
 */
export function resolveOrder(input: OrderInput, lookup: BuildpackLookup): ResolvedEntry[][] {
  const pre = input.pre ?? [];
  const post = input.post ?? [];
  const preGroups = pre.length === 0 ? [[]] : expandGroup(pre, lookup, []);
  const postGroups = post.length === 0 ? [[]] : expandGroup(post, lookup, []);
  const extGroups = expandOrder((input.extensions ?? []).map((g) => g.map((e) => ({ ...e, optional: true, extension: true }))), lookup, []);
  const out: ResolvedEntry[][] = [];
  for (const top of input.order) {
    const flat: ResolvedEntry[][] = [];
    for (const g of expandGroup(top, lookup, [])) {
      const ids = new Set(g.map(kindId));
      for (const p of preGroups) {
        for (const q of postGroups) flat.push([...p.filter((e) => !ids.has(kindId(e))), ...g, ...q.filter((e) => !ids.has(kindId(e)))]);
      }
    }
    for (const x of extGroups) out.push(...flat.map((g) => [...x, ...g]));
    out.push(...flat);
  }
  return out;
}

/** A lookup over a list of descriptors: exact version, else the only (or highest) version of the id. */
export function lookupIn(descriptors: readonly BuildpackDescriptor[]): BuildpackLookup {
  return (entry) => {
    const ext = entry.extension === true;
    const same = descriptors.filter((d) => d.id === entry.id && (d.extension !== undefined) === ext);
    const found = entry.version === undefined ? same.sort((a, b) => compareVersions(b.version, a.version))[0] : same.find((d) => d.version === entry.version);
    if (found === undefined) {
      const have = same.map((d) => d.version).join(', ');
      const what = ext ? 'image extension' : 'buildpack';
      const hint = ext ? 'an extension of [[order-extensions]] must be in /cnb/extensions/<id>/<version>/extension.toml' : 'list the builder buildpacks in /cnb/buildpacks, or fix the id in project.toml or order.toml';
      // a near id (kt/htpd), or the version written into the id as pack's --buildpack takes it
      const [atId, atVersion] = entry.id.split('@');
      const others = [...new Set(descriptors.filter((d) => (d.extension !== undefined) === ext).map((d) => d.id))];
      const near = have !== '' ? undefined : entry.version === undefined && atVersion !== undefined && others.includes(atId ?? '') ? `write id = "${atId}" and version = "${atVersion}"` : suggest(entry.id, others);
      throw new BuildpacksError('KLN0902', `${what} ${entryKey({ id: entry.id, version: entry.version })} is not in the builder${have === '' ? '' : ` (it has ${entry.id} ${have})`}${near === undefined ? '' : near.startsWith('write') ? ` (${near})` : ` (did you mean ${near}?)`}`, { hint });
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
