/**
 * Dockerfile → LLB, as BuildKit v0.11.6's dockerfile2llb: parse, expand meta ARGs, build the
 * stage graph, resolve reachable base images, dispatch every reachable stage, marshal the
 * target with the target platform and caps, and return the image config beside the LLB.
 */
import { CAPS_V0_11_6, defaultPathEnv, local } from '@kiln/llb-core';
import type { Definition, Platform, ResolvedImageConfig, State } from '@kiln/llb-core';
import { KilnError, suggest } from '../errors.js';
import { parseDockerfile } from '../instructions/parse.js';
import type { Range } from '../parser/ast.js';
import { ShellLex } from '../shell/lex.js';
import { dispatchUser } from './config.js';
import { dispatch, dispatchOnBuildTriggers, locate } from './dispatch.js';
import { DispatchState, DispatchStates, type ArgValue, type DispatchOptions, type ProxyEnvValues } from './dispatch-state.js';
import { cloneImage, emptyImage, goJson, imageToJson, parseDockerImage, parseKeyValue, type DockerImage } from './image.js';
import type { ConvertOptions, ConvertResult, NamedContext } from './options.js';
import { argsEnv, platformArgs, platformOptions, toPlatformOption, type PlatformOptions } from './platform-args.js';
import { lookupNamedContext, namedContextImage, namedContextState, resolveStageBase, type ResolveContext } from './resolve.js';
import { sbomScanTargets } from './sbom-targets.js';
import { onbuildTriggers, reachableStages, toCommand, triggerSources, validateCircularDependency } from './stage-graph.js';
import { withSourceMap } from './source-map.js';
import { InternalName } from './names.js';
import { followPaths, predictContextPaths, sameFollowPaths } from './context-paths.js';
import { dispatchWorkdir } from './workdir.js';
import { startChecks } from '../lint/checks.js';

function toMap(m: ConvertOptions['buildArgs']): Map<string, string> {
  if (m === undefined) return new Map();
  return m instanceof Map ? new Map(m) : new Map(Object.entries(m as Readonly<Record<string, string>>));
}

function proxyEnv(args: ReadonlyMap<string, string>): ProxyEnvValues | undefined {
  const pe: ProxyEnvValues = {};
  let set = false;
  for (const [k, v] of args) {
    switch (k.toLowerCase()) {
      case 'http_proxy': pe.httpProxy = v; set = true; break;
      case 'https_proxy': pe.httpsProxy = v; set = true; break;
      case 'ftp_proxy': pe.ftpProxy = v; set = true; break;
      case 'no_proxy': pe.noProxy = v; set = true; break;
      case 'all_proxy': pe.allProxy = v; set = true; break;
      default:
    }
  }
  return set ? pe : undefined;
}

interface Snapshot {
  readonly d: DispatchState;
  readonly state: State;
  readonly image: DockerImage;
  readonly platform: Platform | undefined;
  readonly cmdIndex: number;
  readonly dispatched: boolean;
}

/**
 * Convert a Dockerfile to LLB and its image config. Throws {@link KilnError} located at the
 * offending instruction (`file:line:column`).
 */
