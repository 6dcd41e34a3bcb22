/**
 * The LLBBridge protobuf schema as a protobufjs JSON descriptor, written by hand from BuildKit
 * v0.11.6's `frontend/gateway/pb/gateway.proto` and what it imports: `solver/pb/ops.proto`
 * (Platform, Position, Range, SourceInfo), `api/types/worker.proto` (WorkerRecord),
 * `util/apicaps/pb/caps.proto` (APICap), fsutil `types/stat.proto` (Stat), `solver/errdefs/errdefs.proto` (Source),
 * `google/rpc/status.proto` (Status, with `google.protobuf.Any`), `google/rpc/error_details.proto`
 * (ErrorInfo) and `grpc/health/v1/health.proto`.
 * Field names and numbers are upstream's. Two newer fields are included because kiln's types have
 * them and older peers skip unknown fields: `ResolveImageConfigResponse.Ref` (3, BuildKit v0.12)
 * and `NewContainerRequest.hostname` (7, v0.12). The container messages (`NewContainerRequest`,
 * `ExecMessage` and its oneof members) and the ops.proto messages they use (`Mount`, `Meta`, …) are
 * v0.11.6's: no `Mount.contentCache` (24), `Meta.validExitCodes` (12) or `InitMessage.secretenv` (6).
 * Not here: v0.12+'s `SourcePolicies` and `ResolveSourceMeta`.
 *
 * Every `pb.Definition` field is declared `bytes`: an embedded message and a bytes field are the
 * same on the wire (length-delimited), and llb-core's codec owns Definition bytes (op digests
 * depend on them), so this schema never re-encodes an op.
 *
 * protobufjs is loaded on first use only: the CLI imports the gateway on every start, and few
 * builds run an external frontend.
 */
import type { INamespace, Type } from 'protobufjs';

const str = (id: number): { type: string; id: number } => ({ type: 'string', id });
const bool = (id: number): { type: string; id: number } => ({ type: 'bool', id });
const int64 = (id: number): { type: string; id: number } => ({ type: 'int64', id });
const uint32 = (id: number): { type: string; id: number } => ({ type: 'uint32', id });
const bytes = (id: number): { type: string; id: number } => ({ type: 'bytes', id });
const msg = (type: string, id: number): { type: string; id: number } => ({ type, id });
const rep = (type: string, id: number): { rule: string; type: string; id: number } => ({ rule: 'repeated', type, id });
const map = (valueType: string, id: number): { keyType: string; type: string; id: number } => ({ keyType: 'string', type: valueType, id });

