/**
 * Export: the app image as a merge of the run image, the launch layers (group order, then
 * alphabetical), the app, and the launcher with its config, plus the image config and labels.
 */
import { copy, image, merge, mkdir, scratch, type FileAction } from '@kiln/llb-core';
import type { FrontendClient, ImageConfig, LayerLabelsRequest, Ref, State } from '@kiln/llb-core';
import type { PreviousImage } from './analyze.js';
import type { BuildOutput } from './build.js';
import type { ResolvedEntry } from './order.js';
import { SBOM_FILE_RE } from './build.js';
import { applyEnvOps, envList, envMap, launchEnvOps, opsForProcess, type EnvOp, type LaunchLayerEnv } from './env.js';
import { BuildpacksError } from './errors.js';
import { listOptional, normalizeRef, readEnvDir, solveState } from './client-io.js';
import { launcherScript, processLink } from './launcher.js';
import { mergeProcesses } from './processes.js';
import { toToml } from './toml.js';
import { Label, Paths, PLATFORM_API, escapeId } from './wire.js';

/** mtime of every exported file, as lifecycle's exporter normalizes it (1980-01-01T00:00:01Z). */
const EXPORT_MTIME = new Date('1980-01-01T00:00:01Z');

/** Inputs of {@link exportImage}. */
export interface ExportInput {
  readonly client: FrontendClient;
  readonly build: BuildOutput;
  readonly runImage: string;
  readonly runConfig: ImageConfig;
  /** The run image by digest (`io.buildpacks.lifecycle.metadata` runImage.reference, what rebase compares). */
  readonly runReference?: string;
  /** `process-type` option: the default process. */
  readonly processType?: string;
  readonly project: Readonly<Record<string, unknown>>;
  /** The CNB user and group of the build: exported layers and the app belong to them, as lifecycle writes them. */
  readonly owner: { readonly uid: number; readonly gid: number };
  /** The previous image: launch layers claimed again without a directory are copied from it. */
  readonly previous?: PreviousImage;
  /** `kiln` (default): the sh launcher; `none`: the default process baked into the config (no shell, no exec.d). */
  readonly launcher?: 'kiln' | 'none';
  /** The image extensions of the detected group (`extensions` of the build metadata). */
  readonly extensions?: readonly ResolvedEntry[];
  /** A run image extended by run.Dockerfiles: its State replaces `runImage`'s (`runConfig` is then its config). */
  readonly runBase?: RunBase;
}

/** A run image that image extensions extended: the extended image and where the original ends. */
export interface RunBase {
  readonly state: State;
  /** The original run image's top layer (`runImage.topLayer`: what rebase keeps the app above). */
  readonly topLayer?: string;
}

/** The image's filesystem and config. */
export interface ExportedImage {
  readonly state: State;
  readonly config: ImageConfig;
  /** The `kiln.image.layer-labels` request: which label fields get which layer's diffID. */
  readonly layerLabels: LayerLabelsRequest;
}