export async function convertDockerfile(source: string | Uint8Array, options: ConvertOptions = {}): Promise<ConvertResult> {
  const file = options.file ?? 'Dockerfile';
  const text = typeof source === 'string' ? source : new TextDecoder().decode(source);
  if (text.length === 0) throw new KilnError('KLN0508', 'the Dockerfile cannot be empty', { location: { file, line: 1, column: 1 } });
  const parsed = parseDockerfile(text, { file });
  if (parsed.stages.length === 0) {
    throw new KilnError('KLN0508', 'dockerfile contains no stages to build', { location: { file, line: 1, column: 1 }, hint: 'add a FROM instruction' });
  }
  const platforms = platformOptions(options.targetPlatform, options.buildPlatforms);
  const buildArgs = toMap(options.buildArgs);
  const shlex = new ShellLex(parsed.ast.escapeToken);
  const checks = startChecks(parsed, text, { file, buildArgs, onWarning: options.onWarning, excludePatterns: options.excludePatterns });
  const namedContexts = options.namedContexts ?? new Map<string, NamedContext>();
  const multiPlatform = options.multiPlatform === true;

  // Meta ARGs: platform args, then the ARGs before the first FROM (build args override).
  const metaArgs: ArgValue[] = platformArgs(platforms).map((a) => (buildArgs.has(a.key) ? { key: a.key, value: buildArgs.get(a.key) } : a));
  for (const cmd of parsed.metaArgs) {
    for (const arg of cmd.args) {
      let value = arg.value;
      if (value !== undefined) {
        try {
          value = shlex.processWord(value, argsEnv(metaArgs));
        } catch (e) {
          throw locate(e, file, { location: cmd.location, source: cmd.node.original });
        }
      }
      metaArgs.push(buildArgs.has(arg.key) ? { key: arg.key, value: buildArgs.get(arg.key) } : { key: arg.key, value });
    }
  }
  const metaEnv = argsEnv(metaArgs);
  checks.checkFrom(platforms, buildArgs, metaArgs, shlex);

  const states = new DispatchStates();
  // Stages replaced by an image context whose config is still to be resolved.
  const namedStages: { ds: DispatchState; nc: NamedContext }[] = [];
  parsed.stages.forEach((stage, i) => {
    const at = { location: stage.location, source: stage.node.original };
    let baseName: string;
    try {
      baseName = shlex.processWord(stage.baseName, metaEnv);
    } catch (e) {
      throw locate(e, file, at);
    }
    if (baseName === '') throw locate(new KilnError('KLN0504', `base name (${stage.baseName}) should not be blank`, { hint: 'declare the ARG before FROM or pass --build-arg' }), file, at);
    const ds = new DispatchState(stage, { baseName, stageName: stage.name });
    if (stage.platform !== '') {
      let p: string;
      try {
        p = shlex.processWord(stage.platform, metaEnv);
      } catch (e) {
        throw locate(e, file, at);
      }
      if (p === '') throw locate(new KilnError('KLN0505', `empty platform value from expression ${stage.platform}`), file, at);
      try {
        ds.platform = toPlatformOption(p);
      } catch (e) {
        throw locate(e, file, at);
      }
    }
    if (stage.name !== '') {
      const nc = lookupNamedContext(namedContexts, stage.name, ds.platform ?? platforms.targetPlatform);
      if (nc !== undefined) {
        ds.state = namedContextState(nc, stage.name, ds.platform ?? platforms.targetPlatform);
        ds.image = nc.imageConfig === undefined ? emptyImage(platforms.targetPlatform) : parseDockerImage(nc.imageConfig);
        if (nc.imageConfig === undefined && nc.imageRef !== undefined) namedStages.push({ ds, nc });
        ds.dispatched = true;
        ds.fromNamedContext = true;
        states.add(ds);
        ds.base = undefined;
        return;
      }
    }
    if (stage.name === '') ds.stageName = `stage-${i}`;
    states.add(ds);
    let total = baseName !== 'scratch' && ds.base === undefined ? 1 : 0;
    for (const c of stage.commands) if (c.name === 'add' || c.name === 'copy' || c.name === 'run' || c.name === 'workdir') total++;
    ds.cmdTotal = total;
    const nc = options.noCache;
    // Stage names compare case-insensitively (BuildKit: strings.EqualFold).
    const name = stage.name.toLowerCase();
    ds.ignoreCache = nc === true || (Array.isArray(nc) && (nc.length === 0 || nc.some((n) => n.toLowerCase() === name)));
  });

  let target: DispatchState | undefined;
  if (options.target === undefined || options.target === '') target = states.states[states.states.length - 1];
  else {
    target = states.findByName(options.target);
    if (target === undefined) {
      const s = suggest(options.target, states.names());
      throw new KilnError('KLN0501', `target stage ${JSON.stringify(options.target)} could not be found${s === undefined ? '' : ` (did you mean ${s}?)`}`, {
        hint: states.names().length > 0 ? `stages are ${states.names().join(', ')}` : 'name a stage with FROM <image> AS <name>',
      });
    }
  }
  if (target === undefined) throw new KilnError('KLN0508', 'dockerfile contains no stages to build');

  for (const d of [...states.states]) {
    d.commands = d.stage.commands.map((cmd) => {
      let sc;
      try {
        sc = toCommand(cmd, states);
      } catch (e) {
        throw locate(e, file, { location: cmd.location, source: cmd.node.original });
      }
      for (const src of sc.sources) {
        if (src === undefined) continue;
        d.deps.set(src, cmd);
        if (src.unregistered) states.add(src);
      }
      return sc;
    });
  }
  validateCircularDependency(states.states, file);
  if (states.states.length === 1) (states.states[0] as DispatchState).stageName = '';

  const reachable = reachableStages(target);
  const locations = new Map<string, Range[]>();
  const recordLocation = (name: string, ranges: readonly Range[]): void => {
    locations.set(name, [...(locations.get(name) ?? []), ...ranges]);
  };

  const cache = new Map<string, Promise<ResolvedImageConfig>>();
  const resolved = new Set<DispatchState>();
  const resolveCtx = (): ResolveContext => ({
    file,
    platforms,
    metaResolver: options.metaResolver,
    resolveMode: options.resolveMode,
    multiPlatform,
    namedContexts,
    stageNames: states.names(),
    signal: options.signal,
    location: (name, ds) => recordLocation(name, [ds.stage.location]),
    cache,
  });
  const resolveAll = async (): Promise<void> => {
    await Promise.all(
      states.states
        .filter((d) => d.base === undefined && !d.fromNamedContext && !resolved.has(d))
        .map(async (d) => {
          resolved.add(d);
          await resolveStageBase(d, reachable.has(d), resolveCtx());
          if (d.unregistered) d.dispatched = true;
        }),
    );
  };
  // A stage replaced by an image context takes that image's config, and its platform when the
  // config names one (BuildKit dockerfile2llb: ds.image = *img; ds.platform from img OS/arch).
  await Promise.all(
    namedStages
      .filter(({ ds }) => reachable.has(ds))
      .map(async ({ ds, nc }) => {
        let img;
        try {
          img = await namedContextImage(resolveCtx(), nc, ds.platform ?? platforms.targetPlatform);
        } catch (e) {
          throw locate(e, file, { location: ds.stage.location, source: ds.stage.node.original });
        }
        if (img === undefined) return;
        ds.image = img;
        if (img.os !== '' && img.architecture !== '') {
          // dockerui's st.WithImageConfig: later ops of this state run on the image's platform
          ds.platform = { os: img.os, architecture: img.architecture, ...(img.variant === undefined || img.variant === '' ? {} : { variant: img.variant }) };
          ds.state = ds.state.platform(ds.platform);
        }
      }),
  );
  await resolveAll();
  // ONBUILD triggers may read other images (`ONBUILD COPY --from=<image>`): register and
  // resolve those before dispatching, as today's BuildKit does.
  for (let round = 0; round < 10; round++) {
    const before = states.states.length;
    for (const d of [...reachable]) {
      for (const trigger of onbuildTriggers(d)) {
        for (const src of triggerSources(trigger, states, file)) {
          if (src.unregistered) states.add(src);
          if (!reachable.has(src)) reachable.add(src);
        }
      }
    }
    if (states.states.length === before) break;
    await resolveAll();
  }
  checks.checkBaseImages(states.states, reachable, metaEnv, shlex);

  const snapshots: Snapshot[] = states.states.map((d) => ({
    d,
    state: d.state,
    image: d.image === undefined ? emptyImage(platforms.targetPlatform) : cloneImage(d.image),
    platform: d.platform,
    cmdIndex: d.cmdIndex,
    dispatched: d.dispatched,
  }));

  const contextName = options.contextName ?? 'context';
  const contextOverride = namedContexts.get(contextName);
  const buildContext = (paths: string[] | undefined): State =>
    contextOverride?.state ??
    local(contextName, {
      ...(options.sessionId ? { sessionId: options.sessionId } : {}),
      ...(options.excludePatterns ? { excludePatterns: options.excludePatterns } : {}),
      sharedKeyHint: contextName,
      customName: InternalName.loadBuildContext,
      ...(paths === undefined ? {} : { followPaths: paths }),
    });

  const caps = new Set(options.caps ?? CAPS_V0_11_6);
  let lastContext: State | undefined;
  const runPass = (context: State): Set<string> => {
    lastContext = context;
    for (const s of snapshots) {
      s.d.state = s.state;
      s.d.image = cloneImage(s.image);
      s.d.platform = s.platform;
      s.d.cmdIndex = s.cmdIndex;
      s.d.dispatched = s.dispatched;
      s.d.buildArgs = [];
      s.d.ctxPaths.clear();
      s.d.cmdSet = false;
    }
    locations.clear();
    checks.commands.beginPass();
    for (const [k, v] of fromLocations) locations.set(k, [...v]);
    let pg = 0;
    const opt: DispatchOptions = {
      file,
      states,
      metaArgs,
      buildArgValues: buildArgs,
      shlex,
      buildContext: context,
      proxyEnv: proxyEnv(buildArgs),
      cacheIdNamespace: options.cacheIdNamespace ?? '',
      targetPlatform: platforms.targetPlatform,
      buildPlatforms: platforms.buildPlatforms,
      caps,
      multiPlatform,
      location: recordLocation,
      extraHosts: options.extraHosts ?? [],
      shmSize: options.shmSize ?? 0,
      ulimits: options.ulimits ?? [],
      cgroupParent: options.cgroupParent ?? '',
      nextProgressGroup: () => `progress-group-${pg++}`,
      checks: checks.commands,
    };
    const ctxPaths = new Set<string>();
    for (const d of states.states) {
      if (!reachable.has(d) || d.dispatched) continue;
      dispatchStage(d, opt, platforms, options);
      for (const p of d.ctxPaths) ctxPaths.add(p);
    }
    return ctxPaths;
  };

  const fromLocations = new Map(locations);
  const toDispatch = states.states.filter((d) => reachable.has(d) && !d.dispatched);
  const predicted = followPaths(predictContextPaths(toDispatch, shlex));
  const actual = followPaths(runPass(buildContext(predicted)));
  if (!sameFollowPaths(predicted, actual) && contextOverride === undefined) runPass(buildContext(actual));

  const checkWarnings = checks.finish();
  const img = target.image;
  if (options.labels !== undefined && Object.keys(options.labels).length > 0) img.config.Labels = { ...(img.config.Labels ?? {}), ...options.labels };
  if (!platforms.implicitTarget) {
    img.os = platforms.targetPlatform.os;
    img.architecture = platforms.targetPlatform.architecture;
    if (platforms.targetPlatform.variant) img.variant = platforms.targetPlatform.variant;
    else delete img.variant;
  }
  let definition: Definition;
  try {
    definition = target.state.marshalSync({
      platform: platforms.targetPlatform,
      caps,
      ...(options.localUniqueId === undefined ? {} : { localUniqueId: options.localUniqueId }),
    });
  } catch (e) {
    throw locate(e, file, { location: target.stage.location, source: target.stage.node.original });
  }
  if (options.sourceMap !== false) definition = withSourceMap(definition, file, text, locations);
  const imageConfig = imageToJson(img);
  return {
    definition,
    imageConfig,
    imageConfigJson: goJson(imageConfig),
    state: target.state,
    targetPlatform: platforms.targetPlatform,
    checkWarnings,
    unmatchedNoCache: unmatchedNoCache(options.noCache, states.names()),
    sbom: sbomScanTargets(target, reachable, metaArgs, lastContext),
  };
}

