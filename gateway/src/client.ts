import type {
  Container,
  Definition,
  FileStat,
  FrontendClient,
  FrontendResult,
  FrontendWarning,
  NewContainerRequest,
  ReadFileOptions,
  Ref,
  ResolveImageConfigOptions,
  ResolvedImageConfig,
  SolveFrontendRequest,
  SolveRequest,
} from '@kiln/llb-core';
import type { SolveBackend, SolvedRef } from './backend.js';
import { OpenContainers, solveContainerMounts, validateContainerRequest } from './containers.js';
import { GatewayError } from './errors.js';

/**
 * A {@link Ref} handed to a frontend: the Definition it stands for, solved on first read (or at
 * once when the frontend asked to evaluate). The solve runs once however often it is read.
 */
export class GatewayRef implements Ref {
  readonly definition: Definition;
  readonly #backend: SolveBackend;
  readonly #signal: AbortSignal | undefined;
  #solved: Promise<SolvedRef> | undefined;

  constructor(backend: SolveBackend, definition: Definition, signal: AbortSignal | undefined) {
    this.#backend = backend;
    this.definition = definition;
    this.#signal = signal;
  }

  /** The solver's result for this ref (solving it now if nothing has yet). */
  solved(): Promise<SolvedRef> {
    this.#solved ??= this.#backend.solve(this.definition, this.#signal === undefined ? {} : { signal: this.#signal });
    return this.#solved;
  }

  async readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array> {
    return (await this.solved()).readFile(path, options);
  }

  async readDir(path: string, include?: string): Promise<readonly FileStat[]> {
    return (await this.solved()).readDir(path, include);
  }

  async statFile(path: string): Promise<FileStat> {
    return (await this.solved()).statFile(path);
  }
}

/** Construction options of {@link GatewayClient}. */
export interface GatewayClientOptions {
  readonly backend: SolveBackend;
  readonly opts: ReadonlyMap<string, string>;
  readonly inputs: ReadonlyMap<string, Definition>;
  readonly onWarning?: (warning: FrontendWarning) => void;
  /** Lines of the frontend's own output ({@link FrontendClient.log}). */
  readonly onLog?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Refs by Definition, shared by the clients of one build so an input is solved once. */
  readonly refs?: WeakMap<Definition, GatewayRef>;
  /**
   * Runs a frontend by name for {@link GatewayClient.solveFrontend} (the {@link Gateway} gives
   * one, bound to this client's nesting depth). Without it the client has no `solveFrontend`.
   */
  readonly solveFrontend?: (request: SolveFrontendRequest) => Promise<FrontendResult>;
  /**
   * The build's open containers, shared by its clients (the {@link Gateway} releases them when
   * the build ends). Default: this client's own, released when its `signal` aborts.
   */
  readonly containers?: OpenContainers;
}

/**
 * The in-process {@link FrontendClient}: every call goes straight to the solver backend.
 * `solveFrontend` is there when the options give one (a client the {@link Gateway} made).
 */
export class GatewayClient implements FrontendClient {
  readonly opts: ReadonlyMap<string, string>;
  readonly inputs: ReadonlyMap<string, Definition>;
  readonly signal?: AbortSignal;
  /** Runs another frontend with the given opts and inputs; its refs are {@link GatewayRef}s of this build. */
  readonly solveFrontend?: (request: SolveFrontendRequest) => Promise<FrontendResult>;
  /**
   * Makes a container from refs of this build (BuildKit's gateway `NewContainer`), when the
   * backend can: the request is checked (KLN0620, KLN0621; KLN0623 once the build ended), each
   * ref's solve forced, and the container released on the request's or the client's signal and
   * at the end of the build.
   */
  readonly newContainer?: (request: NewContainerRequest) => Promise<Container>;
  readonly #backend: SolveBackend;
  readonly #onWarning: ((warning: FrontendWarning) => void) | undefined;
  readonly #onLog: ((line: string) => void) | undefined;
  readonly #refs: WeakMap<Definition, GatewayRef>;

  constructor(options: GatewayClientOptions) {
    this.#backend = options.backend;
    this.opts = options.opts;
    this.inputs = options.inputs;
    this.#onWarning = options.onWarning;
    this.#onLog = options.onLog;
    this.#refs = options.refs ?? new WeakMap();
    if (options.signal !== undefined) this.signal = options.signal;
    if (options.solveFrontend !== undefined) this.solveFrontend = options.solveFrontend;
    const make = this.#backend.newContainer;
    if (make !== undefined) {
      const containers = options.containers ?? new OpenContainers();
      this.newContainer = (request) => this.#newContainer(request, make, containers);
    }
  }

  async #newContainer(request: NewContainerRequest, make: NonNullable<SolveBackend['newContainer']>, containers: OpenContainers): Promise<Container> {
    const ended = (): GatewayError => new GatewayError('KLN0623', 'newContainer: the build has ended', { hint: 'make containers while the frontend runs' });
    if (containers.closed) throw ended();
    validateContainerRequest(request, (ref) => ref instanceof GatewayRef && this.#refs.get(ref.definition) === ref);
    const mounts = await solveContainerMounts(request.mounts, (ref) => (ref as GatewayRef).solved());
    this.signal?.throwIfAborted();
    request.signal?.throwIfAborted();
    const inner = await make.call(this.#backend, { ...request, mounts });
    if (containers.closed) {
      await inner.release();
      throw ended();
    }
    const signals = [request.signal, this.signal];
    const tracked = containers.track(inner, signals);
    // Aborted while the backend made it: released (by track), and the caller gets the reason, not
    // a dead container (as the LLBBridge client's newContainer does).
    const aborted = signals.find((s) => s?.aborted === true);
    if (aborted !== undefined) {
      await tracked.release();
      aborted.throwIfAborted();
    }
    return tracked;
  }

  async solve(request: SolveRequest): Promise<GatewayRef> {
    let ref = this.#refs.get(request.definition);
    if (ref === undefined) {
      ref = new GatewayRef(this.#backend, request.definition, this.signal);
      this.#refs.set(request.definition, ref);
    }
    if (request.evaluate === true) await ref.solved();
    return ref;
  }

  async resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    const signal = options.signal ?? this.signal;
    const opts = signal === undefined ? options : { ...options, signal };
    const resolved = await this.#backend.resolveImageConfig(ref, opts);
    // The FROM of this image usually follows: let the backend start on its layers now.
    if (this.#backend.prefetchImage !== undefined) {
      try {
        this.#backend.prefetchImage(ref, opts);
      } catch {
        // best effort
      }
    }
    return resolved;
  }

  warn(warning: FrontendWarning): void {
    this.#onWarning?.(warning);
  }

  log(line: string): void {
    this.#onLog?.(line);
  }
}
