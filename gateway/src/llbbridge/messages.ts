/**
 * The LLBBridge messages as plain objects (what protobufjs' `toObject` gives with int64 as
 * decimal strings, bytes as Uint8Array, absent fields absent) and a typed codec per message.
 * Field names are the proto's (schema.ts). `pb.Definition` fields are the Definition's bytes,
 * owned by llb-core's codec.
 */
import type { Type } from 'protobufjs';
import { GatewayError } from '../errors.js';
import { loadLLBBridgeTypes, type LLBBridgeTypeName } from './schema.js';

/** `pb.Platform`. */
export interface WirePlatform {
  Architecture?: string;
  OS?: string;
  Variant?: string;
  OSVersion?: string;
  OSFeatures?: string[];
}
/** `pb.Position`. */
export interface WirePosition {
  Line?: number;
  Character?: number;
}
/** `pb.Range`. */
export interface WireRange {
  start?: WirePosition;
  end?: WirePosition;
}
/** `pb.SourceInfo` (definition as bytes). */
export interface WireSourceInfo {
  filename?: string;
  data?: Uint8Array;
  definition?: Uint8Array;
  language?: string;
}
/** fsutil `types.Stat`; int64 fields as decimal strings on decode (numbers accepted on encode). */
export interface WireStat {
  path?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: string | number;
  modTime?: string | number;
  linkname?: string;
  devmajor?: string | number;
  devminor?: string | number;
  xattrs?: Record<string, Uint8Array>;
}
/** `google.protobuf.Any`. */
export interface WireAny {
  type_url?: string;
  value?: Uint8Array;
}
/** `google.rpc.Status`. */
export interface WireStatus {
  code?: number;
  message?: string;
  details?: WireAny[];
}
/** `google.rpc.ErrorInfo`. */
export interface WireErrorInfo {
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
}
/** `errdefs.Source` (solver/errdefs/errdefs.proto): a source file and the ranges an error points at. */
export interface WireErrdefsSource {
  info?: WireSourceInfo;
  ranges?: WireRange[];
}
/** `moby.buildkit.v1.apicaps.APICap`. */
export interface WireAPICap {
  ID?: string;
  Enabled?: boolean;
  Deprecated?: boolean;
  DisabledReason?: string;
  DisabledReasonMsg?: string;
  DisabledAlternative?: string;
}
/** `moby.buildkit.v1.types.WorkerRecord` (GC policies and version left out). */
export interface WireWorkerRecord {
  ID?: string;
  Labels?: Record<string, string>;
  platforms?: WirePlatform[];
}
/** `Ref`: an id the server handed out, with the Definition it stands for. */
export interface WireRef {
  id?: string;
  def?: Uint8Array;
}
/** `InTotoSubject`: kind (`InTotoSubjectKind`: 0 Self, 1 Raw), digests (`sha256:…`), name. */
export interface WireInTotoSubject {
  kind?: number;
  digest?: string[];
  name?: string;
}
/** `Attestation`: kind (`AttestationKind`: 0 InToto, 1 Bundle), metadata, the ref holding it, path, predicate type, subjects. */
export interface WireAttestation {
  kind?: number;
  metadata?: Record<string, Uint8Array>;
  ref?: WireRef;
  path?: string;
  inTotoPredicateType?: string;
  inTotoSubjects?: WireInTotoSubject[];
}
/** `Attestations`: the list of one result key. */
export interface WireAttestations {
  attestation?: WireAttestation[];
}
/** `Result`: one member of the `result` oneof, plus metadata and attestations by result key. */
export interface WireResult {
  refDeprecated?: string;
  refsDeprecated?: { refs?: Record<string, string> };
  ref?: WireRef;
  refs?: { refs?: Record<string, WireRef> };
  metadata?: Record<string, Uint8Array>;
  attestations?: Record<string, WireAttestations>;
}
/** `PongResponse`. */
export interface WirePong {
  FrontendAPICaps?: WireAPICap[];
  LLBCaps?: WireAPICap[];
  Workers?: WireWorkerRecord[];
}
/** `ResolveImageConfigRequest`. */
export interface WireResolveImageConfigRequest {
  Ref?: string;
  Platform?: WirePlatform;
  ResolveMode?: string;
  LogName?: string;
  ResolverType?: number;
  SessionID?: string;
  StoreID?: string;
}
/** `ResolveImageConfigResponse`. */
export interface WireResolveImageConfigResponse {
  Digest?: string;
  Config?: Uint8Array;
  Ref?: string;
}
/** `SolveRequest` (cache imports and the deprecated inline return left out). */
export interface WireSolveRequest {
  Definition?: Uint8Array;
  Frontend?: string;
  FrontendOpt?: Record<string, string>;
  allowResultReturn?: boolean;
  allowResultArrayRef?: boolean;
  Final?: boolean;
  FrontendInputs?: Record<string, Uint8Array>;
  Evaluate?: boolean;
  CacheImports?: { Type?: string; Attrs?: Record<string, string> }[];
}
/** `SolveResponse`. */
export interface WireSolveResponse {
  ref?: string;
  result?: WireResult;
}
/** `ReadFileRequest`. */
export interface WireReadFileRequest {
  Ref?: string;
  FilePath?: string;
  Range?: { Offset?: string | number; Length?: string | number };
}
/** `ReadFileResponse`. */
export interface WireReadFileResponse {
  Data?: Uint8Array;
}
/** `ReadDirRequest`. */
export interface WireReadDirRequest {
  Ref?: string;
  DirPath?: string;
  IncludePattern?: string;
}
/** `ReadDirResponse`. */
export interface WireReadDirResponse {
  entries?: WireStat[];
}
/** `StatFileRequest`. */
export interface WireStatFileRequest {
  Ref?: string;
  Path?: string;
}
/** `StatFileResponse`. */
export interface WireStatFileResponse {
  stat?: WireStat;
}
/** `EvaluateRequest`. */
export interface WireEvaluateRequest {
  Ref?: string;
}
/** `InputsResponse`. */
export interface WireInputsResponse {
  Definitions?: Record<string, Uint8Array>;
}
/** `ReturnRequest`. */
export interface WireReturnRequest {
  result?: WireResult;
  error?: WireStatus;
}
/** `WarnRequest`. */
export interface WireWarnRequest {
  digest?: string;
  level?: string | number;
  short?: Uint8Array;
  detail?: Uint8Array[];
  url?: string;
  info?: WireSourceInfo;
  ranges?: WireRange[];
}
/** `grpc.health.v1.HealthCheckRequest`/`HealthCheckResponse` (status 1 = SERVING). */
export interface WireHealthCheck {
  service?: string;
  status?: number;
}
/** `pb.HostIP`. */
export interface WireHostIP {
  Host?: string;
  IP?: string;
}
/** `pb.SecretOpt` / `pb.SSHOpt` (the same fields). */
export interface WireSecretOpt {
  ID?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  optional?: boolean;
}
/** `pb.Mount` (enums as numbers: `MountType`, `CacheSharingOpt`; int64 as decimal strings on decode). */
export interface WireMount {
  input?: string | number;
  selector?: string;
  dest?: string;
  output?: string | number;
  readonly?: boolean;
  mountType?: number;
  TmpfsOpt?: { size?: string | number };
  cacheOpt?: { ID?: string; sharing?: number };
  secretOpt?: WireSecretOpt;
  SSHOpt?: WireSecretOpt;
  resultID?: string;
}
/** `pb.Meta` (the fields a container process uses; the others decode too and are ignored). */
export interface WireMeta {
  args?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  extraHosts?: WireHostIP[];
  hostname?: string;
  removeMountStubsRecursive?: boolean;
}
/** `NewContainerRequest` (Network a `pb.NetMode`). */
export interface WireNewContainerRequest {
  ContainerID?: string;
  Mounts?: WireMount[];
  Network?: number;
  platform?: WirePlatform;
  constraints?: { filter?: string[] };
  extraHosts?: WireHostIP[];
  hostname?: string;
}
/** `ReleaseContainerRequest`. */
export interface WireReleaseContainerRequest {
  ContainerID?: string;
}
/** `InitMessage` (Security a `pb.SecurityMode`). */
export interface WireInitMessage {
  ContainerID?: string;
  Meta?: WireMeta;
  Fds?: number[];
  Tty?: boolean;
  Security?: number;
}
/** `FdMessage`. */
export interface WireFdMessage {
  Fd?: number;
  EOF?: boolean;
  Data?: Uint8Array;
}
/** `ExecMessage`: the process id and one member of the `Input` oneof. */
export interface WireExecMessage {
  ProcessID?: string;
  Init?: WireInitMessage;
  File?: WireFdMessage;
  Resize?: { Rows?: number; Cols?: number };
  Started?: WireEmpty;
  Exit?: { Code?: number; Error?: WireStatus };
  Done?: WireEmpty;
  Signal?: { Name?: string };
}
/** A message without fields. */
export type WireEmpty = Record<string, never>;

