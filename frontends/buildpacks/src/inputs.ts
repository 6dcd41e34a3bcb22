/**
 * The frontend's inputs: project.toml, the app, the builder (its order, run image, buildpacks)
 * and the platform directory, as States and parsed descriptors.
 */
import { suggest } from '@kiln/llb-core';
import { local, mkdir, scratch, copy, image } from '@kiln/llb-core';
import type { Definition, FrontendClient, ImageConfig, Ref, State } from '@kiln/llb-core';
import { readBuildpackToml, readExtensionToml, readOrderExtensionsToml, readOrderToml, readRunToml, readSystemToml, type BuildpackDescriptor, type GroupEntry, type Order } from './descriptors.js';
import { BuildpacksError } from './errors.js';
import { listOptional, normalizeRef, readEnvDir, readOptional, resolveConfig, solveState } from './client-io.js';
import { gitignoreToPatterns, readProjectToml, type ProjectBuildpack, type ProjectDescriptor } from './project-toml.js';
import { BUILD_ENV_ALLOWLIST, envDirOps, envMap, type EnvOp } from './env.js';
import { DEFAULT_PROJECT_FILE, Opt, Paths, escapeId } from './wire.js';

/** Build args kiln/buildpacks knows and leaves alone: BuildKit's own and the predefined proxy args. */
const PASSED_ARGS = /^(BUILDKIT_.*|(HTTPS?|FTP|NO|ALL)_PROXY|(https?|ftp|no|all)_proxy|SOURCE_DATE_EPOCH)$/;

/**
 * Warnings for `--build-arg`s that are no option of this frontend: a misspelt `builer=` was
 * dropped silently (the builder of project.toml, or none, was used), and a `BP_*=…` meant as
 * build-time env reaches no buildpack without the `env:` prefix.
 */
export function unknownBuildArgWarnings(opts: ReadonlyMap<string, string>): string[] {
  const names = [Opt.builder, Opt.runImage, Opt.processType, Opt.previousImage, Opt.cacheId, Opt.launcher];
  const out: string[] = [];
  for (const k of opts.keys()) {
    if (!k.startsWith('build-arg:')) continue;
    const name = k.slice('build-arg:'.length);
    if ((names as readonly string[]).includes(name) || name.startsWith(Opt.envPrefix) || PASSED_ARGS.test(name)) continue;
    const near = suggest(name, names);
    out.push(`--build-arg ${name} is not a kiln/buildpacks option and is ignored${near === undefined ? `: build-time env is --build-arg env:${name}=VALUE (or [[io.buildpacks.build.env]]); options are ${names.join(', ')}` : ` (did you mean ${near}?)`}`);
  }
  return out;
}

/** A frontend option, also accepted as `build-arg:<name>` (what `kiln build --build-arg` sends). */
export const optOf = (client: FrontendClient, name: string): string | undefined => client.opts.get(name) ?? client.opts.get(`build-arg:${name}`);

/** Reads project.toml from the `dockerfile` input (else the context). Missing: an empty project. */
export async function loadProject(client: FrontendClient): Promise<{ project: ProjectDescriptor; filename: string }> {
  const filename = client.opts.get(Opt.filename) ?? DEFAULT_PROJECT_FILE;
  const input: Definition | undefined = client.inputs.get('dockerfile');
  const ref = await client.solve({
    definition: input ?? (await local('dockerfile', { followPaths: [filename], sharedKeyHint: 'dockerfile', customName: `[internal] load build definition from ${filename}` }).marshal()),
  });
  const text = await readOptional(ref, filename);
  return { project: readProjectToml(text ?? '', filename), filename };
}

/** The builder: its image, config, order, run images and buildpack descriptors. */
export interface Builder {
  readonly ref: string;
  readonly state: State;
  readonly config: ImageConfig;
  readonly uid: number;
  readonly gid: number;
  /** The builder config env a buildpack sees (lifecycle's allowlist). */
  readonly env: ReadonlyMap<string, string>;
  /** The operator's `/cnb/build-config/env` (no suffix = default), applied last to every detect and build. */
  readonly buildConfigEnv: readonly EnvOp[];
  readonly order: Order;
  readonly pre: readonly GroupEntry[];
  readonly post: readonly GroupEntry[];
  readonly runImages: readonly string[];
  readonly descriptors: readonly BuildpackDescriptor[];
  /** `[[order-extensions]]` of `/cnb/order.toml`. */
  readonly orderExtensions: Order;
  /** `/cnb/extensions/<id>/<version>/extension.toml` of every image extension (with which programs it has). */
  readonly extensions: readonly BuildpackDescriptor[];
}

const intEnv = (env: ReadonlyMap<string, string>, name: string, fallback: number): number => {
  const v = env.get(name);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
};

/** The operator env directory of a builder (Platform API build config, `CNB_BUILD_CONFIG_DIR`). */
const BUILD_CONFIG_ENV_DIR = '/cnb/build-config/env';

