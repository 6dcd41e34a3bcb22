/**
 * The `kiln/buildpacks` {@link Frontend}: kiln as the CNB lifecycle. Reads project.toml, the
 * builder and its buildpacks through the client; runs detect (one ExecOp per buildpack, groups
 * in order) and build (sequential ExecOps) as LLB; returns the app image (run image + launch
 * layers + app + launcher) and its `containerimage.config`.
 */
import { ResultMetadataKey, mkdir, scratch } from '@kiln/llb-core';
import type { Frontend, FrontendClient, FrontendResult, ImageConfig } from '@kiln/llb-core';
import { loadPreviousImage } from './analyze.js';
import { build } from './build.js';
import { resolveImage, solveState } from './client-io.js';
import { detect, type LifecycleContext } from './detect.js';
import { BuildpacksError } from './errors.js';
import { exportImage } from './export.js';
import { builderEnv, runExtensions } from './extensions.js';
import { helpersState } from './helpers.js';
import { appSource, extensionsState, loadBuilder, loadProject, optOf, platformDir, prepareRoot, projectBuildpacks, unknownBuildArgWarnings } from './inputs.js';
import { lookupIn, resolveOrder } from './order.js';
import { Opt } from './wire.js';

/** The subrequest ids buildx's `--call` sends, by the flag a user typed. */
const CALLS: ReadonlyMap<string, string> = new Map([
  ['frontend.lint', '--check (--call=check)'],
  ['frontend.outline', '--call=outline'],
  ['frontend.targets', '--call=targets'],
]);

/**
 * `--call=subrequests.describe`: dockerui's describe of a frontend with no subrequest handlers
 * lists only describe itself (BuildKit's definition; PrintDescribe's table as result.txt).
 */
function describeResult(): FrontendResult {
  const meta = [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }];
  const defs = [{ name: 'frontend.subrequests.describe', version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, inputs: null, metadata: meta, refs: null }];
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      // JSON.stringify's 2-space layout is Go's MarshalIndent for this ASCII text
      ['result.json', enc.encode(JSON.stringify(defs, null, 2))],
      ['result.txt', enc.encode('NAME                 VERSION DESCRIPTION\nsubrequests.describe 1.0.0   List available subrequest types\n')],
      ['version', enc.encode('1.0.0')],
    ]),
  };
}

