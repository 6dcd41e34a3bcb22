/**
 * Generate (Platform API 0.13 generator): each image extension of the detected group writes
 * its output — `build.Dockerfile`, `run.Dockerfile`, `extend-config.toml`, context directories —
 * through `bin/generate` in an ExecOp (or as the static `generate/` directory of an extension
 * without that program). The outputs are read, in group order, and checked by lifecycle's rules;
 * the plan entries an extension got leave the plan the buildpacks build with.
 */
import { copy, mkfile, scratch, type State } from '@kiln/llb-core';
import { readExtendConfigToml, type ExtendArg } from './descriptors.js';
import type { PlanEntry } from './detect-resolve.js';
import { buildpackDir, buildpackEnv, type LifecycleContext } from './detect.js';
import { checkBuildDockerfile, checkRunDockerfile, generatedFile, type RunDockerfileInfo } from './dockerfile-rules.js';
import { listOptional, readOptional, solveState } from './client-io.js';
import type { ResolvedEntry } from './order.js';
import { toToml } from './toml.js';
import { Paths, escapeId } from './wire.js';

/** The two kinds of extension Dockerfile. */
export type DockerfileKind = 'build' | 'run';

/** One Dockerfile an extension generated, ready to be applied. */
export interface GeneratedDockerfile {
  readonly extension: ResolvedEntry;
  readonly kind: DockerfileKind;
  /** The Dockerfile's text. */
  readonly text: string;
  /** Build args from extend-config.toml (`[[build.args]]` or `[[run.args]]`). */
  readonly args: readonly ExtendArg[];
  /** The build context: the output's `context.<kind>/`, else `context/`, else the app (Platform API 0.13). */
  readonly context: State;
  /** For a run.Dockerfile: whether it switches and/or extends the run image. */
  readonly run?: RunDockerfileInfo;
}

/** What generate produced: the Dockerfiles in group order, and the plan left for the buildpacks. */
export interface GenerateResult {
  readonly dockerfiles: readonly GeneratedDockerfile[];
  readonly plan: readonly PlanEntry[];
}

/** The output directory inside the `/kiln` mount (`CNB_OUTPUT_DIR`). */
const OUTPUT_DIR = `${Paths.kiln}/out`;

/** Runs generate for `extensions` (the detected group's, in order) with the detected `plan`; `app` is the default Dockerfile context. */
export async function generate(ctx: LifecycleContext, extensions: readonly ResolvedEntry[], plan: readonly PlanEntry[], app: State): Promise<GenerateResult> {
  let left = [...plan];
  const outputs: { e: ResolvedEntry; output: State }[] = [];
  for (const e of extensions) {
    // the entries this extension provides (lifecycle Plan.Find), all of them met by it (Plan.Filter)
    const mine = left.filter((p) => p.providers.some((g) => g.extension === true && g.id === e.id));
    left = left.filter((p) => !mine.includes(p));
    outputs.push({ e, output: generateOutput(ctx, e, mine) });
  }
  // one extension's generate does not see another's output: they run side by side, read in order
  const read = await Promise.all(outputs.map(({ e, output }) => readOutput(ctx, e, output, app)));
  return { dockerfiles: read.flat(), plan: left };
}

/** The State whose `/out` is the extension's output: bin/generate's, or its static `generate/` directory. */
function generateOutput(ctx: LifecycleContext, e: ResolvedEntry, plan: readonly PlanEntry[]): State {
  const dir = buildpackDir(e);
  if (e.descriptor.extension?.generate === false) {
    const rel = `/${escapeId(e.id)}/${e.version}/generate/*`;
    return ctx.kiln.file(copy(ctx.extensions, rel, `${'/out'}/`, { allowWildcard: true, allowEmptyWildcard: true, createDestPath: true }), { customName: `[generate] extension ${e.id}@${e.version} (static generate/)` });
  }
  const planToml = toToml({ entries: plan.flatMap((p) => p.requires.map((r) => ({ name: r.name, ...(r.metadata === undefined ? {} : { metadata: r.metadata }) }))) });
  const planState = scratch().file(mkfile('/plan.toml', 0o644, planToml), { customName: `[internal] buildpack plan of extension ${e.id}` });
  const planPath = `${Paths.kilnPlan}/plan.toml`;
  const exec = ctx.root.run({
    args: [`${dir}/bin/generate`, OUTPUT_DIR, Paths.platform, planPath],
    dir: Paths.workspace,
    user: ctx.user,
    env: buildpackEnv(ctx, e, { CNB_OUTPUT_DIR: OUTPUT_DIR, CNB_BP_PLAN_PATH: planPath }),
    mounts: [
      { target: Paths.platform, source: ctx.platform, readonly: true },
      { target: Paths.extensions, source: ctx.extensions, readonly: true },
      { target: Paths.kiln, source: ctx.kiln },
      { target: Paths.kilnPlan, source: planState, readonly: true },
    ],
    customName: `[generate] extension ${e.id}@${e.version}`,
  });
  return exec.getMount(Paths.kiln);
}

