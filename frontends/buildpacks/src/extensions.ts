/**
 * The image extension phases after detect (lifecycle's generator and extender): generate the
 * Dockerfiles, extend the build image with the build.Dockerfiles (the build phase needs it),
 * and switch and/or extend the run image with the run.Dockerfiles, which runs beside the build
 * phase (only the export needs it).
 */
import { randomUUID } from 'node:crypto';
import { image, type ImageConfig, type State } from '@kiln/llb-core';
import { normalizeRef, resolveImage } from './client-io.js';
import type { PlanEntry } from './detect-resolve.js';
import type { LifecycleContext } from './detect.js';
import { BUILD_ENV_ALLOWLIST, envMap } from './env.js';
import type { RunBase } from './export.js';
import { applyDockerfiles, type ImageState } from './extend.js';
import { generate, planRunImage } from './generate.js';
import type { Builder } from './inputs.js';
import type { ResolvedEntry } from './order.js';
import { Label } from './wire.js';

/** The run image the app goes on: the builder's (or the option's), switched and/or extended by image extensions. */
export interface RunImage {
  readonly image: string;
  readonly config: ImageConfig;
  /** The image by digest (`runImage.reference`). */
  readonly reference: string;
  /** Set when run.Dockerfiles extended it: the extended image and what lies below its extension layers. */
  readonly base?: RunBase;
}

/** What the extensions changed. */
export interface ExtensionsOutcome {
  /** The plan left for the buildpacks (the entries extensions provide are theirs). */
  readonly plan: readonly PlanEntry[];
  /** The build image extended by build.Dockerfiles. */
  readonly build?: ImageState;
  /** The run image an extension switched to (before any extension of it). */
  readonly switchedRun?: RunImage;
  /** The final run image, once run.Dockerfiles are applied (a rejection is the build's error: await it). */
  readonly run: Promise<RunImage>;
}

/** The builder env a buildpack sees (lifecycle's allowlist) from a build image config. */
export const builderEnv = (config: ImageConfig): Map<string, string> => new Map([...envMap(config.config?.Env ?? [])].filter(([k]) => BUILD_ENV_ALLOWLIST.has(k)));

/**
 * Generate and extend for the detected group's `extensions` (none: nothing changes). `run` is
 * the run image before extensions; `app` the default Dockerfile context.
 */
export async function runExtensions(ctx: LifecycleContext, builder: Builder, extensions: readonly ResolvedEntry[], plan: readonly PlanEntry[], app: State, run: RunImage): Promise<ExtensionsOutcome> {
  if (extensions.length === 0) return { plan, run: Promise.resolve(run) };
  const client = ctx.client;
  const gen = await generate(ctx, extensions, plan, app);
  // one build_id per build, for both kinds (lifecycle's extender makes one per Dockerfile run)
  const buildId = randomUUID();
  const runPlan = planRunImage(gen.dockerfiles);
  let switchedRun: RunImage | undefined;
  if (runPlan.withBase !== undefined) {
    const known = builder.runImages.map(normalizeRef);
    if (!known.includes(normalizeRef(runPlan.withBase))) client.warn({ message: `new runtime base image '${runPlan.withBase}' not found in run metadata (${builder.ref}:/cnb/run.toml)` });
    const { config, reference } = await resolveImage(client, runPlan.withBase, 'run');
    switchedRun = { image: runPlan.withBase, config, reference };
  }
  const base = switchedRun ?? run;
  const finalRun = runPlan.extend ? extendRun(ctx, base, runPlan.apply, buildId) : Promise.resolve(base);
  // awaited by the export; a rejection meanwhile is not unhandled
  finalRun.catch(() => undefined);
  const builds = gen.dockerfiles.filter((d) => d.kind === 'build');
  const build = builds.length === 0 ? undefined : await applyDockerfiles(client, { state: builder.state, config: builder.config }, builds, 'build', buildId);
  return { plan: gen.plan, ...(build === undefined ? {} : { build }), ...(switchedRun === undefined ? {} : { switchedRun }), run: finalRun };
}

/** Applies run.Dockerfiles to `run`: the extended image, its `io.buildpacks.rebasable` label, and where the original ends. */
async function extendRun(ctx: LifecycleContext, run: RunImage, apply: Parameters<typeof applyDockerfiles>[2], buildId: string): Promise<RunImage> {
  const extended = await applyDockerfiles(ctx.client, { state: image(normalizeRef(run.image)), config: run.config }, apply, 'run', buildId);
  const top = run.config.rootfs?.diff_ids.at(-1);
  const labels = { ...(extended.config.config?.Labels ?? {}), [Label.rebasable]: String(extended.rebasable) };
  return {
    ...run,
    config: { ...extended.config, config: { ...extended.config.config, Labels: labels } },
    base: { state: extended.state, ...(top === undefined ? {} : { topLayer: top }) },
  };
}
