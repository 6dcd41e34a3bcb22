/**
 * Detect: one ExecOp per component buildpack, run through a wrapper that records the exit
 * status in a file (so exit 100 neither fails the solve nor defeats caching), groups tried in
 * order with results memoised by `id@version`, each group resolved by {@link resolveGroup}.
 */
import type { FrontendClient, State } from '@kiln/llb-core';
import { readDetectPlan } from './descriptors.js';
import { resolveGroup, type DetectRun, type PlanEntry } from './detect-resolve.js';
import { applyEnvOps, withPlatformEnv, type EnvOp } from './env.js';
import { BuildpacksError } from './errors.js';
import { readOptional, solveState } from './client-io.js';
import { entryKey, type ResolvedEntry } from './order.js';
import { HELPERS_DIR } from './helpers.js';
import { Paths, escapeId } from './wire.js';

/** What detect and build share: the build image, its user, the ro mounts and the base env. */
export interface LifecycleContext {
  readonly client: FrontendClient;
  /** The build image (the builder) with `/workspace` (the app) and `/layers`, owned by the CNB user. */
  readonly root: State;
  readonly user: string;
  /** Builder env after the allowlist. */
  readonly env: ReadonlyMap<string, string>;
  /** Platform env (`/platform/env`), applied unless a buildpack sets clear-env. */
  readonly platformEnv: readonly (readonly [string, string])[];
  /** The builder's `/cnb/build-config/env` ops: the operator has the last word. */
  readonly buildConfigEnv: readonly EnvOp[];
  readonly platform: State;
  readonly buildpacks: State;
  /** `/cnb/extensions` contents (the builder's image extensions). */
  readonly extensions: State;
  /** `CNB_TARGET_*` of the run image. */
  readonly targetEnv: ReadonlyMap<string, string>;
  /** An empty `/kiln/out` owned by the CNB user, for detect outputs. */
  readonly kiln: State;
  /** kiln's helper scripts (helpersState), mounted read-only at `/.kiln`. */
  readonly helpers: State;
}

/** A detect run with the output it printed (shown when the group errors). */
type DetectOutcome = DetectRun & { readonly output: string };

/** The directory of a buildpack inside `/cnb/buildpacks` (of an image extension inside `/cnb/extensions`). */
export const buildpackDir = (e: { readonly id: string; readonly version: string; readonly extension?: boolean | undefined }): string =>
  `${e.extension === true ? Paths.extensions : Paths.buildpacks}/${escapeId(e.id)}/${e.version}`;

/**
 * The env of a buildpack (or extension) process: allowlisted image env, then `ops`, platform env
 * unless clear-env, then the CNB variables (`CNB_EXTENSION_DIR` instead of `CNB_BUILDPACK_DIR`
 * for an extension).
 */
export function buildpackEnv(ctx: LifecycleContext, e: ResolvedEntry, extra: Readonly<Record<string, string>>, ops: Parameters<typeof applyEnvOps>[1] = []): [string, string][] {
  let env = applyEnvOps(ctx.env, ops);
  if (!e.descriptor.clearEnv) env = withPlatformEnv(env, ctx.platformEnv);
  // operator env last ("the platform operator having ultimate say"), clear-env or not
  env = applyEnvOps(env, ctx.buildConfigEnv);
  env.set(e.extension === true ? 'CNB_EXTENSION_DIR' : 'CNB_BUILDPACK_DIR', buildpackDir(e));
  env.set('CNB_PLATFORM_DIR', Paths.platform);
  for (const [k, v] of ctx.targetEnv) env.set(k, v);
  for (const [k, v] of Object.entries(extra)) env.set(k, v);
  return [...env];
}

/** The result of detect: the chosen group (group.toml `[[group]]`), its image extensions (`[[group-extensions]]`) and its build plan. */
export interface DetectResult {
  readonly group: readonly ResolvedEntry[];
  readonly extensions: readonly ResolvedEntry[];
  readonly plan: readonly PlanEntry[];
}

/**
 * What to do about a failed detect. Statuses 126 and 127 come from the shell that could not run
 * bin/detect (a file without its exec bit, a `#!` interpreter the builder lacks), where "must exit
 * 0 or 100" would send the author looking at their program's logic.
 */
export function detectHint(f: { code: number; entry: ResolvedEntry } | undefined): string {
  const program = f === undefined ? undefined : `/cnb/${f.entry.extension === true ? 'extensions' : 'buildpacks'}/${f.entry.id.replaceAll('/', '_')}/${f.entry.version}/bin/detect`;
  if (f?.code === 126) return `${program} could not be executed: give it the exec bit (chmod 755) in the ${f.entry.extension === true ? 'extension' : 'buildpack'} and rebuild the builder`;
  if (f?.code === 127) return `${program} or the interpreter of its #! line was not found in the builder image`;
  return 'a detect program must exit 0 (pass) or 100 (does not apply)';
}

