/**
 * The `kiln/buildpacks` {@link Frontend}: kiln as the CNB lifecycle. Reads project.toml, the
 * builder and its buildpacks through the client; runs detect (one ExecOp per buildpack, groups
 * in order) and build (sequential ExecOps) as LLB; returns the app image (run image + launch
 * layers + app + launcher) and its `containerimage.config`.
 */
import { ResultMetadataKey, mkdir, scratch } from '@kiln/llb-core';
import type { Frontend, FrontendClient, FrontendResult } from '@kiln/llb-core';
import { loadPreviousImage } from './analyze.js';
import { build } from './build.js';
import { resolveImage, solveState } from './client-io.js';
import { detect, type LifecycleContext } from './detect.js';
import { BuildpacksError } from './errors.js';
import { exportImage } from './export.js';
import { helpersState } from './helpers.js';
import { appSource, loadBuilder, loadProject, optOf, platformDir, projectBuildpacks } from './inputs.js';
import { lookupIn, resolveOrder } from './order.js';
import { Opt, Paths } from './wire.js';

/** Creates the `kiln/buildpacks` frontend. */
export function createBuildpacksFrontend(): Frontend {
  return async (client: FrontendClient): Promise<FrontendResult> => {
    const { project } = await loadProject(client);
    const builderRef = optOf(client, Opt.builder) ?? project.builder;
    if (builderRef === undefined || builderRef === '') {
      throw new BuildpacksError('KLN0907', 'no builder: set io.buildpacks.builder in project.toml or pass --build-arg builder=IMAGE');
    }
    const builder = await loadBuilder(client, builderRef);
    const runImage = optOf(client, Opt.runImage) ?? builder.runImages[0];
    if (runImage === undefined) throw new BuildpacksError('KLN0907', `the builder ${builderRef} names no run image (/cnb/run.toml)`, { hint: 'pass --build-arg run-image=IMAGE' });
    const { config: runConfig, reference: runReference } = await resolveImage(client, runImage, 'run');
    const targetEnv = new Map<string, string>([
      ['CNB_TARGET_OS', runConfig.os],
      ['CNB_TARGET_ARCH', runConfig.architecture],
    ]);
    if (runConfig.variant !== undefined) targetEnv.set('CNB_TARGET_ARCH_VARIANT', runConfig.variant);
    const distro = runConfig.config?.Labels ?? {};
    if (distro['io.buildpacks.base.distro.name'] !== undefined) targetEnv.set('CNB_TARGET_DISTRO_NAME', distro['io.buildpacks.base.distro.name']);
    if (distro['io.buildpacks.base.distro.version'] !== undefined) targetEnv.set('CNB_TARGET_DISTRO_VERSION', distro['io.buildpacks.base.distro.version']);

    const user = `${builder.uid}:${builder.gid}`;
    const chown = { user: builder.uid, group: builder.gid };
    const appLocal = appSource(project);
    // /workspace (the app) and /layers owned by the CNB user, as lifecycle's platform prepares them
    const buildRoot = builder.state.file(
      mkdir(Paths.workspace, 0o755, { chown })
        .copy(appLocal, '/', Paths.workspace, { chown, copyDirContentsOnly: true })
        .mkdir(Paths.layers, 0o755, { chown }),
      { customName: '[prepare] app and layers for the CNB user' },
    );
    const bps = await projectBuildpacks(client, project, builder, appLocal);
    const platform = platformDir(client, project);
    const ctx: LifecycleContext = {
      client,
      root: buildRoot,
      user,
      env: builder.env,
      platformEnv: platform.env,
      buildConfigEnv: builder.buildConfigEnv,
      platform: platform.state,
      buildpacks: bps.state,
      targetEnv,
      helpers: helpersState(),
      kiln: scratch().file(mkdir('/out', 0o755, { chown }), { customName: '[internal] detect output dir' }),
    };
    const groups = resolveOrder(
      bps.group.length > 0 ? { order: [bps.group], pre: bps.pre, post: bps.post } : { order: builder.order, pre: bps.pre.length > 0 ? bps.pre : builder.pre, post: bps.post.length > 0 ? bps.post : builder.post },
      lookupIn(bps.descriptors),
    );
    const detected = await detect(ctx, groups);
    const previousRef = optOf(client, Opt.previousImage);
    const previous = previousRef === undefined || previousRef === '' ? undefined : await loadPreviousImage(client, previousRef);
    const owner = { uid: builder.uid, gid: builder.gid };
    const out = await build(ctx, detected.group, detected.plan, { cacheId: optOf(client, Opt.cacheId) ?? 'default', root: buildRoot, owner, ...(previous === undefined ? {} : { previous }) });
    const processType = optOf(client, Opt.processType);
    const launcher = optOf(client, Opt.launcher) ?? 'kiln';
    if (launcher !== 'kiln' && launcher !== 'none') throw new BuildpacksError('KLN0907', `launcher=${launcher} is not supported`, { hint: 'use launcher=kiln (the default) or launcher=none' });
    const img = await exportImage({
      build: out,
      runImage,
      runConfig,
      runReference,
      ...(processType === undefined ? {} : { processType }),
      project: project.project,
      owner,
      client,
      ...(previous === undefined ? {} : { previous }),
      launcher,
    });
    const ref = await solveState(client, img.state);
    const enc = new TextEncoder();
    return {
      ref,
      metadata: new Map([
        [ResultMetadataKey.imageConfig, enc.encode(JSON.stringify(img.config))],
        [ResultMetadataKey.layerLabels, enc.encode(JSON.stringify(img.layerLabels))],
      ]),
    };
  };
}
