/**
 * The environment engine (lifecycle env/): what buildpack layers do to the environment. Used at
 * build time (later buildpacks see earlier build layers) and at export time (the launcher's
 * precomputed env operations). Layer roots first: `bin` → PATH, `lib` → LD_LIBRARY_PATH (and
 * LIBRARY_PATH at build), `include` → CPATH, `pkgconfig` → PKG_CONFIG_PATH, each prepended;
 * then the layer's `env/` and `env.build/` (or `env.launch/`, `env.launch/<process>/`) files,
 * with the suffix rules: none or `.override`, `.append`, `.prepend`, `.default`, `.delim`.
 */

/**
 * One environment change. `delim` joins append/prepend values (none: plain concatenation).
 * `process`: the change applies to that process type only (`env.launch/<type>/`).
 */
export interface EnvOp {
  readonly op: 'override' | 'default' | 'append' | 'prepend';
  readonly name: string;
  readonly value: string;
  readonly delim?: string;
  readonly process?: string;
}

/** The env directories of one launch layer (`present`: its subdirectories). */
export interface LaunchLayerEnv {
  readonly dir: string;
  readonly present: ReadonlySet<string>;
  /** Files of `env/` and `env.launch/` (name -> content). */
  readonly env: ReadonlyMap<string, string>;
  readonly envLaunch: ReadonlyMap<string, string>;
  /** Files of `env.launch/<type>/` by type. */
  readonly processEnv: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/**
 * The launch env ops of one buildpack's launch layers (in name order), as lifecycle's launcher
 * doEnv applies them: the root dirs of every layer first, then per layer `env/`, `env.launch/`
 * and `env.launch/<type>/` (ops tagged with their process type).
 */
export function launchEnvOps(layers: readonly LaunchLayerEnv[]): EnvOp[] {
  const ops = layers.flatMap((l) => rootDirOps(l.dir, l.present, LAUNCH_ROOT_DIRS));
  for (const l of layers) {
    ops.push(...envDirOps(l.env), ...envDirOps(l.envLaunch));
    for (const [type, files] of [...l.processEnv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      ops.push(...envDirOps(files).map((o) => ({ ...o, process: type })));
    }
  }
  return ops;
}

/** The ops that apply to process type `type` (undefined: a command, no process env). */
export const opsForProcess = (ops: readonly EnvOp[], type: string | undefined): EnvOp[] => ops.filter((o) => o.process === undefined || o.process === type);

/** Layer root directories and the variables they extend at build time (lifecycle POSIXBuildEnv). */
export const BUILD_ROOT_DIRS: readonly (readonly [string, readonly string[]])[] = [
  ['bin', ['PATH']],
  ['lib', ['LD_LIBRARY_PATH', 'LIBRARY_PATH']],
  ['include', ['CPATH']],
  ['pkgconfig', ['PKG_CONFIG_PATH']],
];

/** Layer root directories and the variables they extend at launch (lifecycle POSIXLaunchEnv). */
export const LAUNCH_ROOT_DIRS: readonly (readonly [string, readonly string[]])[] = [
  ['bin', ['PATH']],
  ['lib', ['LD_LIBRARY_PATH']],
];

/** Variables whose user values are prepended rather than replacing (the build path variables). */
export const PATH_VARS: ReadonlySet<string> = new Set(['PATH', 'LD_LIBRARY_PATH', 'LIBRARY_PATH', 'CPATH', 'PKG_CONFIG_PATH']);

/** The ops of one layer's root dirs (`present`: the subdirectories that exist). */
export function rootDirOps(layerDir: string, present: ReadonlySet<string>, table: typeof BUILD_ROOT_DIRS): EnvOp[] {
  const ops: EnvOp[] = [];
  for (const [dir, vars] of table) {
    if (!present.has(dir)) continue;
    for (const name of vars) ops.push({ op: 'prepend', name, value: `${layerDir}/${dir}`, delim: ':' });
  }
  return ops;
}

const SUFFIXES = ['override', 'append', 'prepend', 'default'] as const;

/**
 * The ops of one env directory: `files` maps file names to contents. Files are applied in name
 * order (lifecycle reads the directory sorted); `NAME.delim` sets the delimiter of NAME's
 * append/prepend; a file without a suffix overrides (Buildpack API >= 0.5). As lifecycle's
 * env.AddEnvDir, the name ends at the first dot and a file whose suffix is no action
 * (`README.md`, `JAVA.OPTS.append`) is ignored. `noSuffix`: the action of a file without one
 * (`default` for the builder's `/cnb/build-config/env`).
 */
export function envDirOps(files: ReadonlyMap<string, string>, noSuffix: 'override' | 'default' = 'override'): EnvOp[] {
  const ops: EnvOp[] = [];
  for (const name of [...files.keys()].sort()) {
    const value = files.get(name) ?? '';
    const dot = name.indexOf('.');
    const varName = dot < 0 ? name : name.slice(0, dot);
    const suffix = dot < 0 ? noSuffix : name.slice(dot + 1);
    if (varName === '' || !(SUFFIXES as readonly string[]).includes(suffix)) continue;
    const op = suffix as EnvOp['op'];
    const delim = files.get(`${varName}.delim`);
    ops.push({ op, name: varName, value, ...(delim === undefined || (op !== 'append' && op !== 'prepend') ? {} : { delim }) });
  }
  return ops;
}

/** Applies ops to an environment (a new map; insertion order kept, new names appended). */
export function applyEnvOps(env: ReadonlyMap<string, string>, ops: readonly EnvOp[]): Map<string, string> {
  const out = new Map(env);
  for (const o of ops) {
    const cur = out.get(o.name);
    switch (o.op) {
      case 'override':
        out.set(o.name, o.value);
        break;
      case 'default':
        // lifecycle: `if p.Vars.Get(name) != ""` — an empty value counts as unset
        if (cur === undefined || cur === '') out.set(o.name, o.value);
        break;
      case 'append':
        out.set(o.name, cur === undefined || cur === '' ? o.value : `${cur}${o.delim ?? ''}${o.value}`);
        break;
      case 'prepend':
        out.set(o.name, cur === undefined || cur === '' ? o.value : `${o.value}${o.delim ?? ''}${cur}`);
        break;
    }
  }
  return out;
}

/**
 * Platform (user) env on top of a buildpack env: path variables are prepended (`:`), others
 * replace, as lifecycle's env.WithPlatform does.
 */
export function withPlatformEnv(env: ReadonlyMap<string, string>, user: readonly (readonly [string, string])[]): Map<string, string> {
  return applyEnvOps(
    env,
    user.map(([name, value]) => (PATH_VARS.has(name) ? { op: 'prepend', name, value, delim: ':' } : { op: 'override', name, value })),
  );
}

/** `K=V` strings of an env map. */
export const envList = (env: ReadonlyMap<string, string>): string[] => [...env].map(([k, v]) => `${k}=${v}`);

/** An env map of `K=V` strings (the first `=` splits). */
export function envMap(list: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

/** Lifecycle's build env allowlist: what a buildpack sees of the builder image's config env. */
export const BUILD_ENV_ALLOWLIST: ReadonlySet<string> = new Set([
  'CNB_STACK_ID',
  'HOSTNAME',
  'HOME',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'PATH',
  'LD_LIBRARY_PATH',
  'LIBRARY_PATH',
  'CPATH',
  'PKG_CONFIG_PATH',
]);
