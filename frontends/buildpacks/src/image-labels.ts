/**
 * The labels a CNB app image carries that tools after the build read and rewrite (`kiln rebase`,
 * as lifecycle's rebaser): names, and the shape of the run image part of
 * `io.buildpacks.lifecycle.metadata`.
 */
import { Label } from './wire.js';

/** CNB image label names (Platform API spec, "Labels"). */
export const CnbLabel = {
  ...Label,
  /** `"false"` when extensions changed the run image: a rebase would drop their changes (needs force). */
  rebasable: 'io.buildpacks.rebasable',
  /** Deprecated stack id, compared by a rebase of an app image older than Platform API 0.12. */
  stackId: 'io.buildpacks.stack.id',
  /** Deprecated stack mixins (JSON array of names, `build:`/`run:` prefixed or not). */
  mixins: 'io.buildpacks.stack.mixins',
  distroName: 'io.buildpacks.base.distro.name',
  distroVersion: 'io.buildpacks.base.distro.version',
} as const;

/** Label prefixes a rebase replaces with the new run image's (lifecycle SyncLabels, Platform API >= 0.12). */
export const RUN_IMAGE_LABEL_PREFIXES: ReadonlyArray<string> = ['io.buildpacks.stack.', 'io.buildpacks.base.'];

/**
 * `runImage` of `io.buildpacks.lifecycle.metadata` (lifecycle's RunImageForRebase): the diffID of
 * the run image's top layer in the app image, the run image by digest, and its name and mirrors.
 */
export interface RunImageMetadata {
  readonly topLayer: string;
  readonly reference: string;
  readonly image?: string;
  readonly mirrors?: ReadonlyArray<string>;
}

/**
 * The `runImage` of an `io.buildpacks.lifecycle.metadata` value, or undefined when the value is
 * not JSON, or has no run image top layer (not an app image a rebase can work on). The deprecated
 * `stack.runImage` {image, mirrors} fills in the name of images made before Platform API 0.12.
 */
export function readRunImageMetadata(label: string): RunImageMetadata | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(label);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const rec = doc as Record<string, unknown>;
  const run = rec['runImage'];
  if (typeof run !== 'object' || run === null) return undefined;
  const r = run as Record<string, unknown>;
  if (typeof r['topLayer'] !== 'string' || r['topLayer'] === '') return undefined;
  const stack = typeof rec['stack'] === 'object' && rec['stack'] !== null ? (rec['stack'] as Record<string, unknown>)['runImage'] : undefined;
  const s = typeof stack === 'object' && stack !== null ? (stack as Record<string, unknown>) : {};
  const image = typeof r['image'] === 'string' && r['image'] !== '' ? r['image'] : typeof s['image'] === 'string' && s['image'] !== '' ? s['image'] : undefined;
  const mirrorsOf = (v: unknown): string[] => (Array.isArray(v) ? v.filter((m): m is string => typeof m === 'string' && m !== '') : []);
  const mirrors = [...mirrorsOf(r['mirrors']), ...mirrorsOf(s['mirrors'])];
  return {
    topLayer: r['topLayer'],
    reference: typeof r['reference'] === 'string' ? r['reference'] : '',
    ...(image === undefined ? {} : { image }),
    ...(mirrors.length === 0 ? {} : { mirrors }),
  };
}
