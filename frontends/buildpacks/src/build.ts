/**
 * Build: one ExecOp per buildpack of the chosen group, in order, each on the previous one's
 * root, `/workspace` and `/layers`. After each, the buildpack's layer tomls and
 * launch/build/store.toml are read, so later buildpacks see the env of earlier build layers.
 * Cache layers are restored from a cache mount before the buildpack runs and saved by a helper
 * exec after it.
 */
import { mkfile, scratch } from '@kiln/llb-core';
import type { Ref, State } from '@kiln/llb-core';
import { readBuildToml, readLaunchToml, readLayerToml, readStoreToml, type LaunchToml, type LayerMetadata } from './descriptors.js';
import type { PlanEntry } from './detect-resolve.js';
import { buildpackDir, buildpackEnv, type LifecycleContext } from './detect.js';
import { BUILD_ROOT_DIRS, envDirOps, rootDirOps, type EnvOp } from './env.js';
import { BuildpacksError } from './errors.js';
import { listOptional, readEnvDir, readOptional, solveState } from './client-io.js';
import type { ResolvedEntry } from './order.js';
import { toToml, type Table } from './toml.js';
import { restoreActions, type PreviousImage } from './analyze.js';
import { HELPERS_DIR } from './helpers.js';
import { Paths, escapeId, shQuote } from './wire.js';

/** One layer a buildpack left in `/layers/<bp>/<name>`. */
export interface BuiltLayer {
  readonly name: string;
  readonly metadata: LayerMetadata;
  /** The layer directory exists (a toml may describe a layer without one). */
  readonly hasDir: boolean;
}

/** What one buildpack's build produced. */
export interface BuiltBuildpack {
  readonly entry: ResolvedEntry;
  readonly layers: readonly BuiltLayer[];
  readonly launch: LaunchToml;
  readonly store?: Table;
  /** SBOM files the buildpack wrote next to its layers: `<layer>.sbom.<ext>` and `launch.sbom.<ext>` (file names). */
  readonly sbom: readonly string[];
}

/** SBOM file names a buildpack may write (Buildpack API >= 0.7): CycloneDX, SPDX, Syft JSON. */
export const SBOM_FILE_RE = /^(.+)\.sbom\.(cdx|spdx|syft)\.json$/;

/** The build's outputs: the final root filesystem holds `/workspace` and `/layers`. */
export interface BuildOutput {
  readonly buildpacks: readonly BuiltBuildpack[];
  readonly root: State;
  /** A solved ref of {@link root}. */
  readonly rootRef: Ref;
}

const RESERVED_LAYER_NAMES = new Set(['launch', 'build', 'store']);


/** Options of {@link build}. */
export interface BuildOptions {
  readonly cacheId: string;
  /** The build image with `/workspace` (the app) and `/layers`, owned by the CNB user. */
  readonly root: State;
  readonly owner: { readonly uid: number; readonly gid: number };
  /** The previous image's layer metadata and stores, restored before each buildpack builds. */
  readonly previous?: PreviousImage;
}

/** Runs the build phase for the detected group. */
export async function build(ctx: LifecycleContext, group: readonly ResolvedEntry[], plan: readonly PlanEntry[], opts: BuildOptions): Promise<BuildOutput> {
  let root = opts.root;
  let rootRef: Ref | undefined;
  const met = new Set<string>();
  const envOps: EnvOp[] = [];
  const built: BuiltBuildpack[] = [];
  for (const e of group) {
    const esc = escapeId(e.id);
    const layersDir = `${Paths.layers}/${esc}`;
    const entries = plan.filter((p) => !met.has(p.name) && p.providers.some((g) => g.id === e.id));
    const planToml = toToml({ entries: entries.flatMap((p) => p.requires.map((r) => ({ name: r.name, ...(r.metadata === undefined ? {} : { metadata: r.metadata }) }))) });
    const planState = scratch().file(mkfile('/plan.toml', 0o644, planToml), { customName: `[internal] build plan of ${e.id}` });
    const cacheMountId = `kiln-cnb/${opts.cacheId}/${esc}`;
    const restore = restoreActions(opts.previous, e.id, opts.owner);
    if (restore !== undefined) root = root.file(restore, { customName: `[analyze] ${e.id} metadata of ${opts.previous?.ref ?? ''}` });
    const exec = root.run({
      args: [`${HELPERS_DIR}/build`, `${buildpackDir(e)}/bin/build`, layersDir, Paths.platform, `${Paths.kilnPlan}/plan.toml`],
      dir: Paths.workspace,
      user: ctx.user,
      env: buildpackEnv(ctx, e, { CNB_LAYERS_DIR: layersDir, CNB_BP_PLAN_PATH: `${Paths.kilnPlan}/plan.toml` }, envOps),
      mounts: [
        { target: Paths.platform, source: ctx.platform, readonly: true },
        { target: Paths.buildpacks, source: ctx.buildpacks, readonly: true },
        { target: Paths.kilnPlan, source: planState, readonly: true },
        { target: Paths.kilnCache, cache: { id: cacheMountId, sharing: 'locked' } },
        { target: HELPERS_DIR, source: ctx.helpers, readonly: true },
      ],
      customName: `[build] ${e.id}@${e.version}`,
    });
    root = exec.root();
    const ref = (rootRef = await solveState(ctx.client, root));
    const out = await readBuildpackOutput(ctx, ref, e);
    const unmet = new Set(out.unmet);
    for (const p of entries) if (!unmet.has(p.name)) met.add(p.name);
    for (const l of out.layers) {
      if (!l.metadata.build || !l.hasDir) continue;
      const dir = `${layersDir}/${l.name}`;
      const present = new Set((await listOptional(ref, dir)).filter((x) => x.dir).map((x) => x.name));
      envOps.push(...rootDirOps(dir, present, BUILD_ROOT_DIRS));
      for (const sub of ['env', 'env.build']) if (present.has(sub)) envOps.push(...envDirOps(await readEnvDir(ref, `${dir}/${sub}`)));
    }
    await saveCache(ctx, root, e, out.layers, out.store, cacheMountId);
    built.push({ entry: e, layers: out.layers, launch: out.launch, sbom: out.sbom, ...(out.store === undefined ? {} : { store: out.store }) });
  }
  if (rootRef === undefined) throw new BuildpacksError('KLN0903', 'the detected group is empty');
  return { buildpacks: built, root, rootRef };
}

