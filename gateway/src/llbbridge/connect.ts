/**
 * The frontend side of LLBBridge: a FrontendClient over the gRPC connection a frontend container
 * gets on its stdin/stdout, as BuildKit's `frontend/gateway/grpcclient` is for Go frontends.
 */
import type { Duplex } from 'node:stream';
import { decodeDefinition, encodeDefinition } from '@kiln/llb-core';
import type {
  Container,
  Definition,
  FileStat,
  FrontendClient,
  FrontendResult,
  FrontendWarning,
  ReadFileOptions,
  NewContainerRequest,
  Platform,
  Ref,
  ResolveImageConfigOptions,
  ResolvedImageConfig,
  SolveFrontendRequest,
  SolveRequest,
} from '@kiln/llb-core';
import { GatewayError } from '../errors.js';
import { enabledCaps, platformFromWire, platformToWire, resultFromWire, statFromWire, warningToWire } from './convert.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import { GrpcClient } from './grpc-client.js';
import { LLBBridgeCodec, type WireMessages, type WireRef, type WireResult } from './messages.js';
import { frontendSolveError, statusToWire } from './frontend-solve.js';
import { attestationsToWire } from './attestations.js';
import { returnErrorStatus, sourceFileKey, statusFromWire } from './return-error.js';
import { kilnErrorInfo } from './error-info.js';
import { LLBBRIDGE_SERVICE } from './serve.js';
import { BridgeContainer, BridgeExec, newBridgeId } from './container-connect.js';
import { newContainerToWire } from './container-wire.js';

/** The frontend side: a FrontendClient over LLBBridge (what runs inside the frontend container). */
export interface BridgeFrontendClient extends FrontendClient {
  /** Solve naming a frontend (always offered; a server without it answers UNIMPLEMENTED, KLN0615). */
  solveFrontend(request: SolveFrontendRequest): Promise<FrontendResult>;
  /**
   * NewContainer (always offered; needs the server's `gateway.exec` cap, and
   * `gateway.exec.extrahosts` for `extraHosts`, else KLN0615). Mount refs must come from this
   * client. Processes run over the connection's one ExecProcess stream; Return ends it.
   */
  newContainer(request: NewContainerRequest): Promise<Container>;
  /** Lines of the frontend's own output, to stderr (or the `log` option). */
  log(line: string): void;
  /**
   * Sends Return with a result (refs must come from this client's solve) and closes. Its
   * attestations go as `Result.attestations`, their refs by id like the result's.
   */
  return(result: FrontendResult): Promise<void>;
  /**
   * Sends Return with an error status (message; code UNKNOWN) and closes. A kiln error's `code`,
   * `hint` and `location` go along as a `google.rpc.ErrorInfo` detail (domain `kiln`), and a
   * location also as BuildKit's `errdefs.Source` (file name, the file's bytes when this client
   * read it whole, the position), which BuildKit's clients print as the lines around it.
   */
  returnError(error: Error): Promise<void>;
}

/** Options of {@link connectLLBBridge} beyond the stream and environment. */
export interface BridgeConnectOptions {
  /** Where `log` lines go (default: process stderr, which buildkitd shows as the frontend's log). */
  readonly log?: (line: string) => void;
  /** Cancels the frontend's work (exposed as the client's `signal`). */
  readonly signal?: AbortSignal;
}

/** The env prefix buildkitd passes each frontend option under: `BUILDKIT_FRONTEND_OPT_<n>=<key>=<value>`. */
export const FRONTEND_OPT_ENV_PREFIX = 'BUILDKIT_FRONTEND_OPT_';

/** Frontend options from the environment, as buildkitd sets them (grpcclient `opts()`). */
export function frontendOptsFromEnv(env: Readonly<Record<string, string | undefined>>): Map<string, string> {
  const opts = new Map<string, string>();
  const entries = Object.entries(env)
    .filter((e): e is [string, string] => e[0].startsWith(FRONTEND_OPT_ENV_PREFIX) && e[1] !== undefined)
    .sort((a, b) => Number(a[0].slice(FRONTEND_OPT_ENV_PREFIX.length)) - Number(b[0].slice(FRONTEND_OPT_ENV_PREFIX.length)));
  for (const [, value] of entries) {
    const eq = value.indexOf('=');
    if (eq < 0) opts.set(value, '');
    else opts.set(value.slice(0, eq), value.slice(eq + 1));
  }
  return opts;
}

