/**
 * Extend (lifecycle's extender, Platform API 0.12+): the Dockerfiles image extensions generated
 * are Dockerfiles, so kiln compiles each one with the Dockerfile frontend through the client
 * (`solveFrontend`, never an import of it), on the image being extended: a named context
 * `kiln-cnb-base` holds it (state and config) and `base_image` names it, with lifecycle's
 * `build_id`, `user_id` and `group_id` build args and the extension's extend-config.toml args.
 * Each Dockerfile's result is the next one's base.
 */
import { fromDefinition, loadDefinition, mkdir, mkfile, MountType, NetMode, parseImageConfig, SecurityMode, ResultMetadataKey, scratch, type Definition, type FrontendClient, type ImageConfig, type Op, type State } from '@kiln/llb-core';
import { BASE_IMAGE_ARG, generatedFile } from './dockerfile-rules.js';
import { BuildpacksError } from './errors.js';
import type { DockerfileKind, GeneratedDockerfile } from './generate.js';
import { Label, escapeId } from './wire.js';

/** An image as a State and its config. */
export interface ImageState {
  readonly state: State;
  readonly config: ImageConfig;
}

/** The result of extending an image. */
export interface ExtendedImage extends ImageState {
  /**
   * For the run image: whether every applied run.Dockerfile left `io.buildpacks.rebasable=true`
   * (lifecycle: the original run image need not say so, each extension must).
   */
  readonly rebasable: boolean;
}

/** The named context (and `base_image` value) the image being extended is passed as. */
export const BASE_CONTEXT = 'kiln-cnb-base';

/** The Dockerfile's build context: the input `kiln-cnb-context`, named context `context`. */
const MAIN_CONTEXT = 'context';
const CONTEXT_INPUT = 'kiln-cnb-context';

/** The Dockerfile frontend's name in the gateway (BuildKit's `dockerfile.v0`). */
const DOCKERFILE_FRONTEND = 'dockerfile.v0';

/**
 * The history after an extension's Dockerfile as lifecycle's extender writes it: the base's
 * entries as they were, then one entry per layer the Dockerfile added (entries without a layer
 * dropped), `created_by` = `Layer: '<instruction>', Created by extension: <id>`.
 */
export function extensionHistory(config: ImageConfig, baseEntries: number, extensionId: string): ImageConfig {
  const history = config.history ?? [];
  const added = history
    .slice(baseEntries)
    .filter((h) => h.empty_layer !== true)
    .map((h) => ({ ...(h.created === undefined ? {} : { created: h.created }), created_by: `Layer: '${h.created_by ?? ''}', Created by extension: ${extensionId}` }));
  return { ...config, history: [...history.slice(0, baseEntries), ...added] };
}

/** Go's strconv.ParseBool, which lifecycle reads the rebasable label with. */
export function parseGoBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/**
 * How an op would reach past what lifecycle gives an extension Dockerfile: the build's credentials
 * (a secret or SSH mount, a secret env, a git source), a cache mount (shared with the user's own
 * builds, which an extension could read or poison), the host's network or an insecure sandbox
 * (granted for the user's Dockerfile, not for the builder's extensions). Kaniko, lifecycle's
 * extender, supports none of these.
 */
function credentialUse(op: Op): string | undefined {
  if (op.kind === 'exec') {
    for (const m of op.exec.mounts ?? []) {
      if (m.mountType === MountType.SECRET) return `RUN --mount=type=secret mounts the build secret "${m.secretOpt?.id ?? ''}"`;
      if (m.mountType === MountType.SSH) return `RUN --mount=type=ssh forwards the build's SSH agent "${m.sshOpt?.id || 'default'}"`;
      if (m.mountType === MountType.CACHE) return `RUN --mount=type=cache mounts the cache "${m.cacheOpt?.id ?? ''}", shared with the user's builds`;
    }
    if (op.exec.network === NetMode.HOST) return "RUN --network=host uses the host's network (granted to the build, not to its builder's extensions)";
    if (op.exec.security === SecurityMode.INSECURE) return 'RUN --security=insecure runs without the sandbox';
    const env = op.exec.secretenv?.[0];
    if (env !== undefined) return `RUN --mount=type=secret sets ${env.name ?? ''} from the build secret "${env.id ?? ''}"`;
  }
  if (op.kind === 'source' && (op.source.identifier ?? '').startsWith('git://')) return `a git source (${op.source.identifier ?? ''}) fetches with the build's SSH agent and git token secrets`;
  return undefined;
}

/**
 * Refuses (KLN0908, at the Dockerfile line when the LLB's source map has it) an extension
 * Dockerfile whose LLB would use the build's secrets or SSH agent. Extensions come with the
 * builder, not from the user building, and lifecycle applies their Dockerfiles with none (its
 * kaniko has no secrets); through kiln's gateway they would get the build's --secret and --ssh.
 * Checked on the LLB, so build args in --mount values cannot hide it (and a # syntax= is not
 * followed: the `cmdline` option of {@link applyDockerfiles}).
 */
export function checkCredentialUse(def: Definition, extensionId: string, kind: DockerfileKind): void {
  for (const v of loadDefinition(def).order) {
    const use = credentialUse(v.op);
    if (use === undefined) continue;
    const line = def.source?.locations?.get(v.digest)?.locations?.[0]?.ranges?.[0]?.start.line;
    throw new BuildpacksError('KLN0908', `${kind}.Dockerfile may not use what the build was given: ${use}`, {
      location: { file: generatedFile(extensionId, `${kind}.Dockerfile`), line: line ?? 1, column: 1 },
      hint: "an image extension's Dockerfile gets no build secrets, SSH agent, cache mounts, host network or insecure sandbox (lifecycle's kaniko has none of them): the builder's extensions must not reach the user's",
    });
  }
}