async function readBuildpackOutput(ctx: LifecycleContext, ref: Ref, e: ResolvedEntry): Promise<{ layers: BuiltLayer[]; launch: LaunchToml; unmet: readonly string[]; store?: Table; sbom: string[] }> {
  const esc = escapeId(e.id);
  const base = `${Paths.layers}/${esc}`;
  const listing = await listOptional(ref, base);
  const dirs = new Set(listing.filter((x) => x.dir).map((x) => x.name));
  const layers: BuiltLayer[] = [];
  for (const f of listing.filter((x) => !x.dir && x.name.endsWith('.toml')).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const name = f.name.slice(0, -'.toml'.length);
    if (RESERVED_LAYER_NAMES.has(name)) continue;
    const file = `${e.id}: layers/${esc}/${f.name}`;
    const metadata = readLayerToml((await readOptional(ref, `${base}/${f.name}`)) ?? '', file, e.descriptor.api, (message) => ctx.client.warn({ message }));
    if ((metadata.build || metadata.cache) && !dirs.has(name)) {
      throw new BuildpacksError('KLN0905', `${file}: layer ${name} has a toml but no directory`);
    }
    layers.push({ name, metadata, hasDir: dirs.has(name) });
  }
  const launchText = await readOptional(ref, `${base}/launch.toml`);
  const launch = launchText === undefined ? { labels: [], processes: [], slices: [] } : readLaunchToml(launchText, `${e.id}: launch.toml`, e.id);
  const defaults = launch.processes.filter((p) => p.default);
  if (defaults.length > 1) throw new BuildpacksError('KLN0905', `${e.id}: launch.toml marks ${defaults.length} processes as default (at most one)`);
  const buildText = await readOptional(ref, `${base}/build.toml`);
  const storeText = await readOptional(ref, `${base}/store.toml`);
  return {
    layers,
    launch,
    unmet: buildText === undefined ? [] : readBuildToml(buildText, `${e.id}: build.toml`).unmet,
    sbom: listing.filter((x) => !x.dir && SBOM_FILE_RE.test(x.name)).map((x) => x.name).sort(),
    ...(storeText === undefined ? {} : { store: readStoreToml(storeText, `${e.id}: store.toml`) }),
  };
}

/**
 * Copies the buildpack's `cache=true` layers (and store.toml) into its cache mount, each with a
 * toml that keeps the metadata but not `[types]`: a restored layer must be claimed again by
 * the buildpack (Buildpack API >= 0.6). The exec takes the build output as input, so it reruns
 * exactly when the build did.
 */
async function saveCache(ctx: LifecycleContext, root: State, e: ResolvedEntry, built: readonly BuiltLayer[], store: Table | undefined, cacheMountId: string): Promise<void> {
  const esc = escapeId(e.id);
  const cached = built.filter((l) => l.metadata.cache && l.hasDir);
  const lines = ['set -e', 'find /kiln/cache -mindepth 1 -maxdepth 1 -exec rm -rf {} \\;'];
  for (const l of cached) {
    lines.push(`cp -a ${shQuote(`${Paths.layers}/${esc}/${l.name}`)} /kiln/cache/`);
    lines.push(`printf '%s' ${shQuote(toToml({ metadata: l.metadata.metadata }))} >${shQuote(`/kiln/cache/${l.name}.toml`)}`);
  }
  if (store !== undefined) lines.push(`printf '%s' ${shQuote(toToml({ metadata: store }))} >/kiln/cache/store.toml`);
  if (cached.length === 0 && store === undefined) return;
  const exec = root.run({
    args: ['/bin/sh', '-c', lines.join('\n')],
    user: '0:0',
    mounts: [
      { target: Paths.kilnCache, cache: { id: cacheMountId, sharing: 'locked' } },
    ],
    customName: `[cache] save ${e.id}@${e.version} (${cached.map((l) => l.name).join(', ')}${store === undefined ? '' : cached.length > 0 ? ', store.toml' : 'store.toml'})`,
  });
  await ctx.client.solve({ definition: await exec.root().marshal(), evaluate: true });
}
