/**
 * Which frontend a build runs: BuildKit's dockerfile builder rules for `# syntax=` (builder/build.go),
 * shared by the in-process {@link Gateway} and a Dockerfile frontend running in a frontend
 * container (cli frontend-main), which forwards the same way through `solveFrontend`.
 */
import { local, type Definition, type FrontendClient } from '@kiln/llb-core';
import { detectSyntax } from '@kiln/dockerfile';
import { GatewayError } from './errors.js';
import { DOCKERFILE_FRONTEND, canonicalFrontendName } from './registry.js';

/** The frontend {@link selectFrontend} picked and the options it runs with. */
export interface FrontendSelection {
  /**
   * The frontend name: the one requested, `dockerfile.v0` for a `docker/dockerfile[:…]` syntax
   * (kiln's offline alias), else the syntax reference (a registered name or a frontend image).
   */
  readonly name: string;
  /** The options: unchanged, or plus `source` (the reference) and `cmdline` (the whole directive) when forwarded. */
  readonly opts: ReadonlyMap<string, string>;
  /** True when a syntax directive (or `build-arg:BUILDKIT_SYNTAX`) chose `name`. */
  readonly forwarded: boolean;
  /** Where the forward was asked for: the entry file's `# syntax=` line, else the build arg. */
  readonly origin?: { readonly file: string; readonly line: number } | 'build-arg';
}

/** Options of {@link selectFrontend}. */
export interface SelectFrontendOptions {
  /**
   * Without a `dockerfile` or `context` input, read the entry file from the local source
   * `dockerfile`, as BuildKit's dockerui `ReadEntrypoint` does (and kiln's Dockerfile frontend,
   * with the same LLB): a frontend image under buildkitd gets no inputs from
   * `buildctl --frontend gateway.v0 --local dockerfile=…`. The in-process gateway leaves it off
   * (`kiln build` always passes the inputs; without them there is no directive).
   */
  readonly localEntry?: boolean;
}

/**
 * Picks the frontend for `requested` (default `dockerfile.v0`) as BuildKit's dockerfile builder
 * does before it converts anything: only the Dockerfile frontend looks for a syntax; a request
 * already forwarded (opts carry `cmdline`) is never forwarded again; `build-arg:BUILDKIT_SYNTAX`
 * wins over the entry file's directive (`filename`, default `Dockerfile`, read from the input
 * `dockerfile`, else `context`; no such input, no directive unless `options.localEntry`). The reference is the first
 * space-separated word of the trimmed value, which is forwarded whole as `cmdline`. Throws
 * KLN0602 when the entry file cannot be read.
 */
export async function selectFrontend(client: FrontendClient, requested: string = DOCKERFILE_FRONTEND, options: SelectFrontendOptions = {}): Promise<FrontendSelection> {
  const { opts } = client;
  const unchanged = { name: requested, opts, forwarded: false };
  if (canonicalFrontendName(requested) !== DOCKERFILE_FRONTEND || opts.has('cmdline')) return unchanged;
  let cmdline = opts.get('build-arg:BUILDKIT_SYNTAX');
  let origin: FrontendSelection['origin'] = 'build-arg';
  if (cmdline === undefined) {
    const filename = opts.get('filename') ?? 'Dockerfile';
    const text = await readEntryFile(client, filename, options.localEntry === true);
    const syntax = text === undefined ? undefined : detectSyntax(text);
    cmdline = syntax?.cmdline;
    if (syntax !== undefined) origin = { file: filename, line: syntax.location.start.line };
  }
  if (cmdline === undefined) return unchanged;
  const ref = cmdline.trim().split(' ', 1)[0] ?? cmdline;
  if (canonicalFrontendName(ref) === DOCKERFILE_FRONTEND) return { name: DOCKERFILE_FRONTEND, opts, forwarded: false };
  return { name: ref, opts: new Map(opts).set('source', ref).set('cmdline', cmdline), forwarded: true, origin };
}

/**
 * Reads the entry file from the `dockerfile` input (else `context`, else with `localEntry` the
 * local source `dockerfile`); undefined when there is none of these.
 */
async function readEntryFile(client: FrontendClient, filename: string, localEntry: boolean): Promise<string | undefined> {
  const definition = client.inputs.get('dockerfile') ?? client.inputs.get('context') ?? (localEntry ? await localEntryDefinition(filename) : undefined);
  if (definition === undefined) return undefined;
  const ref = await client.solve({ definition });
  try {
    return new TextDecoder().decode(await ref.readFile(filename));
  } catch (cause) {
    throw new GatewayError('KLN0602', `cannot read ${filename} from the build input`, {
      hint: 'check the -f/--file path and the build context',
      cause,
    });
  }
}

/**
 * The local source `dockerfile` for the entry file: the very LLB kiln's Dockerfile frontend loads
 * its build definition with (frontends/dockerfile readDockerfile), so the daemon solves it once.
 */
function localEntryDefinition(filename: string): Promise<Definition> {
  return local('dockerfile', {
    followPaths: [filename, `${filename}.dockerignore`],
    sharedKeyHint: 'dockerfile',
    customName: `[internal] load build definition from ${filename}`,
  }).marshal();
}
