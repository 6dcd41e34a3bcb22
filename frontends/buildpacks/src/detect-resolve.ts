/**
 * The detect resolver (lifecycle phase/detector.go DefaultDetectResolver): given one group's
 * detect results, decides whether the group passes and resolves its build plan. Each passing
 * buildpack offers options (its top-level requires/provides, then each `[[or]]`; only the last
 * option keeps the entry's optional flag); options are searched depth-first. Within a trial,
 * provides register in order and a require needs an earlier-or-same provide; an unmet require
 * or an unused provide drops an optional member and retries, else the trial fails. Image
 * extensions (entries marked `extension`, always optional) take part like buildpacks: their
 * provides meet buildpacks' requires, and one whose provides nobody requires is dropped.
 */
import type { DetectPlan, PlanRequire, PlanSections } from './descriptors.js';
import type { GroupEntry } from './descriptors.js';

/** Detect exit status meaning "pass". */
export const DETECT_PASS = 0;
/** Detect exit status meaning "does not apply". */
export const DETECT_FAIL = 100;

/** One buildpack's detect run: its status (0, 100, another code, or -1 for a target mismatch) and plan. */
export interface DetectRun {
  readonly code: number;
  readonly plan: DetectPlan;
}

/** An entry of the resolved build plan. */
export interface PlanEntry {
  readonly name: string;
  readonly providers: readonly GroupEntry[];
  readonly requires: readonly PlanRequire[];
}

/** What {@link resolveGroup} decided. */
export type GroupResolution =
  | { readonly kind: 'pass'; readonly group: readonly GroupEntry[]; readonly plan: readonly PlanEntry[] }
  /** Detection failed (lifecycle ErrFailedDetection): try the next group. */
  | { readonly kind: 'fail'; readonly reason: string }
  /** A required buildpack errored (lifecycle ErrBuildpack). */
  | { readonly kind: 'error'; readonly reason: string };

interface Option {
  readonly el: GroupEntry;
  readonly sections: PlanSections;
}

const same = (a: GroupEntry, b: GroupEntry): boolean => a.id === b.id && a.version === b.version && a.extension === b.extension;
const noOpt = (e: GroupEntry): GroupEntry => ({ id: e.id, ...(e.version === undefined ? {} : { version: e.version }), optional: false, ...(e.extension === true ? { extension: true } : {}) });

interface DepEntry {
  providers: GroupEntry[];
  requires: PlanRequire[];
  earlyRequires: GroupEntry[];
  extraProvides: GroupEntry[];
}

function depMap(trial: readonly Option[]): Map<string, DepEntry> {
  const m = new Map<string, DepEntry>();
  const get = (name: string): DepEntry => {
    let e = m.get(name);
    if (e === undefined) m.set(name, (e = { providers: [], requires: [], earlyRequires: [], extraProvides: [] }));
    return e;
  };
  for (const o of trial) {
    for (const p of o.sections.provides) get(p).extraProvides.push(o.el);
    for (const r of o.sections.requires) {
      const e = get(r.name);
      e.providers.push(...e.extraProvides);
      e.extraProvides = [];
      if (e.providers.length === 0) e.earlyRequires.push(o.el);
      else e.requires.push(r);
    }
  }
  return m;
}

type TrialResult = { readonly ok: true; readonly deps: Map<string, DepEntry>; readonly trial: readonly Option[] } | { readonly ok: false; readonly reason: string };

function runTrial(start: readonly Option[]): TrialResult {
  let trial = start;
  for (;;) {
    const deps = depMap(trial);
    let retry = false;
    for (const [kind, pick] of [
      ['requires', (e: DepEntry) => e.earlyRequires],
      ['provides unused', (e: DepEntry) => e.extraProvides],
    ] as const) {
      for (const [name, entry] of deps) {
        for (const el of pick(entry)) {
          retry = true;
          if (!el.optional) return { ok: false, reason: `${el.id} ${kind} ${name}` };
          trial = trial.filter((o) => !same(o.el, el));
        }
      }
      if (retry) break;
    }
    if (!retry) return trial.length === 0 ? { ok: false, reason: 'no viable buildpacks in group' } : { ok: true, deps, trial };
  }
}

function runTrials(results: readonly { readonly el: GroupEntry; readonly plan: DetectPlan }[], prefix: readonly Option[]): TrialResult {
  const [first, ...rest] = results;
  if (first === undefined) return runTrial(prefix);
  const options = [first.plan.sections, ...first.plan.or];
  let last: TrialResult = { ok: false, reason: 'no options' };
  options.forEach((sections, i) => {
    if (last.ok) return;
    last = runTrials(rest, [...prefix, { el: { ...first.el, optional: first.el.optional && i === options.length - 1 }, sections }]);
  });
  return last;
}

/** Resolves one group from its members' detect runs (`runs` is keyed like the entries, in group order). */
export function resolveGroup(group: readonly GroupEntry[], runs: readonly DetectRun[]): GroupResolution {
  const passed: { el: GroupEntry; plan: DetectPlan }[] = [];
  let detected = true;
  let errored: string | undefined;
  group.forEach((el, i) => {
    const run = runs[i];
    if (run === undefined) throw new Error(`missing detect run of ${el.id}`);
    if (run.code === DETECT_PASS) {
      passed.push({ el, plan: run.plan });
      return;
    }
    // lifecycle sets buildpackErr for optional members too
    if (run.code !== DETECT_FAIL) errored ??= `${el.id} detect ${run.code === -1 ? 'does not support the run image target' : `exited with status ${run.code}`}`;
    detected &&= el.optional;
  });
  if (!detected) return errored === undefined ? { kind: 'fail', reason: 'a required buildpack did not detect' } : { kind: 'error', reason: errored };
  // image extensions alone do not make a group (lifecycle's anyBuildpacksDetected)
  if (!passed.some((p) => p.el.extension !== true)) return { kind: 'fail', reason: 'no buildpack detected' };
  // the trials keep the members' order; options of later members vary fastest
  const r = runTrials(passed, []);
  if (!r.ok) return { kind: 'fail', reason: r.reason };
  const plan: PlanEntry[] = [];
  for (const [name, e] of r.deps) {
    if (e.providers.length === 0 && e.requires.length === 0) continue;
    plan.push({ name, providers: e.providers.map(noOpt), requires: e.requires });
  }
  return { kind: 'pass', group: r.trial.map((o) => noOpt(o.el)), plan };
}
