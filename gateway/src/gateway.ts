import type { Definition, Frontend, FrontendAttestation, FrontendResult, FrontendWarning, Ref, SolveFrontendRequest } from '@kiln/llb-core';
import { suggest } from '@kiln/dockerfile';
import type { SolveBackend, SolvedRef } from './backend.js';
import { GatewayClient, GatewayRef } from './client.js';
import { OpenContainers } from './containers.js';
import { GatewayError } from './errors.js';
import { DOCKERFILE_FRONTEND, canonicalFrontendName, type FrontendRegistry } from './registry.js';
import { selectFrontend, type FrontendSelection } from './select.js';
import { GATEWAY_FRONTEND, createGatewayFrontend, type ServeLLBBridge } from './external/gateway-frontend.js';
import { namedContext, UnresolvableFrontendImage } from './external/source.js';
import { serveLLBBridge } from './llbbridge/serve.js';

/** One build request: which frontend (or detect it), its options and named inputs. */
export interface GatewayRequest {
  /** `--frontend`; when absent the entry file's `# syntax=` line decides, else `dockerfile.v0`. */
  readonly frontend?: string;
  /** BuildKit frontend options: `filename`, `target`, `platform`, `build-arg:NAME`, … */
  readonly opts: ReadonlyMap<string, string>;
  /** Named inputs: `context`, `dockerfile`, and `--build-context` names. */
  readonly inputs: ReadonlyMap<string, Definition>;
  readonly onWarning?: (warning: FrontendWarning) => void;
  /** Lines of the frontend's own output (a build file's console), for progress. */
  readonly onLog?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * A frontend attestation with its ref solved (BuildKit's `result.Attestation` over a solved
 * ref): the content is read from `ref` at `path`.
 */
export interface GatewayAttestation extends Omit<FrontendAttestation, 'ref'> {
  readonly ref: SolvedRef;
}

/** What a build through the gateway produced: solved refs plus the frontend's metadata and attestations. */
export interface GatewayResult {
  /** The frontend that ran, after syntax selection. */
  readonly frontend: string;
  readonly ref?: SolvedRef;
  readonly refs: ReadonlyMap<string, SolvedRef>;
  readonly metadata: ReadonlyMap<string, Uint8Array>;
  /**
   * The frontend's attestations by result key (`FrontendResult.attestations`), their refs
   * solved like the result's; empty when it made none. From an in-process frontend as from a
   * frontend image (LLBBridge `Result.attestations`).
   */
  readonly attestations: ReadonlyMap<string, readonly GatewayAttestation[]>;
}

/**
 * How many levels of `solveFrontend` a build may nest (the top-level frontend is level 0): a
 * wrapper delegating to the Dockerfile frontend, which forwards its `# syntax=`, is 2.
 */
export const MAX_FRONTEND_DEPTH = 8;

/** What the frontends of one build share: the backend, refs by Definition, progress callbacks, the signal. */
interface BuildScope {
  readonly backend: SolveBackend;
  readonly refs: WeakMap<Definition, GatewayRef>;
  readonly onWarning?: (warning: FrontendWarning) => void;
  readonly onLog?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Containers the build's frontends made and have not released: released when the build ends. */
  readonly containers: OpenContainers;
}

/** Construction options of {@link Gateway}. */
export interface GatewayOptions {
  /** The LLBBridge server external frontends talk to (default: this package's serveLLBBridge). */
  readonly serveLLBBridge?: ServeLLBBridge;
  /** How long an external frontend may run on after its Return (default 10 s). */
  readonly exitGraceMs?: number;
}

/**
 * Picks and serves a frontend in process, then hands its LLB to the solver backend. Selection
 * follows BuildKit's dockerfile builder ({@link selectFrontend}): an explicit frontend wins; a
 * forwarded request (opts carry `cmdline`) is never forwarded again; then
 * `build-arg:BUILDKIT_SYNTAX`; then the entry file's syntax directive. A name the registry does
 * not know runs as a frontend image through `gateway.v0` (with `source` = that name) when the
 * backend can run frontend containers. Every frontend's client has `solveFrontend`, which runs
 * another frontend the same way inside the same build.
 */
export class Gateway {
  readonly #backend: SolveBackend;
  readonly #registry: FrontendRegistry;
  readonly #options: GatewayOptions;

  constructor(backend: SolveBackend, registry: FrontendRegistry, options: GatewayOptions = {}) {
    this.#backend = backend;
    this.#registry = registry;
    this.#options = options;
  }

