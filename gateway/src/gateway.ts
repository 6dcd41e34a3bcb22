import type { Definition, Frontend, FrontendResult, FrontendWarning, Ref } from '@kiln/llb-core';
import { detectSyntax } from '@kiln/dockerfile';
import type { SolveBackend, SolvedRef } from './backend.js';
import { GatewayClient, GatewayRef } from './client.js';
import { GatewayError } from './errors.js';
import { DOCKERFILE_FRONTEND, canonicalFrontendName, type FrontendRegistry } from './registry.js';
import { GATEWAY_FRONTEND, createGatewayFrontend, type ServeLLBBridge } from './external/gateway-frontend.js';
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

/** What a build through the gateway produced: solved refs plus the frontend's metadata. */
export interface GatewayResult {
  /** The frontend that ran, after syntax selection. */
  readonly frontend: string;
  readonly ref?: SolvedRef;
  readonly refs: ReadonlyMap<string, SolvedRef>;
  readonly metadata: ReadonlyMap<string, Uint8Array>;
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
 * follows BuildKit's dockerfile builder: an explicit frontend wins; a forwarded request (opts
 * carry `cmdline`) is never forwarded again; then `build-arg:BUILDKIT_SYNTAX`; then the entry
 * file's syntax directive. A name the registry does not know runs as a frontend image through
 * `gateway.v0` (with `source` = that name) when the backend can run frontend containers.
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
    const base = {
      backend: this.#backend,
      inputs: request.inputs,
      refs: new WeakMap<Definition, GatewayRef>(),
      ...(request.onWarning === undefined ? {} : { onWarning: request.onWarning }),
      ...(request.onLog === undefined ? {} : { onLog: request.onLog }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    };
    const selected = await this.#select(request, new GatewayClient({ ...base, opts: request.opts }));
    const { name } = selected;
    let { opts } = selected;
    let frontend = this.#registry.get(name);
    if (frontend === undefined) {
      const external = this.#external();
      if (external === undefined) frontend = this.#registry.resolve(name);
      else {
        frontend = external;
        // `--frontend IMAGE`: the image is the gateway's source (a `# syntax=` forward set it already).
        if (name !== GATEWAY_FRONTEND && !opts.has('source')) opts = new Map(opts).set('source', name);
      }
    }
    const client = new GatewayClient({ ...base, opts });
    const result = await frontend(client);
    return { frontend: name, ...(await solveResult(result)) };
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

  async #select(request: GatewayRequest, client: GatewayClient): Promise<{ name: string; opts: ReadonlyMap<string, string> }> {
    const requested = request.frontend ?? DOCKERFILE_FRONTEND;
    if (canonicalFrontendName(requested) !== DOCKERFILE_FRONTEND || request.opts.has('cmdline')) {
      return { name: requested, opts: request.opts };
    }
    let cmdline = request.opts.get('build-arg:BUILDKIT_SYNTAX');
    if (cmdline === undefined) {
      const text = await readEntryFile(client, request.opts.get('filename') ?? 'Dockerfile');
      cmdline = text === undefined ? undefined : detectSyntax(text)?.cmdline;
    }
    if (cmdline === undefined) return { name: requested, opts: request.opts };
    // builder/build.go: the reference is the first space-separated word of the trimmed value;
    // the value itself is forwarded as written.
    const ref = cmdline.trim().split(' ', 1)[0] ?? cmdline;
    if (canonicalFrontendName(ref) === DOCKERFILE_FRONTEND) return { name: DOCKERFILE_FRONTEND, opts: request.opts };
    const opts = new Map(request.opts);
    opts.set('source', ref);
    opts.set('cmdline', cmdline);
    return { name: ref, opts };
  }
}

/** Reads the entry file from the `dockerfile` input (else `context`); undefined when there is no such input. */
async function readEntryFile(client: GatewayClient, filename: string): Promise<string | undefined> {
  const definition = client.inputs.get('dockerfile') ?? client.inputs.get('context');
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
  return {
    ...(result.ref === undefined ? {} : { ref: await solveRef(result.ref) }),
    refs,
    metadata: result.metadata,
  };
}

function solveRef(ref: Ref): Promise<SolvedRef> {
  if (ref instanceof GatewayRef) return ref.solved();
  throw new GatewayError('KLN0603', 'the frontend returned a ref the gateway did not create');
}