/** Runs detect over `groups` and returns the first group that passes. */
export async function detect(ctx: LifecycleContext, groups: readonly (readonly ResolvedEntry[])[]): Promise<DetectResult> {
  if (groups.length === 0) throw new BuildpacksError('KLN0903', 'no buildpack groups to detect', { hint: 'the builder has no /cnb/order.toml and project.toml names no buildpacks' });
  const runs = new Map<string, Promise<DetectOutcome>>();
  const runOf = (e: ResolvedEntry): Promise<DetectOutcome> => {
    const key = entryKey(e);
    let r = runs.get(key);
    if (r === undefined) runs.set(key, (r = targetMatches(e, ctx.targetEnv) ? runDetect(ctx, e) : Promise.resolve(targetMismatch(e, ctx.targetEnv))));
    return r;
  };
  const errors: string[] = [];
  /** The first failing detect's status and buildpack: 126 and 127 are the shell's, not the program's. */
  let firstFailure: { code: number; entry: ResolvedEntry } | undefined;
  for (const all of groups) {
    // lifecycle skips an optional buildpack whose targets exclude the run image
    const group = all.filter((e) => !e.optional || targetMatches(e, ctx.targetEnv));
    const results = await Promise.all(group.map(runOf));
    const res = resolveGroup(group, results);
    if (res.kind === 'pass') {
      const chosen = res.group.map((g) => group.find((e) => e.id === g.id && e.extension === g.extension) as ResolvedEntry);
      return { group: chosen.filter((e) => e.extension !== true), extensions: chosen.filter((e) => e.extension === true), plan: res.plan };
    }
    if (res.kind === 'error') {
      const failing = group.map((e, i) => ({ e, r: results[i] })).find(({ r }) => r !== undefined && r.code !== 0 && r.code !== 100);
      errors.push(`${res.reason}${failing?.r?.output ? `: ${failing.r.output.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
      if (firstFailure === undefined && failing?.r !== undefined) firstFailure = { code: failing.r.code, entry: failing.e };
    }
  }
  if (errors.length > 0) {
    throw new BuildpacksError('KLN0904', `buildpack detect failed: ${errors[0]}`, { hint: detectHint(firstFailure) });
  }
  const tried = groups.map((g) => `[${g.map((e) => `${e.extension === true ? 'extension ' : ''}${e.id}${e.optional ? '?' : ''}`).join(', ')}]`).join(' ');
  throw new BuildpacksError('KLN0903', `no buildpack group passed detection (tried ${tried})`, { hint: 'check that the app has what the buildpacks look for' });
}

/**
 * Whether a buildpack's `[[targets]]` allow the run image (lifecycle TargetSatisfiedForBuild:
 * os and arch must match where the buildpack names them; no targets means any).
 */
export function targetMatches(e: ResolvedEntry, target: ReadonlyMap<string, string>): boolean {
  const { targets } = e.descriptor;
  if (targets.length === 0) return true;
  const os = target.get('CNB_TARGET_OS');
  const arch = target.get('CNB_TARGET_ARCH');
  const fits = (want: string | undefined, have: string | undefined): boolean => want === undefined || want === '' || want === '*' || want === have;
  return targets.some((t) => fits(t.os, os) && fits(t.arch, arch));
}

/** A required buildpack whose targets exclude the run image errors its group (lifecycle code -1). */
function targetMismatch(e: ResolvedEntry, target: ReadonlyMap<string, string>): DetectOutcome {
  const want = e.descriptor.targets.map((t) => `${t.os ?? '*'}/${t.arch ?? '*'}`).join(', ');
  return { code: -1, plan: { sections: { requires: [], provides: [] }, or: [] }, output: `targets ${want} do not include the run image ${target.get('CNB_TARGET_OS') ?? '?'}/${target.get('CNB_TARGET_ARCH') ?? '?'}` };
}

/** An image extension may only provide (lifecycle: code -1, "outputs requires which is not allowed"). */
function extensionPlanCheck(e: ResolvedEntry, run: DetectOutcome): DetectOutcome {
  if (e.extension !== true || run.code !== 0) return run;
  if (run.plan.sections.requires.length === 0 && run.plan.or.every((o) => o.requires.length === 0)) return run;
  return { ...run, code: -1, output: `${run.output}image extension ${e.id} outputs requires, which is not allowed (an extension may only provide)` };
}

async function runDetect(ctx: LifecycleContext, e: ResolvedEntry): Promise<DetectOutcome> {
  const programs = e.descriptor.extension;
  // an extension without bin/detect passes with its static detect/plan.toml (Buildpack API 0.10)
  if (programs !== undefined && !programs.detect) {
    return extensionPlanCheck(e, { code: 0, plan: readDetectPlan(programs.detectPlan ?? '', `extension ${e.id}@${e.version}: detect/plan.toml`), output: '' });
  }
  return extensionPlanCheck(e, await runDetectExec(ctx, e));
}

async function runDetectExec(ctx: LifecycleContext, e: ResolvedEntry): Promise<DetectOutcome> {
  const plan = '/kiln/out/plan.toml';
  const exec = ctx.root.run({
    args: [`${HELPERS_DIR}/detect`, `${buildpackDir(e)}/bin/detect`, Paths.platform, plan],
    dir: Paths.workspace,
    user: ctx.user,
    env: buildpackEnv(ctx, e, { CNB_BUILD_PLAN_PATH: plan }),
    mounts: [
      { target: Paths.platform, source: ctx.platform, readonly: true },
      e.extension === true ? { target: Paths.extensions, source: ctx.extensions, readonly: true } : { target: Paths.buildpacks, source: ctx.buildpacks, readonly: true },
      { target: Paths.kiln, source: ctx.kiln },
      { target: HELPERS_DIR, source: ctx.helpers, readonly: true },
    ],
    customName: `[detect] ${e.extension === true ? 'extension ' : ''}${e.id}@${e.version}`,
  });
  const ref = await solveState(ctx.client, exec.getMount(Paths.kiln));
  const status = (await readOptional(ref, '/out/status'))?.trim();
  const output = (await readOptional(ref, '/out/output')) ?? '';
  if (status === undefined || !/^\d+$/.test(status)) throw new BuildpacksError('KLN0904', `detect of ${entryKey(e)} did not run (no status)`, { hint: output });
  const code = Number(status);
  const planText = code === 0 ? ((await readOptional(ref, '/out/plan.toml')) ?? '') : '';
  return { code, plan: readDetectPlan(planText, `${entryKey(e)} detect plan`), output };
}
