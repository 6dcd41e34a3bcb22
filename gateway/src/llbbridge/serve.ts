/**
 * The daemon side of LLBBridge: serves one external frontend run over a byte stream (a frontend
 * container's stdin/stdout), answering through the gateway's FrontendClient, as buildkitd's
 * `llbBridgeForwarder` does (frontend/gateway/gateway.go).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { decodeDefinition, defaultPlatform, encodeDefinition, CAPS_V0_11_6 } from '@kiln/llb-core';
import type { Definition, FrontendClient, FrontendResult, Platform, Ref, ResolveMode } from '@kiln/llb-core';
import { GatewayError } from '../errors.js';
import { KILN_FRONTEND_CAPS, capsToWire, platformFromWire, platformToWire, resultFromWire, statToWire, warningFromWire } from './convert.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import { GrpcServer, type UnaryHandler } from './grpc-server.js';
import { returnedError } from './return-error.js';
import { errorSourceFile, frontendSolveErrorStatus, statusToWire } from './frontend-solve.js';
import { attestationsToWire } from './attestations.js';
import { LLBBridgeCodec, type WireMessages, type WireRef, type WireResult, type WireSolveRequest, type WireSolveResponse } from './messages.js';
import { BridgeContainers } from './container-serve.js';
import { EXEC_CAPS } from './container-wire.js';
import type { StreamHandler } from './grpc-stream.js';

/** Options of {@link serveLLBBridge}. */
export interface BridgeServeOptions {
  readonly signal?: AbortSignal;
  /** Platforms of the worker, reported by Ping's WorkerRecord (default: the host's). */
  readonly platforms?: readonly Platform[];
  /**
   * Called once the answer to the frontend's Return has been sent, before the connection has
   * closed (that waits for the frontend's side): a frontend still running from then on is late.
   */
  readonly onReturn?: () => void;
}

/** The gRPC service paths. */
export const LLBBRIDGE_SERVICE = '/moby.buildkit.v1.frontend.LLBBridge/';
/** The health service path BuildKit serves next to LLBBridge. */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

const RESOLVE_MODES: ReadonlySet<string> = new Set<ResolveMode>(['default', 'pull', 'local']);

/** The frontend's Return, decoded: a result or an error status. */
type Returned = { readonly result: FrontendResult } | { readonly error: GatewayError };

/**
 * Serves LLBBridge on `stream` for one frontend run, answering through `client` (the
 * FrontendClient the gateway gave the external frontend). Resolves with what the frontend passed
 * to Return: refs in it are the very Ref objects `client.solve` returned (looked up by the ids
 * handed out), so the gateway's result handling accepts them. Rejects with a GatewayError
 * KLN0610 carrying the Return's google.rpc.Status message (the status itself is the `cause`)
 * when the frontend returned an error; KLN0611 when the stream ends before Return; the signal's
 * reason when aborted (the connection is dropped). After Return the connection is closed once
 * its answer is sent.
 *
 * With `client.newContainer`, the container RPCs are served too (container-serve.ts) and Ping
 * offers `gateway.exec`: `NewContainer` mounts refs by the ids handed out. Containers the frontend
 * did not release are released (their processes killed) when it returns or its connection ends;
 * the promise settles only after that.
 */