/**
 * Connects over `stream`: Ping first (the caps it answers gate Inputs, ReadDir, StatFile,
 * Evaluate and Warn), then Inputs when offered. `opts` come from the env
 * `BUILDKIT_FRONTEND_OPT_<n>=<key>=<value>` as buildkitd sets them. Rejects with GatewayError
 * KLN0612 when Ping or Inputs fail.
 */
export async function connectLLBBridge(
  stream: Duplex,
  env: Readonly<Record<string, string | undefined>>,
  options: BridgeConnectOptions = {},
): Promise<BridgeFrontendClient> {
  const codec = await LLBBridgeCodec.load();
  const grpc = new GrpcClient(stream, (bytes) => statusFromWire(codec.decode('Status', bytes)).details);
  const rpc = new BridgeRpc(codec, grpc);
  try {
    const pong = await rpc.call('Ping', 'PingRequest', 'PongResponse', {});
    const caps = enabledCaps(pong.FrontendAPICaps);
    const inputs = new Map<string, Definition>();
    if (caps.has('frontend.inputs')) {
      const r = await rpc.call('Inputs', 'InputsRequest', 'InputsResponse', {});
      for (const [k, v] of Object.entries(r.Definitions ?? {})) inputs.set(k, decodeDefinition(v));
    }
    // dockerui's BUILDPLATFORM: the first worker's platforms, when it names any.
    const workerPlatforms = (pong.Workers?.[0]?.platforms ?? []).map(platformFromWire);
    return new LLBBridgeFrontendClient(codec, rpc, caps, frontendOptsFromEnv(env), inputs, workerPlatforms, options);
  } catch (e) {
    grpc.destroy();
    throw e;
  }
}

/** Typed unary calls; failures become GatewayError KLN0612 with the gRPC status as `cause`. */
class BridgeRpc {
  readonly #codec: LLBBridgeCodec;
  readonly grpc: GrpcClient;

  constructor(codec: LLBBridgeCodec, grpc: GrpcClient) {
    this.#codec = codec;
    this.grpc = grpc;
  }