const userOf = (config: ImageConfig): [string, string] => {
  const [u = '', g = ''] = (config.config?.User ?? '').split(':');
  return [u, g];
};
const isRoot = (user: string): boolean => user === '0' || user === 'root';

/**
 * Applies `dockerfiles` (all of one kind, in group order) to `base`. `buildId` is the
 * `build_id` build arg (a UUID per build, as the spec asks: a RUN that uses it reruns every
 * build). A failing Dockerfile is KLN0909 naming the extension and file; a run image whose
 * final user is root is refused (KLN0909), as lifecycle's extender refuses it.
 */
export async function applyDockerfiles(client: FrontendClient, base: ImageState, dockerfiles: readonly GeneratedDockerfile[], kind: DockerfileKind, buildId: string): Promise<ExtendedImage> {
  const solveFrontend = client.solveFrontend?.bind(client);
  if (solveFrontend === undefined) {
    throw new BuildpacksError('KLN0906', 'image extensions need a gateway that runs frontends for frontends (solveFrontend), to compile their Dockerfiles', { hint: 'build with kiln build, or drop [[order-extensions]] from the builder' });
  }
  let current = base;
  let rebasable = true;
  const [origUser] = userOf(base.config);
  for (const d of dockerfiles) {
    // <escaped id>/<kind>.Dockerfile, as lifecycle's generated dir (Platform API 0.13) holds
    // it: the Dockerfile frontend's errors then name the extension
    const file = `${escapeId(d.extension.id)}/${kind}.Dockerfile`;
    const [user, group] = userOf(current.config);
    const opts = new Map<string, string>([
      ['filename', file],
      [`build-arg:${BASE_IMAGE_ARG}`, BASE_CONTEXT],
      ['build-arg:build_id', buildId],
      ['build-arg:user_id', user],
      ['build-arg:group_id', group],
      // the preamble the spec requires (ARG base_image without a default, FROM ${base_image})
      // always trips this check; the platform passes base_image
      ['build-arg:BUILDKIT_DOCKERFILE_CHECK', 'skip=InvalidDefaultArgInFrom'],
      // the Dockerfile frontend compiles it: a `# syntax=` (or a BUILDKIT_SYNTAX arg of
      // extend-config.toml) is not followed to another frontend, as lifecycle's kaniko ignores
      // it (a frontend image would run with the build's session: its secrets and SSH agent).
      // `cmdline` says "already forwarded", as BuildKit's dockerfile builder reads it.
      ['cmdline', DOCKERFILE_FRONTEND],
      [`context:${BASE_CONTEXT}`, `input:${BASE_CONTEXT}`],
      // the build context as a named context `context` (which kiln's Dockerfile frontend takes
      // for the main context; BuildKit's dockerui would also take the `context` input alone)
      [`context:${MAIN_CONTEXT}`, `input:${CONTEXT_INPUT}`],
      // BuildKit sends result metadata values as base64 of their bytes
      [`input-metadata:${BASE_CONTEXT}`, JSON.stringify({ [ResultMetadataKey.imageConfig]: Buffer.from(JSON.stringify(current.config)).toString('base64') })],
    ]);
    for (const a of d.args) opts.set(`build-arg:${a.name}`, a.value);
    const context = await d.context.marshal();
    const inputs = new Map<string, Definition>([
      ['dockerfile', await scratch().file(mkdir(`/${escapeId(d.extension.id)}`, 0o755).mkfile(`/${file}`, 0o644, d.text), { customName: `[internal] ${kind}.Dockerfile of extension ${d.extension.id}` }).marshal()],
      ['context', context],
      [CONTEXT_INPUT, context],
      [BASE_CONTEXT, await current.state.marshal()],
    ]);
    const where = `extension ${d.extension.id}: ${kind}.Dockerfile`;
    const signal = client.signal === undefined ? {} : { signal: client.signal };
    const failed = (cause: unknown): BuildpacksError =>
      new BuildpacksError('KLN0909', `${where}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause, hint: `the ${kind} image extension failed; fix the Dockerfile the extension generates` });
    // compiled, checked, then run: nothing of it runs before the credential check
    let result;
    try {
      result = await solveFrontend({ frontend: DOCKERFILE_FRONTEND, opts, inputs, ...signal });
    } catch (cause) {
      throw failed(cause);
    }
    const cfg = result.metadata.get(ResultMetadataKey.imageConfig);
    if (result.ref === undefined || cfg === undefined) throw new BuildpacksError('KLN0909', `${where}: the Dockerfile frontend returned no image`);
    checkCredentialUse(result.ref.definition, d.extension.id, kind);
    try {
      await client.solve({ definition: result.ref.definition, evaluate: true });
    } catch (cause) {
      throw failed(cause);
    }
    current = { state: fromDefinition(result.ref.definition), config: extensionHistory(parseImageConfig(cfg), current.config.history?.length ?? 0, d.extension.id) };
    rebasable &&= parseGoBool(current.config.config?.Labels?.[Label.rebasable]) === true;
    const [now] = userOf(current.config);
    if (isRoot(now)) client.warn({ message: `${where} changed the user ID from ${user} to ${now}; this must not be the final user ID (a following extension must reset the user)` });
  }
  const [finalUser] = userOf(current.config);
  if (kind === 'run' && isRoot(finalUser)) {
    throw new BuildpacksError('KLN0909', 'the final user ID of the extended run image is 0 (root)', { hint: 'end the run.Dockerfile with USER ${user_id}:${group_id}, or add an extension that resets the user to non-root' });
  }
  if (finalUser !== origUser) client.warn({ message: `the original ${kind} image user ID was ${origUser} but the final extension left it set to ${finalUser}` });
  return { ...current, rebasable };
}