/** The plain-object shape of each message kiln encodes or decodes. */
export interface WireMessages {
  PingRequest: WireEmpty;
  PongResponse: WirePong;
  ResolveImageConfigRequest: WireResolveImageConfigRequest;
  ResolveImageConfigResponse: WireResolveImageConfigResponse;
  SolveRequest: WireSolveRequest;
  SolveResponse: WireSolveResponse;
  ReadFileRequest: WireReadFileRequest;
  ReadFileResponse: WireReadFileResponse;
  ReadDirRequest: WireReadDirRequest;
  ReadDirResponse: WireReadDirResponse;
  StatFileRequest: WireStatFileRequest;
  StatFileResponse: WireStatFileResponse;
  EvaluateRequest: WireEvaluateRequest;
  EvaluateResponse: WireEmpty;
  InputsRequest: WireEmpty;
  InputsResponse: WireInputsResponse;
  ReturnRequest: WireReturnRequest;
  ReturnResponse: WireEmpty;
  WarnRequest: WireWarnRequest;
  WarnResponse: WireEmpty;
  NewContainerRequest: WireNewContainerRequest;
  NewContainerResponse: WireEmpty;
  ReleaseContainerRequest: WireReleaseContainerRequest;
  ReleaseContainerResponse: WireEmpty;
  ExecMessage: WireExecMessage;
  Status: WireStatus;
  ErrorInfo: WireErrorInfo;
  ErrdefsSource: WireErrdefsSource;
  HealthCheckRequest: WireHealthCheck;
  HealthCheckResponse: WireHealthCheck;
}