/** Loads the builder image's metadata through the client. */
export async function loadBuilder(client: FrontendClient, ref: string): Promise<Builder> {
  const config = await resolveConfig(client, ref, 'builder');
  const state = image(normalizeRef(ref));
  const bref = await solveState(client, state);
  const all = envMap(config.config?.Env ?? []);
  const user = (config.config?.User ?? '').split(':');
  const uid = intEnv(all, 'CNB_USER_ID', /^\d+$/.test(user[0] ?? '') ? Number(user[0]) : 0);
  const gid = intEnv(all, 'CNB_GROUP_ID', /^\d+$/.test(user[1] ?? '') ? Number(user[1]) : 0);
  const env = new Map([...all].filter(([k]) => BUILD_ENV_ALLOWLIST.has(k)));
  const orderText = await readOptional(bref, Paths.orderToml);
  const buildConfigEnv = envDirOps(await readEnvDir(bref, BUILD_CONFIG_ENV_DIR), 'default');
  const runText = await readOptional(bref, Paths.runToml);
  const systemText = await readOptional(bref, Paths.systemToml);
  const system = systemText === undefined ? { pre: [], post: [] } : readSystemToml(systemText, `${ref}:${Paths.systemToml}`);
  const descriptors: BuildpackDescriptor[] = [];
  const ids = await listOptional(bref, Paths.buildpacks);
  await Promise.all(
    ids
      .filter((i) => i.dir)
      .map(async (i) => {
        for (const v of (await listOptional(bref, `${Paths.buildpacks}/${i.name}`)).filter((x) => x.dir)) {
          const file = `${Paths.buildpacks}/${i.name}/${v.name}/buildpack.toml`;
          const text = await readOptional(bref, file);
          if (text !== undefined) descriptors.push(readBuildpackToml(text, `${ref}:${file}`));
        }
      }),
  );
  descriptors.sort(byIdVersion);
  return {
    ref,
    state,
    config,
    uid,
    gid,
    env,
    buildConfigEnv,
    order: orderText === undefined ? [] : readOrderToml(orderText, `${ref}:${Paths.orderToml}`),
    pre: system.pre,
    post: system.post,
    runImages: runText === undefined ? [] : readRunToml(runText, `${ref}:${Paths.runToml}`),
    descriptors,
    orderExtensions: orderText === undefined ? [] : readOrderExtensionsToml(orderText, `${ref}:${Paths.orderToml}`),
    extensions: await loadExtensions(bref, ref),
  };
}

const byIdVersion = (a: BuildpackDescriptor, b: BuildpackDescriptor): number => (a.id === b.id ? a.version.localeCompare(b.version) : a.id.localeCompare(b.id));

/**
 * The builder's image extensions: each `/cnb/extensions/<id>/<version>/extension.toml`, with
 * whether `bin/detect` and `bin/generate` exist, and the static `detect/plan.toml` of one
 * without `bin/detect`.
 */
async function loadExtensions(bref: Ref, ref: string): Promise<BuildpackDescriptor[]> {
  const dirs = await Promise.all(
    (await listOptional(bref, Paths.extensions)).filter((x) => x.dir).map(async (i) => (await listOptional(bref, `${Paths.extensions}/${i.name}`)).filter((v) => v.dir).map((v) => `${Paths.extensions}/${i.name}/${v.name}`)),
  );
  const read = await Promise.all(
    dirs.flat().map(async (dir) => {
      const text = await readOptional(bref, `${dir}/extension.toml`);
      if (text === undefined) return undefined;
      const bin = new Set((await listOptional(bref, `${dir}/bin`)).map((x) => x.name));
      const detectPlan = bin.has('detect') ? undefined : await readOptional(bref, `${dir}/detect/plan.toml`);
      return readExtensionToml(text, `${ref}:${dir}/extension.toml`, { detect: bin.has('detect'), generate: bin.has('generate'), ...(detectPlan === undefined ? {} : { detectPlan }) });
    }),
  );
  return read.filter((d): d is BuildpackDescriptor => d !== undefined).sort(byIdVersion);
}

/** `/cnb/extensions` of the builder, mounted read-only into detect and generate. */
export function extensionsState(builder: Builder): State {
  return scratch().file(copy(builder.state, Paths.extensions, '/', { copyDirContentsOnly: true, allowEmptyWildcard: true }), { customName: '[internal] image extensions of the builder' });
}

/** `base` (the build image) with `/workspace` (the app) and `/layers`, owned by the CNB user, as lifecycle's platform prepares them. */
export function prepareRoot(base: State, app: State, owner: { readonly uid: number; readonly gid: number }): State {
  const chown = { user: owner.uid, group: owner.gid };
  return base.file(
    mkdir(Paths.workspace, 0o755, { chown })
      .copy(app, '/', Paths.workspace, { chown, copyDirContentsOnly: true })
      .mkdir(Paths.layers, 0o755, { chown }),
    { customName: '[prepare] app and layers for the CNB user' },
  );
}