  async call<Req extends keyof WireMessages, Res extends keyof WireMessages>(method: string, req: Req, res: Res, request: WireMessages[Req]): Promise<WireMessages[Res]> {
    let bytes: Uint8Array;
    try {
      bytes = await this.grpc.call(`${LLBBRIDGE_SERVICE}${method}`, this.#codec.encode(req, request));
    } catch (e) {
      if (!(e instanceof GrpcStatusError)) throw e;
      // A kiln daemon's error carries its hint in an ErrorInfo detail.
      const hint = kilnErrorInfo(this.#codec, e.details)?.hint;
      throw new GatewayError(e.grpcCode === GrpcCode.UNIMPLEMENTED ? 'KLN0615' : 'KLN0612', `${method}: ${e.message}`, { cause: e, ...(hint === undefined ? {} : { hint }) });
    }
    return this.#codec.decode(res, bytes);
  }
}

/** A ref the LLBBridge server handed out: its id, and the Definition it was solved from. */
class BridgeRef implements Ref {
  readonly definition: Definition;
  readonly id: string;
  readonly owner: LLBBridgeFrontendClient;
  readonly #rpc: BridgeRpc;
  readonly #caps: ReadonlySet<string>;

  constructor(owner: LLBBridgeFrontendClient, rpc: BridgeRpc, caps: ReadonlySet<string>, id: string, definition: Definition) {
    this.owner = owner;
    this.#rpc = rpc;
    this.#caps = caps;
    this.id = id;
    this.definition = definition;
  }

  async readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array> {
    // FileRange has no "to the end": BuildKit reads Length bytes (0 is none), so an offset alone
    // asks for as many as there can be.
    const range = options?.offset !== undefined || options?.length !== undefined ? { Range: { Offset: options.offset ?? 0, Length: options.length ?? Number.MAX_SAFE_INTEGER } } : {};
    const r = await this.#rpc.call('ReadFile', 'ReadFileRequest', 'ReadFileResponse', { Ref: this.id, FilePath: path, ...range });
    const data = r.Data ?? new Uint8Array();
    const out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (options?.offset === undefined && options?.length === undefined) this.owner.rememberFile(path, out);
    return out;
  }

  async readDir(path: string, include?: string): Promise<readonly FileStat[]> {
    requireCap(this.#caps, 'readdir', 'ReadDir');
    const r = await this.#rpc.call('ReadDir', 'ReadDirRequest', 'ReadDirResponse', { Ref: this.id, DirPath: path, ...(include === undefined ? {} : { IncludePattern: include }) });
    return (r.entries ?? []).map(statFromWire);
  }

  async statFile(path: string): Promise<FileStat> {
    requireCap(this.#caps, 'statfile', 'StatFile');
    const r = await this.#rpc.call('StatFile', 'StatFileRequest', 'StatFileResponse', { Ref: this.id, Path: path });
    if (r.stat === undefined) throw new GatewayError('KLN0614', `StatFile ${path}: the answer holds no stat`);
    return statFromWire(r.stat);
  }
}

function requireCap(caps: ReadonlySet<string>, cap: string, what: string): void {
  if (!caps.has(cap)) throw new GatewayError('KLN0615', `${what} is not supported by this LLBBridge server (no "${cap}" capability)`);
}

const REMEMBER_FILE_MAX = 1 << 20;
const REMEMBER_TOTAL_MAX = 8 << 20;

/** The FrontendClient over LLBBridge. */
class LLBBridgeFrontendClient implements BridgeFrontendClient {
  readonly opts: ReadonlyMap<string, string>;
  readonly inputs: ReadonlyMap<string, Definition>;
  readonly workerPlatforms?: readonly Platform[];
  readonly signal?: AbortSignal;
  readonly #codec: LLBBridgeCodec;
  readonly #rpc: BridgeRpc;
  readonly #caps: ReadonlySet<string>;
  readonly #log: (line: string) => void;
  /** Warn calls in flight: Return waits for them so warnings arrive before the result. */
  readonly #pending = new Set<Promise<void>>();
  /** Errors of {@link solveFrontend} (a nested frontend's status): Return sends their status unchanged. */
  readonly #nestedErrors = new WeakSet<Error>();
  /** Small files read whole, by {@link sourceFileKey}: the bytes an error's errdefs.Source carries. */
  readonly #files = new Map<string, Uint8Array>();
  #filesSize = 0;
  #returned = false;
  /** The ExecProcess call, opened by the first process started. */
  #exec: BridgeExec | undefined;

  constructor(
    codec: LLBBridgeCodec,
    rpc: BridgeRpc,
    caps: ReadonlySet<string>,
    opts: ReadonlyMap<string, string>,
    inputs: ReadonlyMap<string, Definition>,
    workerPlatforms: readonly Platform[],
    options: BridgeConnectOptions,
  ) {
    this.#codec = codec;
    this.#rpc = rpc;
    this.#caps = caps;
    this.opts = opts;
    this.inputs = inputs;
    if (workerPlatforms.length > 0) this.workerPlatforms = workerPlatforms;
    this.#log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    if (options.signal !== undefined) this.signal = options.signal;
  }

  async solve(request: SolveRequest): Promise<Ref> {
    const evaluate = request.evaluate === true;
    if (evaluate) requireCap(this.#caps, 'gateway.solve.evaluate', 'Solve with Evaluate');
    const r = await this.#rpc.call('Solve', 'SolveRequest', 'SolveResponse', {
      Definition: encodeDefinition(request.definition),
      allowResultReturn: true,
      allowResultArrayRef: true,
      ...(evaluate ? { Evaluate: true } : {}),
    });
    const id = r.result?.ref?.id ?? r.result?.refDeprecated ?? r.ref;
    if (id === undefined) throw new GatewayError('KLN0614', 'Solve: the answer holds no ref');
    return new BridgeRef(this, this.#rpc, this.#caps, id, request.definition);
  }

  /**
   * Solve with `Frontend`, `FrontendOpt` and `FrontendInputs` (as BuildKit's grpcclient, with
   * allowResultReturn and allowResultArrayRef). Needs `proto.refarray` (each ref comes with its
   * Definition), `frontend.inputs` for inputs and `gateway.solve.evaluate` for evaluate, else
   * KLN0615. The result's refs are this client's (readable, returnable). A failure of the nested
   * frontend rejects with KLN0610 (its message, location, hint, `frontendCode`); returning that
   * very error sends its status on unchanged.
   */
  async solveFrontend(request: SolveFrontendRequest): Promise<FrontendResult> {
    requireCap(this.#caps, 'proto.refarray', 'Solve with a frontend');
    const inputs = request.inputs ?? new Map<string, Definition>();
    if (inputs.size > 0) requireCap(this.#caps, 'frontend.inputs', 'Solve with frontend inputs');
    const evaluate = request.evaluate === true;
    if (evaluate) requireCap(this.#caps, 'gateway.solve.evaluate', 'Solve with Evaluate');
    let answer: WireMessages['SolveResponse'];
    try {
      answer = await this.#rpc.call('Solve', 'SolveRequest', 'SolveResponse', {
        Frontend: request.frontend,
        FrontendOpt: Object.fromEntries(request.opts),
        ...(inputs.size === 0 ? {} : { FrontendInputs: Object.fromEntries([...inputs].map(([k, d]) => [k, encodeDefinition(d)])) }),
        allowResultReturn: true,
        allowResultArrayRef: true,
        ...(evaluate ? { Evaluate: true } : {}),
      });
    } catch (e) {
      const error = frontendSolveError(this.#codec, e);
      if (error !== e && error instanceof Error) this.#nestedErrors.add(error);
      throw error;
    }
    const r = answer.result;
    if (r === undefined) throw new GatewayError('KLN0614', `Solve ${request.frontend}: the answer holds no result`);
    // The nested result's refs and attestations' refs are this client's.
    return resultFromWire(r, (w) => this.#resultRef(request.frontend, w));
  }

  /** A ref of a frontend solve's result: id "" is no ref; any other needs its Definition. */
  #resultRef(frontend: string, wire: WireRef): Ref | undefined {
    if (wire.id === undefined || wire.id === '') return undefined;
    if (wire.def === undefined || wire.def.byteLength === 0) throw new GatewayError('KLN0614', `Solve ${frontend}: ref ${wire.id} of the result comes without its Definition`);
    return new BridgeRef(this, this.#rpc, this.#caps, wire.id, decodeDefinition(wire.def));
  }

  async resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    const r = await this.#rpc.call('ResolveImageConfig', 'ResolveImageConfigRequest', 'ResolveImageConfigResponse', {
      Ref: ref,
      ...(options.platform === undefined ? {} : { Platform: platformToWire(options.platform) }),
      ...(options.resolveMode === undefined ? {} : { ResolveMode: options.resolveMode }),
    });
    const config = r.Config ?? new Uint8Array();
    return {
      digest: r.Digest ?? '',
      config: new Uint8Array(config.buffer, config.byteOffset, config.byteLength),
      ...(r.Ref ? { ref: r.Ref } : {}),
    };
  }

  async newContainer(request: NewContainerRequest): Promise<Container> {
    requireCap(this.#caps, 'gateway.exec', 'NewContainer');
    if (request.extraHosts !== undefined && request.extraHosts.length > 0) requireCap(this.#caps, 'gateway.exec.extrahosts', 'NewContainer with extraHosts');
    request.signal?.throwIfAborted();
    const id = newBridgeId();
    const wire = newContainerToWire(id, request, (ref) => this.#ownRef(ref, 'a container mount').id);
    await this.#rpc.call('NewContainer', 'NewContainerRequest', 'NewContainerResponse', wire);
    const signal = request.signal;
    const container = new BridgeContainer(id, (m, req, res, r) => this.#rpc.call(m, req, res, r), () => this.#execCall(), signal);
    if (signal?.aborted === true) {
      // Aborted while NewContainer was on the wire: its abort event is gone.
      await container.release().catch(() => undefined);
      signal.throwIfAborted();
    }
    return container;
  }

  /** The connection's ExecProcess call, opened on first use and again after one ended. */
  #execCall(): BridgeExec {
    if (this.#exec === undefined || this.#exec.ended) this.#exec = new BridgeExec(this.#codec, this.#rpc.grpc);
    return this.#exec;
  }

  warn(warning: FrontendWarning): void {
    if (!this.#caps.has('gateway.warnings')) {
      this.#log(`warning: ${warning.message}`);
      return;
    }
    const p = this.#rpc.call('Warn', 'WarnRequest', 'WarnResponse', warningToWire(warning)).then(
      () => undefined,
      (e: unknown) => this.#log(`warning not delivered (${e instanceof Error ? e.message : String(e)}): ${warning.message}`),
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  log(line: string): void {
    this.#log(line);
  }

  async return(result: FrontendResult): Promise<void> {
    const wire: WireResult = { metadata: Object.fromEntries(result.metadata) };
    const arrays = this.#caps.has('proto.refarray');
    if (result.refs !== undefined && result.refs.size > 0) {
      if (arrays) wire.refs = { refs: Object.fromEntries([...result.refs].map(([k, r]) => [k, this.#wireRef(r)])) };
      else wire.refsDeprecated = { refs: Object.fromEntries([...result.refs].map(([k, r]) => [k, this.#wireRef(r).id ?? ''])) };
    } else if (result.ref !== undefined) {
      if (arrays) wire.ref = this.#wireRef(result.ref);
      else wire.refDeprecated = this.#wireRef(result.ref).id ?? '';
    }
    // Attestation refs are always Ref {id, def}, as BuildKit's grpcclient sends them.
    const attestations = attestationsToWire(result.attestations, (r) => this.#wireRef(r));
    if (attestations !== undefined) wire.attestations = attestations;
    await this.#send({ result: wire });
  }

  async returnError(error: Error): Promise<void> {
    // A nested frontend's failure, returned as it came: its status goes on unchanged (message,
    // details with the file bytes), as a Go frontend returning c.Solve's error does.
    const nested = this.#nestedErrors.has(error) ? error.cause : undefined;
    if (nested instanceof GrpcStatusError) {
      await this.#send({ error: statusToWire(nested) });
      return;
    }
    await this.#send({
      error: returnErrorStatus(this.#codec, error, { fileData: (file) => this.#files.get(file), defaultFile: this.opts.get('filename') ?? 'Dockerfile' }),
    });
  }

  /**
   * Keeps a file read whole, up to 1 MiB each and 8 MiB in all (a build file is small; a build
   * that reads big files through the bridge keeps no copies), for a later {@link returnError}.
   */
  rememberFile(path: string, data: Uint8Array): void {
    const key = sourceFileKey(path);
    if (this.#returned || data.byteLength > REMEMBER_FILE_MAX) return;
    const old = this.#files.get(key)?.byteLength ?? 0;
    if (this.#filesSize - old + data.byteLength > REMEMBER_TOTAL_MAX) return;
    this.#files.set(key, data);
    this.#filesSize += data.byteLength - old;
  }

  async #send(request: WireMessages['ReturnRequest']): Promise<void> {
    if (this.#returned) throw new GatewayError('KLN0614', 'Return was already sent');
    this.#returned = true;
    await Promise.all(this.#pending);
    try {
      await this.#rpc.call('Return', 'ReturnRequest', 'ReturnResponse', request);
    } finally {
      // The server kills and releases what is left at Return; the exec call ends with it.
      this.#exec?.close();
      await this.#rpc.grpc.close();
    }
  }

  #wireRef(ref: Ref): WireRef {
    const own = this.#ownRef(ref, 'the result');
    return { id: own.id, def: encodeDefinition(own.definition) };
  }

  #ownRef(ref: Ref, what: string): BridgeRef {
    if (!(ref instanceof BridgeRef) || ref.owner !== this) {
      throw new GatewayError('KLN0614', `${what} holds a ref this LLBBridge client did not solve`, { hint: 'use refs from client.solve' });
    }
    return ref;
  }
}
