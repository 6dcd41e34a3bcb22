/**
 * Readers of the CNB files kiln consumes: buildpack.toml, order.toml, run.toml, and what a
 * buildpack writes (detect plan, `<layer>.toml`, launch.toml, build.toml, store.toml). Each
 * takes the file's text and name and returns typed, validated data or throws KLN0901 with the
 * place (TOML syntax errors carry line and column).
 */
import { BuildpacksError } from './errors.js';
import { Fields, type Table } from './toml.js';

/** One entry of an order group: a buildpack (or image extension) id, an optional version, optional-ness. */
export interface GroupEntry {
  readonly id: string;
  readonly version?: string;
  readonly optional: boolean;
  /** An image extension (`[[order-extensions]]`), not a buildpack: its own namespace of ids. */
  readonly extension?: boolean;
}

/** An order: groups tried in turn. */
export type Order = readonly (readonly GroupEntry[])[];

/** A buildpack.toml. `order` is set for a composite buildpack. */
export interface BuildpackDescriptor {
  readonly api: string;
  readonly id: string;
  readonly version: string;
  readonly name?: string;
  readonly homepage?: string;
  readonly clearEnv: boolean;
  readonly order?: Order;
  readonly targets: readonly { readonly os?: string; readonly arch?: string }[];
  /** Set for an image extension's extension.toml: which programs it has (else its static `detect/`, `generate/` dirs). */
  readonly extension?: ExtensionPrograms;
}

/** The programs an image extension ships; a missing one means its static directory (Buildpack API 0.10). */
export interface ExtensionPrograms {
  readonly detect: boolean;
  readonly generate: boolean;
  /** Without `bin/detect`: the text of its `detect/plan.toml` (none: an empty plan). */
  readonly detectPlan?: string;
}

const ID_RE = /^[a-zA-Z0-9._/-]+$/;
const RESERVED_IDS = new Set(['app', 'config', 'sbom']);

function readGroups(f: Fields, key: string): GroupEntry[] {
  return f.tables(key).map((g) => {
    const id = g.requiredString('id');
    const version = g.string('version');
    return { id, ...(version === undefined || version === '' ? {} : { version }), optional: g.bool('optional') ?? false };
  });
}

function readOrder(f: Fields): Order {
  return f.tables('order').map((o) => readGroups(o, 'group'));
}

/** Reads a buildpack.toml (Buildpack API 0.7-0.12). */
export function readBuildpackToml(text: string, file = 'buildpack.toml'): BuildpackDescriptor {
  const root = Fields.parse(file, text);
  const api = root.requiredString('api');
  if (!/^\d+\.\d+$/.test(api)) root.fail('api', `must be MAJOR.MINOR, not ${JSON.stringify(api)}`);
  const bp = root.subtable('buildpack') ?? root.fail('buildpack', 'table is required');
  const id = bp.requiredString('id');
  if (!ID_RE.test(id) || RESERVED_IDS.has(id)) bp.fail('id', `${JSON.stringify(id)} is not a valid buildpack id`);
  const order = readOrder(root);
  const name = bp.string('name');
  const homepage = bp.string('homepage');
  return {
    api,
    id,
    version: bp.requiredString('version'),
    ...(name === undefined ? {} : { name }),
    ...(homepage === undefined || homepage === '' ? {} : { homepage }),
    clearEnv: bp.bool('clear-env') ?? false,
    ...(order.length === 0 ? {} : { order }),
    targets: readTargets(root),
  };
}

/** Reads a builder's `/cnb/order.toml` (`[[order]] [[order.group]]`). */
export function readOrderToml(text: string, file = 'order.toml'): Order {
  return readOrder(Fields.parse(file, text));
}

/**
 * Reads the image extensions' order of a builder's `/cnb/order.toml`
 * (`[[order-extensions]] [[order-extensions.group]]`). Every entry is an optional extension,
 * as lifecycle's PrependExtensions marks them, whatever the file says.
 */
export function readOrderExtensionsToml(text: string, file = 'order.toml'): Order {
  return Fields.parse(file, text).tables('order-extensions').map((o) => readGroups(o, 'group').map((e) => ({ ...e, optional: true, extension: true })));
}

/**
 * Reads an image extension's extension.toml (Buildpack API 0.9+): `api`, `[extension]` id,
 * version, name, homepage, clear-env, and `[[targets]]`. `programs` says which of `bin/detect`
 * and `bin/generate` exist (the caller looked).
 */