const TO_OBJECT = { longs: String, arrays: true, objects: true } as const;

/**
 * Encodes and decodes the LLBBridge messages. Decoding checks the wire format only (protobufjs
 * throws on truncated or mistyped input; the error becomes a GatewayError KLN0614).
 */
export class LLBBridgeCodec {
  readonly #types: ReadonlyMap<LLBBridgeTypeName, Type>;

  private constructor(types: ReadonlyMap<LLBBridgeTypeName, Type>) {
    this.#types = types;
  }

  /** The codec (loads protobufjs on first use). */
  static async load(): Promise<LLBBridgeCodec> {
    return new LLBBridgeCodec(await loadLLBBridgeTypes());
  }

  encode<K extends keyof WireMessages>(name: K, message: WireMessages[K]): Uint8Array {
    const type = this.#type(name);
    const out = type.encode(type.fromObject(message as Record<string, unknown>)).finish();
    // A plain Uint8Array (protobufjs' node writer gives a Buffer).
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  decode<K extends keyof WireMessages>(name: K, bytes: Uint8Array): WireMessages[K] {
    const type = this.#type(name);
    try {
      // The fence between protobufjs' untyped objects and the interfaces above, which mirror schema.ts.
      return type.toObject(type.decode(bytes), TO_OBJECT) as WireMessages[K];
    } catch (cause) {
      throw new GatewayError('KLN0614', `malformed ${type.fullName.replace(/^\./, '')} message: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
  }

  #type(name: LLBBridgeTypeName): Type {
    const type = this.#types.get(name);
    if (type === undefined) throw new Error(`no LLBBridge type ${name}`);
    return type;
  }
}
