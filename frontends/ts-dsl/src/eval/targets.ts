/**
 * Named targets: a build file may `export const targets = { api, web }` (each a State, an image
 * result, a function of ctx returning one, or `{ build, description }`) next to, or instead of,
 * its default export. `--target NAME` picks one as a Dockerfile build picks a stage; an unknown
 * name fails as there (the name, the nearest one, the list); `--call=targets` lists them.
 */
import { suggest } from '@kiln/llb-core';
import { ImageResult } from '../dsl/image-result.js';
import { State } from '../dsl/state.js';
import { describeValue } from '../dsl/options.js';
import { TsDslError } from '../errors.js';
import { withBuildLocation, type BuildLocation } from '../dsl/source-location.js';
import type { WireTarget } from './protocol.js';

/** What a target builds: a function of ctx, or a result made at load time (State, image result). */
export type TargetBuild = ((ctx: never) => unknown) | State | ImageResult;

/** One entry of the `targets` export, its shape checked. */
interface NamedTarget {
  readonly build: TargetBuild;
  readonly description?: string;
}

/** The build module as the evaluator sees it. */
export interface BuildModule {
  readonly default?: unknown;
  readonly targets?: unknown;
  /** Not read: a misspelt `targets` export, warned about. */
  readonly target?: unknown;
}

const isBuild = (v: unknown): v is TargetBuild => typeof v === 'function' || v instanceof State || v instanceof ImageResult;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const SHAPE_HINT = 'export const targets = { web, api: (ctx) => …, docs: { build: docs, description: "the static site" } }';

/** Where `export const targets` (or `export { targets }`) is in the entry file (1:1 when it cannot be found). */
export function targetsExportAt(entry: string, text: string | undefined): BuildLocation {
  const lines = (text ?? '').split('\n');
  const i = lines.findIndex((l) => /^\s*export\s+(const|let|var)\s+targets\b/.test(l) || /^\s*export\s*\{[^}]*\btargets\b/.test(l));
  return i < 0 ? { file: entry, line: 1, column: 1 } : { file: entry, line: i + 1, column: (lines[i] ?? '').search(/\S/) + 1 };
}

/** The `targets` export, checked (KLN0803 at the export for a wrong shape); undefined when there is none. */
export function targetsOf(mod: BuildModule, entry: string, text: string | undefined): ReadonlyMap<string, NamedTarget> | undefined {
  const t = mod.targets;
  if (t === undefined) return undefined;
  const at = targetsExportAt(entry, text);
  const fail = (message: string): never => {
    throw withBuildLocation(new TsDslError('KLN0803', message, { hint: SHAPE_HINT }), at);
  };
  if (!isRecord(t) || t instanceof State || t instanceof ImageResult) return fail(`the targets export is ${describeValue(t)}; export an object of name → build`);
  const out = new Map<string, NamedTarget>();
  for (const [name, v] of Object.entries(t)) {
    if (isBuild(v)) out.set(name, { build: v });
    else if (isRecord(v) && isBuild(v['build']) && Object.keys(v).every((k) => k === 'build' || k === 'description')) {
      const d = v['description'];
      if (d !== undefined && typeof d !== 'string') return fail(`targets.${name}.description is ${describeValue(d)}; it must be a string`);
      out.set(name, { build: v['build'], ...(d === undefined ? {} : { description: d }) });
    } else {
      // { buld: … }: name the key, not "an object (Object)"
      const odd = isRecord(v) ? Object.keys(v).find((k) => k !== 'build' && k !== 'description') : undefined;
      const near = odd === undefined ? undefined : suggest(odd, ['build', 'description']);
      if (odd !== undefined) return fail(`targets.${name} has the key "${odd}"${near === undefined ? '' : ` (did you mean ${near}?)`}; a target object is { build, description }`);
      return fail(`targets.${name} is ${describeValue(v)}; a target is a State, state.image({...}), a function of ctx returning one, or { build, description }`);
    }
  }
  if (out.size === 0) return fail('the targets export is empty');
  return out;
}

/**
 * The build to run: without `--target`, the default export; with one and a `targets` export, that
 * target (KLN0806 naming the file, the name, the nearest name and the list when there is none such);
 * with one and no `targets` export, the default export (which reads `ctx.target`).
 */
export function chooseBuild(mod: BuildModule, targets: ReadonlyMap<string, NamedTarget> | undefined, target: string | undefined, entry: string, text: string | undefined): TargetBuild | undefined {
  if (target !== undefined && targets !== undefined) {
    const picked = targets.get(target);
    if (picked !== undefined) return picked.build;
    const names = [...targets.keys()];
    // a name that differs only in case is the likeliest slip (suggest leaves those out)
    const near = names.find((n) => n.toLowerCase() === target.toLowerCase()) ?? suggest(target, names);
    throw withBuildLocation(
      new TsDslError('KLN0806', `target ${JSON.stringify(target)} could not be found in ${entry}${near === undefined ? '' : ` (did you mean ${near}?)`}`, {
        hint: `targets are ${names.join(', ')}; --call=targets lists them`,
      }),
      targetsExportAt(entry, text),
    );
  }
  const d = mod.default;
  if (d === undefined && targets !== undefined) {
    throw withBuildLocation(
      new TsDslError('KLN0806', `${entry} has no default export: name the target to build with --target`, { hint: `targets are ${[...targets.keys()].join(', ')}; or add export default targets.${[...targets.keys()][0] ?? 'NAME'}` }),
      targetsExportAt(entry, text),
    );
  }
  if (isBuild(d)) return d;
  if (isRecord(d) && isBuild(d['build'])) return d['build'];
  return undefined;
}

/**
 * The `--call=targets` list: each target in the order written, its description, and which one a
 * build without `--target` makes (the default export, when it is one of them; else a last
 * `(default)` row, as an unnamed last stage of a Dockerfile is listed).
 */
export function listTargets(mod: BuildModule, targets: ReadonlyMap<string, NamedTarget> | undefined): WireTarget[] {
  const d = mod.default;
  const defaultBuild = isRecord(d) && isBuild(d['build']) ? d['build'] : d;
  const isDefault = (t: NamedTarget, raw: unknown): boolean => d !== undefined && (raw === d || t.build === defaultBuild);
  const list: WireTarget[] = [];
  let found = false;
  const raw = isRecord(mod.targets) ? mod.targets : {};
  for (const [name, t] of targets ?? []) {
    const def: boolean = !found && isDefault(t, raw[name]);
    found ||= def;
    list.push({ name, ...(t.description === undefined ? {} : { description: t.description }), ...(def ? { default: true } : {}) });
  }
  if (!found && d !== undefined) list.push({ name: '', default: true });
  return list;
}