export function readExtensionToml(text: string, file = 'extension.toml', programs: ExtensionPrograms = { detect: true, generate: true }): BuildpackDescriptor {
  const root = Fields.parse(file, text);
  const api = root.requiredString('api');
  if (!/^\d+\.\d+$/.test(api)) root.fail('api', `must be MAJOR.MINOR, not ${JSON.stringify(api)}`);
  const ext = root.subtable('extension') ?? root.fail('extension', 'table is required');
  const id = ext.requiredString('id');
  if (!ID_RE.test(id) || RESERVED_IDS.has(id)) ext.fail('id', `${JSON.stringify(id)} is not a valid extension id`);
  if (root.has('order')) root.fail('order', 'is not allowed: an image extension cannot be a composite');
  const name = ext.string('name');
  const homepage = ext.string('homepage');
  return {
    api,
    id,
    version: ext.requiredString('version'),
    ...(name === undefined ? {} : { name }),
    ...(homepage === undefined || homepage === '' ? {} : { homepage }),
    clearEnv: ext.bool('clear-env') ?? false,
    targets: readTargets(root),
    extension: programs,
  };
}

function readTargets(root: Fields): { os?: string; arch?: string }[] {
  return root.tables('targets').map((t) => {
    const os = t.string('os');
    const arch = t.string('arch');
    return { ...(os === undefined ? {} : { os }), ...(arch === undefined ? {} : { arch }) };
  });
}

/** A builder's system.toml: groups run before and after every order group. */
export interface SystemGroups {
  readonly pre: readonly GroupEntry[];
  readonly post: readonly GroupEntry[];
}

/** Reads `/cnb/system.toml` (`[system.pre] [[system.pre.buildpacks]]`). */
export function readSystemToml(text: string, file = 'system.toml'): SystemGroups {
  const sys = Fields.parse(file, text).subtable('system');
  return { pre: readGroups(sys?.subtable('pre') ?? new Fields(file, {}), 'buildpacks'), post: readGroups(sys?.subtable('post') ?? new Fields(file, {}), 'buildpacks') };
}

/** Reads `/cnb/run.toml` (`[[images]] image, mirrors`; the older `[run-image] image`). Returns the run image references. */
export function readRunToml(text: string, file = 'run.toml'): readonly string[] {
  const root = Fields.parse(file, text);
  const images = root.tables('images').map((i) => i.requiredString('image'));
  const legacy = root.subtable('run-image')?.string('image');
  return legacy === undefined ? images : [...images, legacy];
}

/** One `[[requires]]` of a detect plan. */
export interface PlanRequire {
  readonly name: string;
  readonly metadata?: Table;
}

/** Requires and provides of one plan section (the top level or one `[[or]]`). */
export interface PlanSections {
  readonly requires: readonly PlanRequire[];
  readonly provides: readonly string[];
}

/** The plan a buildpack's detect wrote: the top-level sections, then each `[[or]]`. */
export interface DetectPlan {
  readonly sections: PlanSections;
  readonly or: readonly PlanSections[];
}

function readSections(f: Fields): PlanSections {
  return {
    requires: f.tables('requires').map((r) => {
      if (r.has('version')) r.fail('version', 'is not allowed at the top level of a require: use metadata.version');
      const md = r.metadata('metadata');
      return { name: r.requiredString('name'), ...(md === undefined ? {} : { metadata: md }) };
    }),
    provides: f.tables('provides').map((p) => p.requiredString('name')),
  };
}

/** Reads the build plan a detect wrote to `$CNB_BUILD_PLAN_PATH` (empty text: nothing). */
export function readDetectPlan(text: string, file = 'plan.toml'): DetectPlan {
  const root = Fields.parse(file, text);
  return { sections: readSections(root), or: root.tables('or').map(readSections) };
}

/** A `<layer>.toml`: the layer's flags and metadata. */
export interface LayerMetadata {
  readonly launch: boolean;
  readonly build: boolean;
  readonly cache: boolean;
  readonly metadata: Table;
}

/** Whether Buildpack API `api` (`0.10`) is at least `major.minor`; an unreadable one counts as current. */
export function apiAtLeast(api: string | undefined, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)$/.exec(api ?? '');
  if (m === null) return true;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

/**
 * Reads `<layers>/<bp>/<layer>.toml`: flags under `[types]` (API >= 0.6), else at the top level
 * (older APIs). Top-level flags from a buildpack of API 0.6 or later fail (KLN0905), as they fail
 * lifecycle's build ("should be in the types table"): kiln read them as the old format, so such
 * a buildpack worked here and failed under pack.
 */