/** Builds the app image from the build output. */
export async function exportImage(input: ExportInput): Promise<ExportedImage> {
  const { build } = input;
  const chown = { user: input.owner.uid, group: input.owner.gid };
  const layersRef: Ref = build.rootRef;
  const layerStates: State[] = [];
  const launchEnv: EnvOp[] = [];
  const layerDirs: string[] = [];
  /** JSON pointer of each launch layer's sha in the lifecycle label, in merge order. */
  const layerShas: string[] = [];
  const lifecycleBps: Record<string, unknown>[] = [];
  const labels: Record<string, string> = {};
  let prevRef: Ref | undefined;
  for (const bp of build.buildpacks) {
    const esc = escapeId(bp.entry.id);
    const layerMeta: Record<string, unknown> = {};
    const envLayers: LaunchLayerEnv[] = [];
    for (const l of bp.layers) {
      if (!l.metadata.launch) continue;
      const path = `${Paths.layers}/${esc}/${l.name}`;
      // a launch layer without a directory is the previous image's, reused as it was
      let from: State = build.root;
      let fromRef: Ref = layersRef;
      if (!l.hasDir) {
        const prev = input.previous;
        if (prev === undefined || prev.layers.get(bp.entry.id)?.has(l.name) !== true) {
          throw new BuildpacksError('KLN0905', `${bp.entry.id}: launch layer ${l.name} has no directory and no previous image has it`, { hint: 'pass --build-arg previous-image=IMAGE, or create the layer directory' });
        }
        from = prev.state;
        fromRef = (prevRef ??= await solveState(input.client, prev.state));
      }
      layerStates.push(scratch().file(copy(from, path, path, { createDestPath: true, createdTime: EXPORT_MTIME, chown }), { customName: `[export] layer ${bp.entry.id}:${l.name}${from === build.root ? '' : ' (previous image)'}` }));
      layerDirs.push(path);
      layerShas.push(`/buildpacks/${lifecycleBps.length}/layers/${jsonPointerToken(l.name)}/sha`);
      // lifecycle's LayerMetadata JSON: sha, then LayerMetadataFile's data, build, launch, cache (no omitempty)
      layerMeta[l.name] = { sha: '', data: l.metadata.metadata, build: l.metadata.build, launch: true, cache: l.metadata.cache };
      const present = new Set((await listOptional(fromRef, path)).filter((x) => x.dir).map((x) => x.name));
      const processEnv = new Map<string, Map<string, string>>();
      if (present.has('env.launch')) {
        for (const d of (await listOptional(fromRef, `${path}/env.launch`)).filter((x) => x.dir)) processEnv.set(d.name, await readEnvDir(fromRef, `${path}/env.launch/${d.name}`));
      }
      const envOf = async (sub: string): Promise<Map<string, string>> => (present.has(sub) ? readEnvDir(fromRef, `${path}/${sub}`) : new Map());
      envLayers.push({ dir: path, present, env: await envOf('env'), envLaunch: await envOf('env.launch'), processEnv });
    }
    launchEnv.push(...launchEnvOps(envLayers));
    for (const l of bp.launch.labels) labels[l.key] = l.value;
    lifecycleBps.push({ key: bp.entry.id, version: bp.entry.version, layers: layerMeta, ...(bp.store === undefined ? {} : { store: { metadata: bp.store } }) });
  }
  const exts = input.extensions ?? [];
  const merged = mergeProcesses(build.buildpacks.map((b) => b.launch.processes));
  if (merged.replacedDefaults.length > 0) {
    // lifecycle's builder warns the same way and goes on without a default for that type.
    input.client.warn({ message: `redefining the following default process type with a process not marked as default: ${merged.replacedDefaults.join(', ')}` });
  }
  const processes = merged.processes;
  const bpDefaultType = merged.defaultType;
  let defaultType = bpDefaultType;
  if (input.processType !== undefined) {
    if (!processes.has(input.processType)) throw new BuildpacksError('KLN0907', `process-type ${input.processType} is not a process of this build (${[...processes.keys()].join(', ') || 'none'})`);
    defaultType = input.processType;
  }
  const procs = [...processes.values()];
  const script = launcherScript({ processes: procs, ...(defaultType === undefined ? {} : { defaultType }), env: launchEnv, layerDirs });
  const metadataToml = toToml({
    buildpacks: build.buildpacks.map((b) => ({ id: b.entry.id, version: b.entry.version })),
    ...(exts.length === 0 ? {} : { extensions: exts.map((e) => ({ id: e.id, version: e.version })) }),
    processes: procs.map((p) => ({ type: p.type, command: [...p.command], args: [...p.args], direct: p.direct, 'buildpack-id': p.buildpackId, ...(p.workingDir === undefined ? {} : { 'working-dir': p.workingDir }) })),
  });
  const t = { createdTime: EXPORT_MTIME };
  const none = input.launcher === 'none';
  // /layers/config belongs to the CNB user (lifecycle's config layer holds /layers as the build
  // left it); the launcher and /cnb/process are root's, as lifecycle ships them
  let action = mkdir('/layers/config', 0o755, { parents: true, chown, ...t }).mkfile('/layers/config/metadata.toml', 0o644, metadataToml, { chown, ...t });
  if (!none) {
    action = action.mkdir('/cnb/lifecycle', 0o755, { parents: true, ...t }).mkfile(Paths.launcher, 0o755, script, t).mkdir(Paths.processDir, 0o755, t);
    for (const p of procs) action = action.symlink(Paths.launcher, processLink(p.type), t);
  }
  const launcher = restamped(scratch().file(action, { customName: '[internal] launcher and config files' }), none ? ['/layers'] : ['/cnb', '/layers'], none ? '[export] config' : '[export] launcher and config');
  // launch.toml [[slices]]: each slice is its own app layer (paths relative to the app, a file
  // in an earlier slice is not in a later one), then the rest of the app
  const slices = build.buildpacks.flatMap((b) => b.launch.slices).filter((paths) => paths.length > 0);
  // The rest of the app: /workspace copied whole, so the copy creates it and stamps it. A slice
  // (include patterns) leaves /workspace "now" (files copied into it after it was stamped), so
  // it is staged and copied again whole (twice the I/O, for slices only).
  const appCopy = (name: string, patterns: { includePatterns?: readonly string[]; excludePatterns?: readonly string[] }): State => {
    const whole = patterns.includePatterns === undefined;
    const c = copy(build.root, Paths.workspace, Paths.workspace, { ...(whole ? {} : { copyDirContentsOnly: true }), createDestPath: true, createdTime: EXPORT_MTIME, chown, ...patterns });
    return whole ? scratch().file(c, { customName: `[export] ${name}` }) : restamped(scratch().file(c, { customName: `[internal] ${name} files` }), [Paths.workspace], `[export] ${name}`);
  };
  const appLayers: State[] = [];
  const taken: string[] = [];
  slices.forEach((paths, i) => {
    const include = paths.map(slicePattern);
    appLayers.push(appCopy(`app slice ${i + 1} (${paths.join(', ')})`, { includePatterns: include, ...(taken.length === 0 ? {} : { excludePatterns: [...taken] }) }));
    taken.push(...include);
  });
  appLayers.push(appCopy('app', taken.length === 0 ? {} : { excludePatterns: taken }));
  const run = input.runBase?.state ?? image(normalizeRef(input.runImage));
  // SBOMs of launch layers and of the buildpack (launch.sbom.*) in one layer, where lifecycle puts them
  let sbomAction: FileAction | undefined;
  for (const bp of build.buildpacks) {
    const esc = escapeId(bp.entry.id);
    const launchLayers = new Set(bp.layers.filter((l) => l.metadata.launch).map((l) => l.name));
    for (const f of bp.sbom) {
      const m = SBOM_FILE_RE.exec(f);
      const owner = m?.[1];
      if (owner === undefined || (owner !== 'launch' && !launchLayers.has(owner))) continue;
      const dest = owner === 'launch' ? `/layers/sbom/launch/${esc}/sbom.${m?.[2] ?? ''}.json` : `/layers/sbom/launch/${esc}/${owner}/sbom.${m?.[2] ?? ''}.json`;
      const args = [build.root, `${Paths.layers}/${esc}/${f}`, dest, { createDestPath: true, createdTime: EXPORT_MTIME, chown }] as const;
      sbomAction = sbomAction === undefined ? copy(...args) : sbomAction.copy(...args);
    }
  }
  const sbom = sbomAction === undefined ? [] : [restamped(scratch().file(sbomAction, { customName: '[internal] sbom files' }), ['/layers'], '[export] sbom')];
  const state = merge([run, ...layerStates, ...sbom, ...appLayers, launcher], { customName: '[export] app image' });
  // Every input above the run image is one non-empty layer (each holds at least its directory),
  // and a merge keeps one layer per input: counted from the top they are the launcher (0), the
  // app layers, the SBOM layer, the launch layers, then the run image's top layer.
  const fromTop = (mergeIndex: number): number => layerStates.length + sbom.length + appLayers.length - mergeIndex;
  const shas: Record<string, number> = {};
  layerShas.forEach((ptr, k) => (shas[ptr] = fromTop(k)));
  appLayers.forEach((_, j) => (shas[`/app/${j}/sha`] = fromTop(layerStates.length + sbom.length + j)));
  if (sbom.length > 0) shas['/sbom/sha'] = fromTop(layerStates.length);
  const top = fromTop(layerStates.length + sbom.length + appLayers.length);
  shas['/config/sha'] = top;
  shas['/launcher/sha'] = top;
  shas['/process-types/sha'] = top;
  // lifecycle records the original run image's top layer, below the extension layers (rebase
  // keeps those as the app's). The check that it lies right below the app's layers is left
  // out above extension layers: how many there are is not known here (each Dockerfile step
  // leaves a layer, an empty one too), and the labels count from the top, through the app's
  // layers only.
  const runTop = input.runBase === undefined ? input.runConfig.rootfs?.diff_ids.at(-1) : input.runBase.topLayer;
  const layerLabels: LayerLabelsRequest = { labels: { [Label.lifecycleMetadata]: shas }, ...(runTop === undefined || input.runBase !== undefined ? {} : { check: { layer: fromTop(-1), diffID: runTop } }) };

  const rc = input.runConfig.config ?? {};
  const env = envMap(rc.Env ?? []);
  env.set('CNB_LAYERS_DIR', Paths.layers);
  env.set('CNB_APP_DIR', Paths.workspace);
  env.set('CNB_PLATFORM_API', PLATFORM_API);
  env.set('CNB_DEPRECATION_MODE', 'quiet');
  if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  let proc: { entrypoint: string[]; cmd?: string[]; workingDir: string };
  if (none) {
    // launcher=none: the default process's command, args and env are the config itself
    const p = defaultType === undefined ? undefined : processes.get(defaultType);
    if (p === undefined) throw new BuildpacksError('KLN0907', 'launcher=none needs a default process (set process-type, or a buildpack marks one default)');
    const baked = applyEnvOps(env, opsForProcess(launchEnv, p.type));
    env.clear();
    for (const [k, v] of baked) env.set(k, v);
    proc = { entrypoint: [...p.command], ...(p.args.length === 0 ? {} : { cmd: [...p.args] }), workingDir: p.workingDir ?? Paths.workspace };
  } else {
    env.set('PATH', `${Paths.processDir}:/cnb/lifecycle:${env.get('PATH') ?? ''}`);
    proc = { entrypoint: [defaultType === undefined ? Paths.launcher : processLink(defaultType)], workingDir: Paths.workspace };
  }
  // lifecycle's BuildMetadata JSON: group elements {id, version, homepage} (api is json:"-"),
  // and the default process the buildpacks chose (not the process-type option)
  const buildMetadata = {
    buildpacks: build.buildpacks.map((b) => groupElement(b.entry)),
    // lifecycle's BuildMetadata.Extensions (omitempty): the image extensions of the group
    ...(exts.length === 0 ? {} : { extensions: exts.map(groupElement) }),
    launcher: none ? {} : { version: 'kiln', source: { git: { repository: 'kiln/buildpacks' } } },
    processes: procs.map((p) => ({ type: p.type, command: [...p.command], args: [...p.args], direct: p.direct, buildpackID: p.buildpackId, ...(p.workingDir === undefined ? {} : { 'working-dir': p.workingDir }) })),
    ...(bpDefaultType === undefined ? {} : { 'buildpack-default-process-type': bpDefaultType }),
  };
  // shas are diffIDs only the exporter knows: kiln's fills them from `layerLabels`, an exporter
  // that ignores that key leaves them empty. The launcher, config and process types share a layer.
  const lifecycleMetadata = {
    app: appLayers.map(() => ({ sha: '' })),
    config: { sha: '' },
    launcher: { sha: '' },
    'process-types': { sha: '' },
    ...(sbom.length === 0 ? {} : { sbom: { sha: '' } }),
    buildpacks: lifecycleBps,
    runImage: { topLayer: runTop ?? '', reference: input.runReference ?? '', image: input.runImage },
  };
  const { Cmd: _cmd, ...rest } = rc;
  // the exporter sets `created` (build time or SOURCE_DATE_EPOCH) and the rootfs
  const { created: _created, ...runConfig } = input.runConfig;
  const config: ImageConfig = {
    ...runConfig,
    config: {
      ...rest,
      Env: envList(env),
      Entrypoint: proc.entrypoint,
      ...(proc.cmd === undefined ? {} : { Cmd: proc.cmd }),
      WorkingDir: proc.workingDir,
      Labels: {
        ...(rc.Labels ?? {}),
        ...labels,
        [Label.buildMetadata]: JSON.stringify(buildMetadata),
        [Label.lifecycleMetadata]: JSON.stringify(lifecycleMetadata),
        [Label.projectMetadata]: JSON.stringify(projectMetadata(input.project)),
      },
    },
  };
  return { state, config, layerLabels };
}