/** Inherit the base (stage or image config), run ONBUILD triggers, then every command. */
function dispatchStage(d: DispatchState, opt: DispatchOptions, platforms: PlatformOptions, options: ConvertOptions): void {
  d.dispatched = true;
  if (d.base !== undefined) {
    d.state = d.base.state;
    d.platform = d.base.platform;
    d.image = cloneImage(d.base.image);
  }
  const at = { location: d.stage.location, source: d.stage.node.original };
  const env = d.image.config.Env ?? [];
  if (!env.some((e) => parseKeyValue(e)[0] === 'PATH')) {
    d.image.config.Env = [...env, `PATH=${defaultPathEnv(d.platform?.os ?? platforms.targetPlatform.os)}`];
  }
  for (const e of d.image.config.Env ?? []) {
    const [k, v] = parseKeyValue(e);
    d.state = d.state.addEnv(k, v);
  }
  if (options.hostname) d.state = d.state.hostname(options.hostname);
  try {
    if (d.image.config.WorkingDir) dispatchWorkdir(d, { path: d.image.config.WorkingDir });
    if (d.image.config.User) dispatchUser(d, { user: d.image.config.User }, false);
  } catch (e) {
    throw locate(e, opt.file, at);
  }
  if (options.forceNetworkMode !== undefined) d.state = d.state.network(options.forceNetworkMode);
  dispatchOnBuildTriggers(d, d.image.config.OnBuild ?? [], opt);
  d.image.config.OnBuild = null;
  for (const sc of d.commands) dispatch(d, sc, opt);
}

/** The `noCache` stage names no stage has (compared case-insensitively, as the stages are), said with the stages there are. */
function unmatchedNoCache(noCache: ConvertOptions['noCache'], stages: readonly string[]): string[] {
  if (!Array.isArray(noCache)) return [];
  const have = new Set(stages.map((n) => n.toLowerCase()));
  return noCache
    .filter((n) => n !== '' && !have.has(n.toLowerCase()))
    .map((n) => {
      const near = suggest(n, stages);
      const list = stages.length === 0 ? 'no stage has a name' : `stages: ${stages.join(', ')}`;
      return `no stage named ${JSON.stringify(n)} (${list}${near === undefined ? '' : `; did you mean ${near}?`})`;
    });
}
