/**
 * Paths, option keys and label names of the `kiln/buildpacks` frontend, in one place.
 */

/** The frontend's name in kiln's registry and in `# syntax=`. */
export const BUILDPACKS_FRONTEND = 'kiln/buildpacks';

/** The entry file when the client names none. */
export const DEFAULT_PROJECT_FILE = 'project.toml';

/** Container paths (the CNB platform layout). */
export const Paths = {
  workspace: '/workspace',
  layers: '/layers',
  platform: '/platform',
  buildpacks: '/cnb/buildpacks',
  /** Image extensions of the builder: `<id>/<version>/extension.toml`. */
  extensions: '/cnb/extensions',
  launcher: '/cnb/lifecycle/launcher',
  processDir: '/cnb/process',
  orderToml: '/cnb/order.toml',
  runToml: '/cnb/run.toml',
  systemToml: '/cnb/system.toml',
  /** kiln's scratch mount for detect outputs (status, plan, output). */
  kiln: '/kiln',
  kilnPlan: '/kiln/plan',
  kilnCache: '/kiln/cache',
  /** An image extension's generate output (`CNB_OUTPUT_DIR`): build.Dockerfile, run.Dockerfile, extend-config.toml. */
  kilnOutput: '/kiln/output',
} as const;

/** Frontend options (also read as `build-arg:<name>`, which is how `kiln build --build-arg` passes them). */
export const Opt = {
  builder: 'builder',
  runImage: 'run-image',
  processType: 'process-type',
  /** An image built before (by kiln or pack): its launch layers can be reused. */
  previousImage: 'previous-image',
  cacheId: 'cache-id',
  /** `kiln` (the sh launcher) or `none` (the default process baked into the config). */
  launcher: 'launcher',
  filename: 'filename',
  /** `env:NAME=value` → `/platform/env/NAME`. */
  envPrefix: 'env:',
} as const;

/** Image labels the exporter writes (CNB platform spec). */
export const Label = {
  buildMetadata: 'io.buildpacks.build.metadata',
  lifecycleMetadata: 'io.buildpacks.lifecycle.metadata',
  projectMetadata: 'io.buildpacks.project.metadata',
  builderMetadata: 'io.buildpacks.builder.metadata',
  /** `false` once an extension's run.Dockerfile extended the run image without declaring it rebasable. */
  rebasable: 'io.buildpacks.rebasable',
} as const;

/** The Platform API whose semantics kiln follows. */
export const PLATFORM_API = '0.14';

/** A buildpack id as a directory name (`/` → `_`), as lifecycle escapes it. */
export const escapeId = (id: string): string => id.replaceAll('/', '_');

/** Single-quotes a word for POSIX sh. */
export const shQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** True when a project.toml's first line selects this frontend (`# syntax=kiln/buildpacks`). */
export const selectsBuildpacks = (text: string): boolean => /^(?:\uFEFF)?#\s*syntax\s*=\s*kiln\/buildpacks(?:\s|$)/i.test(text);