  async build(request: GatewayRequest): Promise<GatewayResult> {
    const scope: BuildScope = {
      backend: this.#backend,
      refs: new WeakMap<Definition, GatewayRef>(),
      ...(request.onWarning === undefined ? {} : { onWarning: request.onWarning }),
      ...(request.onLog === undefined ? {} : { onLog: request.onLog }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
      containers: new OpenContainers(),
    };
    try {
      const { name, result } = await this.#run(request.frontend, request.opts, request.inputs, scope, []);
      return { frontend: name, ...(await solveResult(result)) };
    } finally {
      // As BuildKit's gateway, at the end of the build: what a frontend forgot to release.
      await scope.containers.releaseAll();
    }
  }

  /**
   * Selects and runs one frontend of this build: the top-level one, or one a frontend asked for
   * with `solveFrontend` (`chain` names the frontends it runs under, outermost first).
   */
  async #run(
    requested: string | undefined,
    requestOpts: ReadonlyMap<string, string>,
    inputs: ReadonlyMap<string, Definition>,
    scope: BuildScope,
    chain: readonly string[],
  ): Promise<{ readonly name: string; readonly result: FrontendResult }> {
    const base = { ...scope, inputs };
    const selected = await selectFrontend(new GatewayClient({ ...base, opts: requestOpts }), requested ?? DOCKERFILE_FRONTEND);
    const { name } = selected;
    let { opts } = selected;
    let frontend = this.#registry.get(name) ?? this.#dockerfileAlias(name, opts);
    let image = false;
    if (frontend === undefined) {
      const external = this.#external();
      if (external === undefined) frontend = this.#registry.resolve(name);
      else {
        frontend = external;
        image = name !== GATEWAY_FRONTEND;
        // `--frontend IMAGE`: the image is the gateway's source (a `# syntax=` forward set it already).
        if (image && !opts.has('source')) opts = new Map(opts).set('source', name);
      }
    }
    const path = [...chain, name === GATEWAY_FRONTEND ? `${name} (${opts.get('source') ?? ''})` : name];
    const client = new GatewayClient({ ...base, opts, solveFrontend: (r) => this.#solveFrontend(r, scope, path) });
    try {
      return { name, result: await frontend(client) };
    } catch (e) {
      throw image && chain.length === 0 ? this.#unresolvable(e, name, selected) : e;
    }
  }

  /**
   * A frontend name that is not built in and names no image kiln can resolve: most often a typo
   * of a built-in name (`# syntax=docker/dockerfil:1`, `--frontend dockerfile.v1`). The error
   * says where the name came from (the directive's line, the build arg, the flag) and suggests
   * the built-in name it is near.
   */
  #unresolvable(e: unknown, name: string, selected: FrontendSelection): unknown {
    if (!(e instanceof UnresolvableFrontendImage)) return e;
    const near = nearFrontendName(name, this.#registry.names());
    const hint = near === undefined ? e.hint : `did you mean ${near}? (built in, no image needed)`;
    const origin = selected.origin;
    const options = { ...(hint === undefined ? {} : { hint }), cause: e.cause };
    if (typeof origin === 'object') return new GatewayError(e.code, e.message, { ...options, location: { file: origin.file, line: origin.line, column: 1 } });
    return new GatewayError(e.code, `${e.message} (named by ${origin === 'build-arg' ? '--build-arg BUILDKIT_SYNTAX' : '--frontend'})`, options);
  }

  /**
   * A frontend's `solveFrontend`: runs the named frontend as a top-level one (selection, registry,
   * frontend images) with the request's opts and inputs only, in the same build (refs, warnings,
   * logs, signal; the request's own signal stops it too). BuildKit does not bound nesting; kiln
   * fails with KLN0604 past {@link MAX_FRONTEND_DEPTH} levels, where a frontend forwarding to
   * itself would never end.
   */
  async #solveFrontend(request: SolveFrontendRequest, scope: BuildScope, chain: readonly string[]): Promise<FrontendResult> {
    if (request.frontend === '') throw new GatewayError('KLN0601', 'solveFrontend needs a frontend name', { hint: 'name a frontend, e.g. dockerfile.v0 or gateway.v0 with opt source' });
    if (chain.length > MAX_FRONTEND_DEPTH) {
      throw new GatewayError('KLN0604', `frontends nested more than ${MAX_FRONTEND_DEPTH} levels deep: ${[...chain, request.frontend].join(' > ')}`, {
        hint: 'a frontend that forwards to itself (solveFrontend with its own name, a # syntax= naming the frontend image it runs in) never ends',
      });
    }
    // The caller's call can be cancelled on its own (an external frontend that died mid-Solve):
    // the nested frontend then stops too, its container included.
    const signal = request.signal === undefined ? scope.signal : scope.signal === undefined ? request.signal : AbortSignal.any([scope.signal, request.signal]);
    signal?.throwIfAborted();
    const nested: BuildScope = signal === undefined ? scope : { ...scope, signal };
    const { result } = await this.#run(request.frontend, request.opts, request.inputs ?? new Map(), nested, chain);
    if (request.evaluate === true) {
      const attested = [...(result.attestations?.values() ?? [])].flatMap((list) => list.map((a) => a.ref));
      const refs = [...(result.ref === undefined ? [] : [result.ref]), ...(result.refs?.values() ?? []), ...attested];
      await Promise.all(refs.map((r) => (r instanceof GatewayRef ? r.solved() : undefined)));
    }
    return result;
  }

  /**
   * kiln's offline alias for a `gateway.v0` run of a `docker/dockerfile[:…]` image (what a Go
   * Dockerfile frontend image forwards for `# syntax=docker/dockerfile:1`): the built-in
   * Dockerfile frontend, where BuildKit would pull the image. Not when a named context
   * (`context:<source>`) says which image that is.
   */
  #dockerfileAlias(name: string, opts: ReadonlyMap<string, string>): Frontend | undefined {
    if (name !== GATEWAY_FRONTEND) return undefined;
    const source = opts.get('source');
    if (source === undefined || canonicalFrontendName(source) !== DOCKERFILE_FRONTEND) return undefined;
    if (namedContext(opts, source) !== undefined) return undefined;
    return this.#registry.get(DOCKERFILE_FRONTEND);
  }