/** The app as a local source, with project.toml's include/exclude translated. */
export function appSource(project: ProjectDescriptor): State {
  const include = gitignoreToPatterns(project.include);
  const exclude = gitignoreToPatterns(project.exclude);
  return local('context', {
    sharedKeyHint: 'context',
    ...(include.length === 0 ? {} : { includePatterns: include }),
    ...(exclude.length === 0 ? {} : { excludePatterns: exclude }),
    customName: '[internal] load app',
  });
}

/** The project's buildpacks that are not the builder's: inline scripts and local directories. */
export interface ProjectBuildpacks {
  /** `/cnb/buildpacks` contents: the builder's plus the project's. */
  readonly state: State;
  readonly descriptors: readonly BuildpackDescriptor[];
  /** The project group as order entries. */
  readonly group: readonly GroupEntry[];
  readonly pre: readonly GroupEntry[];
  readonly post: readonly GroupEntry[];
}

/** Adds the project's buildpacks (inline `script`, `uri` = a directory of the app) to the builder's. */
export async function projectBuildpacks(client: FrontendClient, project: ProjectDescriptor, builder: Builder, app: State): Promise<ProjectBuildpacks> {
  let state = scratch().file(copy(builder.state, Paths.buildpacks, '/', { copyDirContentsOnly: true, allowEmptyWildcard: true }), { customName: '[internal] buildpacks of the builder' });
  const descriptors = [...builder.descriptors];
  let appRef: Ref | undefined;
  const toEntries = async (list: readonly ProjectBuildpack[]): Promise<GroupEntry[]> => {
    const out: GroupEntry[] = [];
    for (const b of list) {
      if (b.script !== undefined && b.id !== undefined) {
        const version = b.version ?? '0.0.0';
        const dir = `/${escapeId(b.id)}/${version}`;
        const toml = `api = ${JSON.stringify(b.script.api)}\n[buildpack]\nid = ${JSON.stringify(b.id)}\nversion = ${JSON.stringify(version)}\n`;
        // pack's inline buildpack: detect always passes, build runs the script with the shell
        state = state.file(
          mkdir(`${dir}/bin`, 0o755, { parents: true })
            .mkfile(`${dir}/buildpack.toml`, 0o644, toml)
            .mkfile(`${dir}/bin/detect`, 0o755, '#!/bin/sh\nexit 0\n')
            .mkfile(`${dir}/bin/build`, 0o755, `#!${b.script.shell}\n${b.script.inline}\n`),
          { customName: `[internal] inline buildpack ${b.id}` },
        );
        descriptors.push(readBuildpackToml(toml, `project.toml inline ${b.id}`));
        out.push({ id: b.id, version, optional: false });
      } else if (b.uri !== undefined) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(b.uri) || /\.(cnb|tgz|tar|tar\.gz)$/.test(b.uri)) {
          throw new BuildpacksError('KLN0906', `buildpack uri ${b.uri} is not supported`, { hint: 'use a buildpack of the builder (id) or a directory of the app (uri = "./path")' });
        }
        const path = `/${b.uri.replace(/^\.\//, '').replace(/\/+$/, '')}`;
        appRef ??= await solveState(client, app);
        const text = await readOptional(appRef, `${path}/buildpack.toml`);
        if (text === undefined) throw new BuildpacksError('KLN0902', `buildpack uri ${b.uri}: no buildpack.toml in that directory of the app`);
        const d = readBuildpackToml(text, `${b.uri}/buildpack.toml`);
        state = state.file(copy(app, path, `/${escapeId(d.id)}/${d.version}`, { copyDirContentsOnly: true, createDestPath: true }), { customName: `[internal] buildpack ${b.uri}` });
        descriptors.push(d);
        out.push({ id: d.id, version: d.version, optional: false });
      } else if (b.id !== undefined) {
        out.push({ id: b.id, ...(b.version === undefined ? {} : { version: b.version }), optional: false });
      }
    }
    return out;
  };
  // entries first: toEntries adds to `state`
  const group = await toEntries(project.group);
  const pre = await toEntries(project.pre);
  const post = await toEntries(project.post);
  return { state, descriptors, group, pre, post };
}

/** `/platform`: `env/NAME` files from project.toml's build env and `env:NAME=value` options. */
export function platformDir(client: FrontendClient, project: ProjectDescriptor): { state: State; env: [string, string][] } {
  const env: [string, string][] = project.env.map(([k, v]) => [k, v]);
  for (const [k, v] of client.opts) {
    const key = k.startsWith('build-arg:') ? k.slice('build-arg:'.length) : k;
    if (!key.startsWith(Opt.envPrefix)) continue;
    env.push([key.slice(Opt.envPrefix.length), v]);
  }
  let action = mkdir('/env', 0o755);
  for (const [name, value] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new BuildpacksError('KLN0907', `build env name ${JSON.stringify(name)} is not a valid variable name`);
    action = action.mkfile(`/env/${name}`, 0o644, value);
  }
  const state = scratch().file(action, { customName: '[internal] platform dir' });
  return { state, env };
}