export function readLayerToml(text: string, file: string, api?: string, warn?: (message: string) => void): LayerMetadata {
  const root = Fields.parse(file, text);
  const current = apiAtLeast(api, 0, 6);
  if (current && ['launch', 'build', 'cache'].some((k) => root.has(k))) {
    throw new BuildpacksError('KLN0905', `${file}: the launch, cache and build flags should be in the types table (Buildpack API ${api ?? '0.6+'})`, { hint: 'write them in a [types] table: a [types] line, then launch = true' });
  }
  // Before API 0.6 lifecycle reads the top-level flags only: a [types] table is ignored, with a warning.
  if (!current && root.has('types')) warn?.(`${file}: types table isn't supported in Buildpack API ${api ?? ''}; the launch, build and cache flags should be in the top level. Ignoring the values in the types table.`);
  const flags = current ? (root.subtable('types') ?? root) : root;
  const md = root.metadata('metadata');
  return { launch: flags.bool('launch') ?? false, build: flags.bool('build') ?? false, cache: flags.bool('cache') ?? false, metadata: md ?? {} };
}

/** One `[[processes]]` of launch.toml. */
export interface ProcessType {
  readonly type: string;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly direct: boolean;
  readonly default: boolean;
  readonly workingDir?: string;
  readonly buildpackId: string;
}

/** A buildpack's launch.toml. */
export interface LaunchToml {
  readonly labels: readonly { readonly key: string; readonly value: string }[];
  readonly processes: readonly ProcessType[];
  readonly slices: readonly (readonly string[])[];
}

const PROCESS_TYPE_RE = /^[a-zA-Z0-9._-]+$/;

/** Reads a launch.toml written by `buildpackId` (API >= 0.9: `command` is an array; a string is accepted for older APIs). */
export function readLaunchToml(text: string, file: string, buildpackId: string): LaunchToml {
  const root = Fields.parse(file, text);
  return {
    labels: root.tables('labels').map((l) => ({ key: l.requiredString('key'), value: l.string('value') ?? '' })),
    processes: root.tables('processes').map((p) => {
      const type = p.requiredString('type');
      if (!PROCESS_TYPE_RE.test(type)) p.fail('type', `${JSON.stringify(type)} may only contain letters, digits, '.', '_' and '-'`);
      const raw = p.raw('command');
      const command = (typeof raw === 'string' ? [raw] : p.strings('command')) ?? [];
      if (command.length === 0) p.fail('command', 'is required');
      const wd = p.string('working-dir');
      return {
        type,
        command,
        args: p.strings('args') ?? [],
        direct: p.bool('direct') ?? true,
        default: p.bool('default') ?? false,
        ...(wd === undefined ? {} : { workingDir: wd }),
        buildpackId,
      };
    }),
    slices: root.tables('slices').map((s) => s.strings('paths') ?? []),
  };
}

/** Reads build.toml: the `[[unmet]]` entry names a buildpack did not meet. */
export function readBuildToml(text: string, file: string): { readonly unmet: readonly string[] } {
  const root = Fields.parse(file, text);
  return { unmet: root.tables('unmet').map((u) => u.requiredString('name')) };
}

/** Reads store.toml: its `[metadata]` table. */
export function readStoreToml(text: string, file: string): Table {
  return Fields.parse(file, text).metadata('metadata') ?? {};
}

/** One build arg of extend-config.toml. */
export interface ExtendArg {
  readonly name: string;
  readonly value: string;
}

/** An image extension's extend-config.toml: build args for its build.Dockerfile and its run.Dockerfile. */
export interface ExtendConfig {
  readonly build: readonly ExtendArg[];
  readonly run: readonly ExtendArg[];
}

/**
 * Build args the platform sets itself (lifecycle's extender); extend-config.toml may not name
 * them. `base_image` too: the spec has the platform pass the image being extended (lifecycle's
 * kaniko answers every image with it), and another value would put the app on an image its
 * runImage metadata does not name.
 */
export const RESERVED_EXTEND_ARGS: ReadonlySet<string> = new Set(['base_image', 'build_id', 'user_id', 'group_id']);

/** Reads extend-config.toml (`[[build.args]]`, `[[run.args]]` with name and value); a reserved name is KLN0908. */
export function readExtendConfigToml(text: string, file = 'extend-config.toml'): ExtendConfig {
  const root = Fields.parse(file, text);
  const args = (kind: 'build' | 'run'): ExtendArg[] =>
    (root.subtable(kind)?.tables('args') ?? []).map((a) => {
      const name = a.requiredString('name');
      if (RESERVED_EXTEND_ARGS.has(name)) throw new BuildpacksError('KLN0908', `${file}: ${kind}.args name ${JSON.stringify(name)} is reserved (the platform sets base_image, build_id, user_id and group_id)`);
      return { name, value: a.string('value') ?? '' };
    });
  return { build: args('build'), run: args('run') };
}