  /** The `gateway.v0` frontend, when the backend can run frontend containers. */
  #external(): Frontend | undefined {
    const serve = this.#options.serveLLBBridge ?? serveLLBBridge;
    if (this.#backend.runFrontendContainer === undefined) return undefined;
    return createGatewayFrontend({
      backend: this.#backend,
      serve,
      ...(this.#options.exitGraceMs === undefined ? {} : { exitGraceMs: this.#options.exitGraceMs }),
    });
  }
}

/**
 * The built-in frontend name `ref` is a typo of, if any: compared without registry, tag and digest
 * (`docker.io/docker/dockerfil:1` is near `docker/dockerfile`, whose tag is kept).
 */
function nearFrontendName(ref: string, names: readonly string[]): string | undefined {
  const name = canonicalFrontendName(ref);
  const colon = name.lastIndexOf(':');
  const tag = colon > name.lastIndexOf('/') ? name.slice(colon) : '';
  const repo = tag === '' ? name : name.slice(0, colon);
  // `--frontend buildpacks` / `ts`: a built-in name without its `kiln/` (too far for suggest)
  const bare = names.find((n) => n !== GATEWAY_FRONTEND && n !== repo && n.slice(n.lastIndexOf('/') + 1) === repo);
  if (bare !== undefined) return bare;
  const near = suggest(repo, [...names.filter((n) => n !== GATEWAY_FRONTEND), 'docker/dockerfile']);
  return near === undefined ? undefined : near === 'docker/dockerfile' ? `${near}${tag}` : near;
}

async function solveResult(result: FrontendResult): Promise<Omit<GatewayResult, 'frontend'>> {
  const refs = new Map<string, SolvedRef>();
  if (result.refs !== undefined) {
    const solved = await Promise.all([...result.refs].map(async ([k, r]) => [k, await solveRef(r)] as const));
    for (const [k, r] of solved) refs.set(k, r);
  }
  // metadata alone is a result: an image config, or a subrequest's answer (frontend.lint)
  if (result.ref === undefined && refs.size === 0 && result.metadata.size === 0) {
    throw new GatewayError('KLN0603', 'the frontend returned no result');
  }
  // BuildKit solves an attestation's ref with the result (llbsolver's Solve loads them together).
  const attestations = new Map<string, GatewayAttestation[]>();
  for (const [key, list] of result.attestations ?? []) {
    attestations.set(key, await Promise.all(list.map(async (a) => ({ ...a, ref: await solveRef(a.ref) }))));
  }
  return {
    ...(result.ref === undefined ? {} : { ref: await solveRef(result.ref) }),
    refs,
    metadata: result.metadata,
    attestations,
  };
}

function solveRef(ref: Ref): Promise<SolvedRef> {
  if (ref instanceof GatewayRef) return ref.solved();
  throw new GatewayError('KLN0603', 'the frontend returned a ref the gateway did not create');
}