async function readOutput(ctx: LifecycleContext, e: ResolvedEntry, output: State, app: State): Promise<GeneratedDockerfile[]> {
  // evaluated: a bin/generate that exits non-zero fails the build (read lazily, its missing
  // files would pass for an extension that generated nothing)
  const ref = await solveState(ctx.client, output, { evaluate: true });
  const configText = await readOptional(ref, '/out/extend-config.toml');
  const config = configText === undefined ? { build: [], run: [] } : readExtendConfigToml(configText, generatedFile(e.id, 'extend-config.toml'));
  const dirs = new Set((await listOptional(ref, '/out')).filter((x) => x.dir).map((x) => x.name));
  const contextOf = (kind: DockerfileKind): State => {
    const name = [`context.${kind}`, 'context'].find((d) => dirs.has(d));
    if (name === undefined) return app;
    return scratch().file(copy(output, `/out/${name}`, '/', { copyDirContentsOnly: true }), { customName: `[internal] ${kind}.Dockerfile context of extension ${e.id} (${name}/)` });
  };
  const out: GeneratedDockerfile[] = [];
  // lifecycle reads run.Dockerfile, then build.Dockerfile; each kind is applied in group order
  for (const kind of ['run', 'build'] as const) {
    const text = await readOptional(ref, `/out/${kind}.Dockerfile`);
    if (text === undefined) continue;
    const file = generatedFile(e.id, `${kind}.Dockerfile`);
    if (kind === 'build') {
      for (const w of checkBuildDockerfile(text, e.id)) ctx.client.warn({ message: w.message, file, line: w.line });
      out.push({ extension: e, kind, text, args: config.build, context: contextOf(kind) });
    } else {
      const checked = checkRunDockerfile(text, e.id);
      for (const w of checked.warnings) ctx.client.warn({ message: w.message, file, line: w.line });
      out.push({ extension: e, kind, text, args: config.run, context: contextOf(kind), run: checked.info });
    }
  }
  return out;
}

/** How the run image changes (lifecycle generator's runImageFrom). */
export interface RunImagePlan {
  /** The run image the last switching run.Dockerfile names. */
  readonly withBase?: string;
  /** Whether any run.Dockerfile that counts extends the image. */
  readonly extend: boolean;
  /**
   * The run.Dockerfiles to apply, in order: those from the last switching one on (earlier ones
   * are ignored) that have instructions (one with only FROM changes nothing of the switched image).
   */
  readonly apply: readonly GeneratedDockerfile[];
}

/**
 * Walks the run.Dockerfiles from the last: the last one that switches the run image wins, and
 * every run.Dockerfile before it is ignored (it would have extended an image that is no longer
 * the base); those after it extend the switched image.
 */
export function planRunImage(dockerfiles: readonly GeneratedDockerfile[]): RunImagePlan {
  const runs = dockerfiles.filter((d) => d.kind === 'run');
  let from = 0;
  for (let i = runs.length - 1; i >= 0; i--) {
    if (runs[i]?.run?.withBase !== undefined) {
      from = i;
      break;
    }
  }
  const counted = runs.slice(from);
  const withBase = counted[0]?.run?.withBase;
  const apply = counted.filter((d) => d.run?.extend === true);
  return { ...(withBase === undefined ? {} : { withBase }), extend: apply.length > 0, apply };
}