/** Creates the `kiln/buildpacks` frontend. */
export function createBuildpacksFrontend(): Frontend {
  return async (client: FrontendClient): Promise<FrontendResult> => {
    // A subrequest (`--call=check|outline|targets`) has no answer here: refused before anything
    // runs (the whole build ran first, then the CLI found no answer). Describe says so.
    const request = client.opts.get('requestid');
    if (request === 'frontend.subrequests.describe') return describeResult();
    if (request !== undefined && request !== '') {
      throw new BuildpacksError('KLN0906', `the kiln/buildpacks frontend does not answer ${CALLS.get(request) ?? `requestid ${request}`}`, { hint: 'build without --call (or --check); --call=subrequests.describe lists what it answers' });
    }
    const { project, filename } = await loadProject(client);
    for (const k of project.ignoredKeys) client.warn({ message: `${filename}: ignoring ${k}: not a project descriptor key kiln/buildpacks reads` });
    for (const message of unknownBuildArgWarnings(client.opts)) client.warn({ message });
    const builderRef = optOf(client, Opt.builder) ?? project.builder;
    if (builderRef === undefined || builderRef === '') {
      const typo = project.ignoredKeys.find((k) => k.endsWith('(did you mean builder?)'));
      throw new BuildpacksError('KLN0907', `no builder: set io.buildpacks.builder in ${filename} or pass --build-arg builder=IMAGE${typo === undefined ? '' : ` (${filename} has ${typo.replace(' (did you mean builder?)', '')}: did you mean builder?)`}`);
    }
    const builder = await loadBuilder(client, builderRef);
    const runImage = optOf(client, Opt.runImage) ?? builder.runImages[0];
    if (runImage === undefined) throw new BuildpacksError('KLN0907', `the builder ${builderRef} names no run image (/cnb/run.toml)`, { hint: 'pass --build-arg run-image=IMAGE' });
    const { config: runConfig, reference: runReference } = await resolveImage(client, runImage, 'run');
    const targetEnv = targetEnvOf(runConfig);

    const user = `${builder.uid}:${builder.gid}`;
    const chown = { user: builder.uid, group: builder.gid };
    const owner = { uid: builder.uid, gid: builder.gid };
    const appLocal = appSource(project);
    const detectRoot = prepareRoot(builder.state, appLocal, owner);
    const bps = await projectBuildpacks(client, project, builder, appLocal);
    const platform = platformDir(client, project);
    const ctx: LifecycleContext = {
      client,
      root: detectRoot,
      user,
      env: builder.env,
      platformEnv: platform.env,
      buildConfigEnv: builder.buildConfigEnv,
      platform: platform.state,
      buildpacks: bps.state,
      extensions: builder.extensions.length === 0 ? scratch() : extensionsState(builder),
      targetEnv,
      helpers: helpersState(),
      kiln: scratch().file(mkdir('/out', 0o755, { chown }), { customName: '[internal] detect output dir' }),
    };
    // the builder's image extensions go in front of its order and of a project's group alike
    const groups = resolveOrder(
      bps.group.length > 0
        ? { order: [bps.group], pre: bps.pre, post: bps.post, extensions: builder.orderExtensions }
        : { order: builder.order, pre: bps.pre.length > 0 ? bps.pre : builder.pre, post: bps.post.length > 0 ? bps.post : builder.post, extensions: builder.orderExtensions },
      lookupIn([...bps.descriptors, ...builder.extensions]),
    );
    const detected = await detect(ctx, groups);
    const ext = await runExtensions(ctx, builder, detected.extensions, detected.plan, appLocal, { image: runImage, config: runConfig, reference: runReference });
    // the build phase runs on the extended build image, and sees the target of the run image
    // extensions switched to (lifecycle re-reads it after generate)
    const buildCtx: LifecycleContext = {
      ...ctx,
      ...(ext.build === undefined ? {} : { root: prepareRoot(ext.build.state, appLocal, owner), env: builderEnv(ext.build.config) }),
      ...(ext.switchedRun === undefined ? {} : { targetEnv: targetEnvOf(ext.switchedRun.config) }),
    };
    const previousRef = optOf(client, Opt.previousImage);
    const previous = previousRef === undefined || previousRef === '' ? undefined : await loadPreviousImage(client, previousRef);
    const out = await build(buildCtx, detected.group, ext.plan, { cacheId: optOf(client, Opt.cacheId) ?? 'default', root: buildCtx.root, owner, ...(previous === undefined ? {} : { previous }) });
    const processType = optOf(client, Opt.processType);
    const launcher = optOf(client, Opt.launcher) ?? 'kiln';
    if (launcher !== 'kiln' && launcher !== 'none') throw new BuildpacksError('KLN0907', `launcher=${launcher} is not supported`, { hint: 'use launcher=kiln (the default) or launcher=none' });
    // run.Dockerfiles were applied beside the build phase
    const run = await ext.run;
    const img = await exportImage({
      build: out,
      runImage: run.image,
      runConfig: run.config,
      runReference: run.reference,
      ...(run.base === undefined ? {} : { runBase: run.base }),
      extensions: detected.extensions,
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

/** `CNB_TARGET_*` of a run image config (os, arch, variant, distro labels). */
function targetEnvOf(runConfig: ImageConfig): Map<string, string> {
  const targetEnv = new Map<string, string>([
    ['CNB_TARGET_OS', runConfig.os],
    ['CNB_TARGET_ARCH', runConfig.architecture],
  ]);
  if (runConfig.variant !== undefined) targetEnv.set('CNB_TARGET_ARCH_VARIANT', runConfig.variant);
  const distro = runConfig.config?.Labels ?? {};
  if (distro['io.buildpacks.base.distro.name'] !== undefined) targetEnv.set('CNB_TARGET_DISTRO_NAME', distro['io.buildpacks.base.distro.name']);
  if (distro['io.buildpacks.base.distro.version'] !== undefined) targetEnv.set('CNB_TARGET_DISTRO_VERSION', distro['io.buildpacks.base.distro.version']);
  return targetEnv;
}