/** The descriptor; nested namespaces follow the proto packages. */
export const LLBBRIDGE_DESCRIPTOR: INamespace = {
  nested: {
    pb: {
      nested: {
        // solver/pb/ops.proto
        Platform: { fields: { Architecture: str(1), OS: str(2), Variant: str(3), OSVersion: str(4), OSFeatures: rep('string', 5) } },
        // Character is sent even when 0 (a kiln column 1), which proto3 would leave out: the bytes
        // are still valid for any decoder, and kiln can tell "column 1" from "no column".
        // (a synthetic oneof, how protoc models proto3 `optional`).
        Position: { oneofs: { _Character: { oneof: ['Character'] } }, fields: { Line: { type: 'int32', id: 1 }, Character: { type: 'int32', id: 2 } } },
        Range: { fields: { start: msg('Position', 1), end: msg('Position', 2) } },
        SourceInfo: { fields: { filename: str(1), data: bytes(2), definition: bytes(3), language: str(4) } },
        // What the container RPCs use. Enums are declared so the varints decode as numbers.
        NetMode: { values: { UNSET: 0, HOST: 1, NONE: 2 } },
        SecurityMode: { values: { SANDBOX: 0, INSECURE: 1 } },
        MountType: { values: { BIND: 0, SECRET: 1, SSH: 2, CACHE: 3, TMPFS: 4 } },
        CacheSharingOpt: { values: { SHARED: 0, PRIVATE: 1, LOCKED: 2 } },
        WorkerConstraints: { fields: { filter: rep('string', 1) } },
        HostIP: { fields: { Host: str(1), IP: str(2) } },
        Ulimit: { fields: { Name: str(1), Soft: int64(2), Hard: int64(3) } },
        ProxyEnv: { fields: { http_proxy: str(1), https_proxy: str(2), ftp_proxy: str(3), no_proxy: str(4), all_proxy: str(5) } },
        Meta: {
          fields: {
            args: rep('string', 1),
            env: rep('string', 2),
            cwd: str(3),
            user: str(4),
            proxy_env: msg('ProxyEnv', 5),
            extraHosts: rep('HostIP', 6),
            hostname: str(7),
            // 8 is unused in ops.proto.
            ulimit: rep('Ulimit', 9),
            cgroupParent: str(10),
            removeMountStubsRecursive: bool(11),
          },
        },
        Mount: {
          fields: {
            input: int64(1),
            selector: str(2),
            dest: str(3),
            output: int64(4),
            readonly: bool(5),
            mountType: { type: 'MountType', id: 6 },
            TmpfsOpt: msg('TmpfsOpt', 19),
            cacheOpt: msg('CacheOpt', 20),
            secretOpt: msg('SecretOpt', 21),
            SSHOpt: msg('SSHOpt', 22),
            resultID: str(23),
          },
        },
        TmpfsOpt: { fields: { size: int64(1) } },
        CacheOpt: { fields: { ID: str(1), sharing: { type: 'CacheSharingOpt', id: 2 } } },
        SecretOpt: { fields: { ID: str(1), uid: uint32(2), gid: uint32(3), mode: uint32(4), optional: bool(5) } },
        SSHOpt: { fields: { ID: str(1), uid: uint32(2), gid: uint32(3), mode: uint32(4), optional: bool(5) } },
      },
    },
    errdefs: {
      nested: {
        // solver/errdefs/errdefs.proto (`package errdefs`): the source location of an error. BuildKit
        // itself sends it as JSON (errdefs-source.ts); this is the protobuf form, read when a peer
        // sends one.
        Source: { fields: { info: msg('pb.SourceInfo', 1), ranges: rep('pb.Range', 2) } },
      },
    },
    fsutil: {
      nested: {
        types: {
          nested: {
            // fsutil types/stat.proto
            Stat: {
              fields: {
                path: str(1),
                mode: { type: 'uint32', id: 2 },
                uid: { type: 'uint32', id: 3 },
                gid: { type: 'uint32', id: 4 },
                size: int64(5),
                modTime: int64(6),
                linkname: str(7),
                devmajor: int64(8),
                devminor: int64(9),
                xattrs: map('bytes', 10),
              },
            },
          },
        },
      },
    },
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: str(1), value: bytes(2) } } } },
        rpc: {
          nested: {
            Status: { fields: { code: { type: 'int32', id: 1 }, message: str(2), details: rep('google.protobuf.Any', 3) } },
            // google/rpc/error_details.proto: kiln's error code, hint and location ride in a Return error's details.
            ErrorInfo: { fields: { reason: str(1), domain: str(2), metadata: map('string', 3) } },
          },
        },
      },
    },
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: str(1) } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
              },
            },
          },
        },
      },
    },
    moby: {
      nested: {
        buildkit: {
          nested: {
            v1: {
              nested: {
                apicaps: {
                  nested: {
                    // util/apicaps/pb/caps.proto
                    APICap: {
                      fields: { ID: str(1), Enabled: bool(2), Deprecated: bool(3), DisabledReason: str(4), DisabledReasonMsg: str(5), DisabledAlternative: str(6) },
                    },
                  },
                },
                types: {
                  nested: {
                    // api/types/worker.proto
                    WorkerRecord: {
                      fields: { ID: str(1), Labels: map('string', 2), platforms: rep('pb.Platform', 3), GCPolicy: rep('GCPolicy', 4), BuildkitVersion: msg('BuildkitVersion', 5) },
                    },
                    GCPolicy: { fields: { all: bool(1), keepDuration: int64(2), keepBytes: int64(3), filters: rep('string', 4) } },
                    BuildkitVersion: { fields: { package: str(1), version: str(2), revision: str(3) } },
                  },
                },
                frontend: {
                  nested: {
                    // frontend/gateway/pb/gateway.proto
                    Result: {
                      oneofs: { result: { oneof: ['refDeprecated', 'refsDeprecated', 'ref', 'refs'] } },
                      fields: {
                        refDeprecated: str(1),
                        refsDeprecated: msg('RefMapDeprecated', 2),
                        ref: msg('Ref', 3),
                        refs: msg('RefMap', 4),
                        metadata: map('bytes', 10),
                        // 11 is reserved (an attestation format used during development).
                        // Attestations of the results by the result's key (the platform), refs as Ref {id, def}.
                        attestations: map('Attestations', 12),
                      },
                    },
                    RefMapDeprecated: { fields: { refs: map('string', 1) } },
                    Ref: { fields: { id: str(1), def: bytes(2) } },
                    RefMap: { fields: { refs: map('Ref', 1) } },
                    Attestations: { fields: { attestation: rep('Attestation', 1) } },
                    // Enum values as v0.11's gateway.proto states them (AttestationKind InToto = 0,
                    // Bundle = 1; InTotoSubjectKind Self = 0, Raw = 1), the same varint on the wire.
                    AttestationKind: { values: { InToto: 0, Bundle: 1 } },
                    InTotoSubjectKind: { values: { Self: 0, Raw: 1 } },
                    Attestation: {
                      fields: {
                        kind: { type: 'AttestationKind', id: 1 },
                        metadata: map('bytes', 2),
                        ref: msg('Ref', 3),
                        path: str(4),
                        inTotoPredicateType: str(5),
                        inTotoSubjects: rep('InTotoSubject', 6),
                      },
                    },
                    InTotoSubject: { fields: { kind: { type: 'InTotoSubjectKind', id: 1 }, digest: rep('string', 2), name: str(3) } },
                    ReturnRequest: { fields: { result: msg('Result', 1), error: msg('google.rpc.Status', 2) } },
                    ReturnResponse: { fields: {} },
                    InputsRequest: { fields: {} },
                    InputsResponse: { fields: { Definitions: map('bytes', 1) } },
                    ResolveImageConfigRequest: {
                      fields: {
                        Ref: str(1),
                        Platform: msg('pb.Platform', 2),
                        ResolveMode: str(3),
                        LogName: str(4),
                        ResolverType: { type: 'int32', id: 5 },
                        SessionID: str(6),
                        StoreID: str(7),
                      },
                    },
                    ResolveImageConfigResponse: { fields: { Digest: str(1), Config: bytes(2), Ref: str(3) } },
                    SolveRequest: {
                      fields: {
                        Definition: bytes(1),
                        Frontend: str(2),
                        FrontendOpt: map('string', 3),
                        // 4 (ImportCacheRefs) was removed in v0.11.0.
                        allowResultReturn: bool(5),
                        allowResultArrayRef: bool(6),
                        Final: bool(10),
                        ExporterAttr: bytes(11),
                        CacheImports: rep('CacheOptionsEntry', 12),
                        FrontendInputs: map('bytes', 13),
                        Evaluate: bool(14),
                      },
                    },
                    CacheOptionsEntry: { fields: { Type: str(1), Attrs: map('string', 2) } },
                    SolveResponse: { fields: { ref: str(1), result: msg('Result', 3) } },
                    ReadFileRequest: { fields: { Ref: str(1), FilePath: str(2), Range: msg('FileRange', 3) } },
                    FileRange: { fields: { Offset: int64(1), Length: int64(2) } },
                    ReadFileResponse: { fields: { Data: bytes(1) } },
                    ReadDirRequest: { fields: { Ref: str(1), DirPath: str(2), IncludePattern: str(3) } },
                    ReadDirResponse: { fields: { entries: rep('fsutil.types.Stat', 1) } },
                    StatFileRequest: { fields: { Ref: str(1), Path: str(2) } },
                    StatFileResponse: { fields: { stat: msg('fsutil.types.Stat', 1) } },
                    EvaluateRequest: { fields: { Ref: str(1) } },
                    EvaluateResponse: { fields: {} },
                    PingRequest: { fields: {} },
                    PongResponse: {
                      fields: {
                        FrontendAPICaps: rep('moby.buildkit.v1.apicaps.APICap', 1),
                        LLBCaps: rep('moby.buildkit.v1.apicaps.APICap', 2),
                        Workers: rep('moby.buildkit.v1.types.WorkerRecord', 3),
                      },
                    },
                    WarnRequest: {
                      fields: {
                        digest: str(1),
                        level: int64(2),
                        short: bytes(3),
                        detail: rep('bytes', 4),
                        url: str(5),
                        info: msg('pb.SourceInfo', 6),
                        ranges: rep('pb.Range', 7),
                      },
                    },
                    WarnResponse: { fields: {} },
                    // The container RPCs: NewContainer, ReleaseContainer, ExecProcess (a bidi stream of ExecMessage).
                    NewContainerRequest: {
                      fields: {
                        ContainerID: str(1),
                        Mounts: rep('pb.Mount', 2),
                        Network: { type: 'pb.NetMode', id: 3 },
                        platform: msg('pb.Platform', 4),
                        constraints: msg('pb.WorkerConstraints', 5),
                        extraHosts: rep('pb.HostIP', 6),
                        hostname: str(7),
                      },
                    },
                    NewContainerResponse: { fields: {} },
                    ReleaseContainerRequest: { fields: { ContainerID: str(1) } },
                    ReleaseContainerResponse: { fields: {} },
                    ExecMessage: {
                      oneofs: { Input: { oneof: ['Init', 'File', 'Resize', 'Started', 'Exit', 'Done', 'Signal'] } },
                      fields: {
                        ProcessID: str(1),
                        Init: msg('InitMessage', 2),
                        File: msg('FdMessage', 3),
                        Resize: msg('ResizeMessage', 4),
                        Started: msg('StartedMessage', 5),
                        Exit: msg('ExitMessage', 6),
                        Done: msg('DoneMessage', 7),
                        Signal: msg('SignalMessage', 8),
                      },
                    },
                    // Fds is proto3 `repeated uint32`: packed on the wire (protobufjs reads both forms).
                    InitMessage: { fields: { ContainerID: str(1), Meta: msg('pb.Meta', 2), Fds: rep('uint32', 3), Tty: bool(4), Security: { type: 'pb.SecurityMode', id: 5 } } },
                    ExitMessage: { fields: { Code: uint32(1), Error: msg('google.rpc.Status', 2) } },
                    StartedMessage: { fields: {} },
                    DoneMessage: { fields: {} },
                    FdMessage: { fields: { Fd: uint32(1), EOF: bool(2), Data: bytes(3) } },
                    ResizeMessage: { fields: { Rows: uint32(1), Cols: uint32(2) } },
                    SignalMessage: { fields: { Name: str(1) } },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

/** The message types kiln uses, by the short names of the codecs in messages.ts. */
export const LLBBRIDGE_TYPES = {
  PingRequest: 'moby.buildkit.v1.frontend.PingRequest',
  PongResponse: 'moby.buildkit.v1.frontend.PongResponse',
  ResolveImageConfigRequest: 'moby.buildkit.v1.frontend.ResolveImageConfigRequest',
  ResolveImageConfigResponse: 'moby.buildkit.v1.frontend.ResolveImageConfigResponse',
  SolveRequest: 'moby.buildkit.v1.frontend.SolveRequest',
  SolveResponse: 'moby.buildkit.v1.frontend.SolveResponse',
  ReadFileRequest: 'moby.buildkit.v1.frontend.ReadFileRequest',
  ReadFileResponse: 'moby.buildkit.v1.frontend.ReadFileResponse',
  ReadDirRequest: 'moby.buildkit.v1.frontend.ReadDirRequest',
  ReadDirResponse: 'moby.buildkit.v1.frontend.ReadDirResponse',
  StatFileRequest: 'moby.buildkit.v1.frontend.StatFileRequest',
  StatFileResponse: 'moby.buildkit.v1.frontend.StatFileResponse',
  EvaluateRequest: 'moby.buildkit.v1.frontend.EvaluateRequest',
  EvaluateResponse: 'moby.buildkit.v1.frontend.EvaluateResponse',
  InputsRequest: 'moby.buildkit.v1.frontend.InputsRequest',
  InputsResponse: 'moby.buildkit.v1.frontend.InputsResponse',
  ReturnRequest: 'moby.buildkit.v1.frontend.ReturnRequest',
  ReturnResponse: 'moby.buildkit.v1.frontend.ReturnResponse',
  WarnRequest: 'moby.buildkit.v1.frontend.WarnRequest',
  WarnResponse: 'moby.buildkit.v1.frontend.WarnResponse',
  NewContainerRequest: 'moby.buildkit.v1.frontend.NewContainerRequest',
  NewContainerResponse: 'moby.buildkit.v1.frontend.NewContainerResponse',
  ReleaseContainerRequest: 'moby.buildkit.v1.frontend.ReleaseContainerRequest',
  ReleaseContainerResponse: 'moby.buildkit.v1.frontend.ReleaseContainerResponse',
  ExecMessage: 'moby.buildkit.v1.frontend.ExecMessage',
  Status: 'google.rpc.Status',
  ErrorInfo: 'google.rpc.ErrorInfo',
  ErrdefsSource: 'errdefs.Source',
  HealthCheckRequest: 'grpc.health.v1.HealthCheckRequest',
  HealthCheckResponse: 'grpc.health.v1.HealthCheckResponse',
} as const;

/** A name of {@link LLBBRIDGE_TYPES}. */
export type LLBBridgeTypeName = keyof typeof LLBBRIDGE_TYPES;

let types: Promise<ReadonlyMap<LLBBridgeTypeName, Type>> | undefined;

/** The protobufjs Types of {@link LLBBRIDGE_TYPES}, built once (loading protobufjs on the first call). */
export function loadLLBBridgeTypes(): Promise<ReadonlyMap<LLBBridgeTypeName, Type>> {
  types ??= import('protobufjs/light.js').then(({ default: protobuf }) => {
    const root = protobuf.Root.fromJSON(LLBBRIDGE_DESCRIPTOR);
    const out = new Map<LLBBridgeTypeName, Type>();
    for (const [name, full] of Object.entries(LLBBRIDGE_TYPES) as [LLBBridgeTypeName, string][]) out.set(name, root.lookupType(full));
    return out;
  });
  return types;
}