export async function serveLLBBridge(stream: Duplex, client: FrontendClient, options: BridgeServeOptions = {}): Promise<FrontendResult> {
  const codec = await LLBBridgeCodec.load();
  options.signal?.throwIfAborted();
  const bridge = new BridgeService(codec, client, options.platforms ?? [defaultPlatform()]);
  const containers = new BridgeContainers(codec, client, (id) => bridge.refById(id));
  let returned: Returned | undefined;
  const handlers = new Map(bridge.handlers((r) => (returned ??= r)));
  const streams = new Map<string, StreamHandler>();
  // Without `newContainer` the container RPCs stay unknown methods (UNIMPLEMENTED) and their caps unset.
  if (client.newContainer !== undefined) {
    handlers.set(`${LLBBRIDGE_SERVICE}NewContainer`, (b) => containers.newContainer(b));
    handlers.set(`${LLBBRIDGE_SERVICE}ReleaseContainer`, (b) => containers.releaseContainer(b));
    streams.set(`${LLBBRIDGE_SERVICE}ExecProcess`, (call) => containers.execProcess(call));
  }
  const server = new GrpcServer(stream, handlers, {
    encodeStatus: (s) => codec.encode('Status', statusToWire(s)),
    streams,
    onResponded: (path) => {
      if (path === `${LLBBRIDGE_SERVICE}Return`) {
        // The frontend is done: its processes are killed and its containers released, which
        // also ends its ExecProcess call, so the connection can close.
        void containers.closeAll();
        server.close();
        options.onReturn?.();
      }
    },
  });
  const signal = options.signal;
  return new Promise<FrontendResult>((resolve, reject) => {
    const onAbort = (): void => {
      server.destroy();
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    void server.closed.then(async () => {
      signal?.removeEventListener('abort', onAbort);
      // Calls still running can never be answered: a frontend it asked for stops (buildkitd's
      // handler context ends with the connection).
      bridge.cancelCalls(new GatewayError('KLN0611', 'the frontend closed its LLBBridge connection while a Solve it asked for was running'));
      // Containers the frontend did not release go with its connection.
      await containers.closeAll();
      if (returned === undefined) {
        reject(new GatewayError('KLN0611', 'the frontend exited without returning a result', { hint: 'an LLBBridge frontend must call Return before it exits' }));
      } else if ('error' in returned) reject(returned.error);
      else resolve(returned.result);
    });
  });
}

/** The LLBBridge methods over one FrontendClient, with the ref ids of one frontend run. */
class BridgeService {
  readonly #codec: LLBBridgeCodec;
  readonly #client: FrontendClient;
  readonly #platforms: readonly Platform[];
  readonly #refs = new Map<string, Ref>();
  /** One Definition object per distinct Definition bytes, so the client's per-Definition ref cache works across calls. */
  readonly #definitions = new Map<string, Definition>();
  readonly #idPrefix = randomBytes(8).toString('hex');
  #nextId = 0;
  /** Frontend solves not answered yet, aborted by {@link cancelCalls}. */
  readonly #calls = new Set<AbortController>();

  constructor(codec: LLBBridgeCodec, client: FrontendClient, platforms: readonly Platform[]) {
    this.#codec = codec;
    this.#client = client;
    this.#platforms = platforms;
  }

  /** Aborts the frontend solves still running (the connection is gone); answered ones keep their refs usable. */
  cancelCalls(reason: unknown): void {
    for (const call of this.#calls) call.abort(reason);
    this.#calls.clear();
  }

  handlers(onReturn: (r: Returned) => void): ReadonlyMap<string, UnaryHandler> {
    const h = new Map<string, UnaryHandler>();
    const unary = <Req extends keyof WireMessages, Res extends keyof WireMessages>(
      method: string,
      req: Req,
      res: Res,
      fn: (request: WireMessages[Req]) => Promise<WireMessages[Res]>,
    ): void => {
      h.set(`${LLBBRIDGE_SERVICE}${method}`, async (bytes) => this.#codec.encode(res, await fn(this.#codec.decode(req, bytes))));
    };
    unary('Ping', 'PingRequest', 'PongResponse', async () => ({
      FrontendAPICaps: capsToWire(this.#client.newContainer === undefined ? KILN_FRONTEND_CAPS : [...KILN_FRONTEND_CAPS, ...EXEC_CAPS]),
      LLBCaps: capsToWire(CAPS_V0_11_6),
      Workers: [{ ID: 'kiln', Labels: {}, platforms: this.#platforms.map(platformToWire) }],
    }));
    unary('ResolveImageConfig', 'ResolveImageConfigRequest', 'ResolveImageConfigResponse', async (r) => {
      const mode = r.ResolveMode !== undefined && RESOLVE_MODES.has(r.ResolveMode) ? (r.ResolveMode as ResolveMode) : undefined;
      const resolved = await this.#client.resolveImageConfig(r.Ref ?? '', {
        ...(r.Platform === undefined ? {} : { platform: platformFromWire(r.Platform) }),
        ...(mode === undefined ? {} : { resolveMode: mode }),
      });
      return { Digest: resolved.digest, Config: resolved.config, ...(resolved.ref === undefined ? {} : { Ref: resolved.ref }) };
    });
    unary('Solve', 'SolveRequest', 'SolveResponse', async (r) => {
      if (r.Frontend) return this.#solveFrontend(r);
      const bytes = r.Definition ?? new Uint8Array();
      const definition = this.#definition(bytes);
      const ref = await this.#client.solve(r.Evaluate === true ? { definition, evaluate: true } : { definition });
      const id = this.#register(ref);
      if (r.allowResultReturn !== true) return { ref: id };
      const result: WireResult = r.allowResultArrayRef === true ? { ref: { id, def: bytes } } : { refDeprecated: id };
      return { result: { ...result, metadata: {} } };
    });
    unary('ReadFile', 'ReadFileRequest', 'ReadFileResponse', async (r) => {
      const range = r.Range === undefined ? undefined : { offset: Number(r.Range.Offset ?? 0), length: Number(r.Range.Length ?? 0) };
      const data = await this.#ref(r.Ref).readFile(r.FilePath ?? '', range);
      return { Data: data };
    });
    unary('ReadDir', 'ReadDirRequest', 'ReadDirResponse', async (r) => {
      const entries = await this.#ref(r.Ref).readDir(r.DirPath ?? '', r.IncludePattern ? r.IncludePattern : undefined);
      return { entries: entries.map(statToWire) };
    });
    unary('StatFile', 'StatFileRequest', 'StatFileResponse', async (r) => ({ stat: statToWire(await this.#ref(r.Ref).statFile(r.Path ?? '')) }));
    unary('Evaluate', 'EvaluateRequest', 'EvaluateResponse', async (r) => {
      // Reading forces the solve, as Evaluate asks; the answer itself is not needed.
      await this.#client.solve({ definition: this.#ref(r.Ref).definition, evaluate: true });
      return {};
    });
    unary('Inputs', 'InputsRequest', 'InputsResponse', async () => ({
      Definitions: Object.fromEntries([...this.#client.inputs].map(([k, d]) => [k, encodeDefinition(d)])),
    }));
    unary('Warn', 'WarnRequest', 'WarnResponse', async (r) => {
      this.#client.warn(warningFromWire(r));
      return {};
    });
    unary('Return', 'ReturnRequest', 'ReturnResponse', async (r) => {
      if (r.error !== undefined && (r.error.code ?? 0) !== GrpcCode.OK) {
        onReturn({ error: returnedError(this.#codec, r.error) });
        return {};
      }
      try {
        onReturn({ result: this.#result(r.result ?? {}) });
      } catch (e) {
        // A result the gateway cannot take (an unknown ref id) fails the run with that error.
        onReturn({ error: e instanceof GatewayError ? e : new GatewayError('KLN0614', String(e)) });
        throw e;
      }
      return {};
    });
    h.set(HEALTH_CHECK_PATH, async (bytes) => {
      this.#codec.decode('HealthCheckRequest', bytes);
      return this.#codec.encode('HealthCheckResponse', { status: 1 });
    });
    return h;
  }

  /**
   * A Solve naming a frontend, as buildkitd's llbBridgeForwarder.Solve: the client's
   * `solveFrontend` runs it with FrontendOpt and FrontendInputs; every ref of its result gets an
   * id (a missing ref is id ""); the answer is the Result (`Ref`/`RefMap` with each ref's
   * Definition under allowResultArrayRef, else the deprecated id forms) with the metadata, plus
   * the top-level `ref` id when the caller does not allow a result return (a ref map is then an
   * error). A failure answers with the nested frontend's own status (frontend-solve.ts).
   */
  async #solveFrontend(r: WireSolveRequest): Promise<WireSolveResponse> {
    const frontend = r.Frontend ?? '';
    const solveFrontend = this.#client.solveFrontend?.bind(this.#client);
    if (solveFrontend === undefined) throw new GrpcStatusError(GrpcCode.UNIMPLEMENTED, `this gateway cannot run a frontend for a frontend (Frontend=${frontend}); send a Definition`);
    if (r.Definition !== undefined && r.Definition.byteLength > 0 && this.#definition(r.Definition).def.length > 0) {
      throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'cannot solve with both Definition and Frontend specified');
    }
    const inputs = new Map(Object.entries(r.FrontendInputs ?? {}).map(([k, v]) => [k, this.#definition(v)] as const));
    const opts = new Map(Object.entries(r.FrontendOpt ?? {}));
    let result: FrontendResult;
    const call = new AbortController();
    this.#calls.add(call);
    try {
      result = await solveFrontend({ frontend, opts, ...(inputs.size === 0 ? {} : { inputs }), ...(r.Evaluate === true ? { evaluate: true } : {}), signal: call.signal });
    } catch (e) {
      if (call.signal.aborted) throw e;
      throw frontendSolveErrorStatus(this.#codec, e, await errorSourceFile(this.#client, e, opts, inputs));
    } finally {
      this.#calls.delete(call);
    }
    const arrays = r.allowResultArrayRef === true;
    const wire: WireResult = { metadata: Object.fromEntries(result.metadata) };
    let defaultId = '';
    if (result.refs !== undefined && result.refs.size > 0) {
      if (r.allowResultReturn !== true) throw new GrpcStatusError(GrpcCode.UNKNOWN, 'solve did not return default result');
      const refs = [...result.refs].map(([k, ref]) => [k, this.#wireRef(ref)] as const);
      if (arrays) wire.refs = { refs: Object.fromEntries(refs) };
      else wire.refsDeprecated = { refs: Object.fromEntries(refs.map(([k, ref]) => [k, ref.id ?? ''])) };
    } else {
      const ref = this.#wireRef(result.ref);
      defaultId = ref.id ?? '';
      if (arrays) wire.ref = ref;
      else wire.refDeprecated = defaultId;
    }
    // Each attestation's ref gets an id too, sent with its Definition (llbBridgeForwarder.Solve).
    const attestations = attestationsToWire(result.attestations, (ref) => this.#wireRef(ref));
    if (attestations !== undefined) wire.attestations = attestations;
    return { result: wire, ...(r.allowResultReturn === true ? {} : { ref: defaultId }) };
  }

  /** A ref of a nested frontend's result, registered: its id and Definition bytes (no ref: id ""). */
  #wireRef(ref: Ref | undefined): WireRef {
    if (ref === undefined) return { id: '' };
    return { id: this.#register(ref), def: encodeDefinition(ref.definition) };
  }

  #definition(bytes: Uint8Array): Definition {
    const key = createHash('sha256').update(bytes).digest('hex');
    let d = this.#definitions.get(key);
    if (d === undefined) {
      try {
        d = decodeDefinition(bytes);
      } catch (cause) {
        throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, `invalid Definition: ${cause instanceof Error ? cause.message : String(cause)}`);
      }
      this.#definitions.set(key, d);
    }
    return d;
  }

  #register(ref: Ref): string {
    const id = `${this.#idPrefix}-${++this.#nextId}`;
    this.#refs.set(id, ref);
    return id;
  }

  /** The ref handed out as `id` (a container mount's ResultID), if any. */
  refById(id: string): Ref | undefined {
    return this.#refs.get(id);
  }

  #ref(id: string | undefined): Ref {
    const ref = this.#refs.get(id ?? '');
    if (ref === undefined) throw new GrpcStatusError(GrpcCode.NOT_FOUND, `no such ref: ${id ?? ''}`);
    return ref;
  }

  /** An id the frontend returned: empty means no ref (BuildKit's nil ref); an unknown one is an error. */
  #returnedRef(id: string | undefined): Ref | undefined {
    if (id === undefined || id === '') return undefined;
    const ref = this.#refs.get(id);
    if (ref === undefined) throw new GatewayError('KLN0614', `the frontend returned an unknown ref id "${id}"`);
    return ref;
  }

  /**
   * The Return's result: refs and the refs of its attestations (`Result.attestations`, by the
   * ids handed out, as llbBridgeForwarder.Return looks them up) are this run's Ref objects.
   */
  #result(r: WireResult): FrontendResult {
    return resultFromWire(r, (w) => this.#returnedRef(w.id));
  }
}