/** A group element as lifecycle's JSON writes it: id, version, homepage (api is json:"-"). */
function groupElement(e: ResolvedEntry): Record<string, string> {
  return { id: e.id, version: e.version, ...(e.descriptor.homepage === undefined ? {} : { homepage: e.descriptor.homepage }) };
}

/** `name` as one RFC 6901 JSON pointer token. */
function jsonPointerToken(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * The top directories `tops` of `staged` copied whole into a new layer, every entry (directories
 * too) with {@link EXPORT_MTIME} and its owner kept. Creating a file bumps its directory's mtime
 * to "now", so a tree made by mkdir/mkfile/copy actions has build-time directory mtimes and a new
 * diffID on every run; lifecycle's exporter normalizes every entry. (A directory copied whole,
 * not with copyDirContentsOnly, is created by the copy and gets the copy's createdTime.)
 */
function restamped(staged: State, tops: readonly string[], customName: string): State {
  const [first, ...rest] = tops;
  if (first === undefined) return scratch();
  const opts = { createdTime: EXPORT_MTIME };
  let action = copy(staged, first, first, opts);
  for (const t of rest) action = action.copy(staged, t, t, opts);
  return scratch().file(action, { customName });
}

/** A slice path (a Go glob relative to the app dir) as a local-copy pattern. */
function slicePattern(p: string): string {
  return p.replace(/^\.?\/+/, '').replace(/\/+$/, '');
}

/** `io.buildpacks.project.metadata` from project.toml's `[_]` (0.1: `[project]`), shaped as lifecycle writes it. */
function projectMetadata(project: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const version = project['version'];
  const url = project['source-url'];
  if (typeof version !== 'string' && typeof url !== 'string') return {};
  return { source: { type: 'project', ...(typeof version === 'string' ? { version: { declared: version } } : {}), ...(typeof url === 'string' ? { metadata: { url } } : {}) } };
}
