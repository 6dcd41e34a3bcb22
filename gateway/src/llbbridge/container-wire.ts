/**
 * Between the container RPCs' wire messages (`NewContainerRequest` with `pb.Mount`s,
 * `InitMessage` with `pb.Meta`, `SignalMessage`, `ExitMessage`) and llb-core's container contract
 * (`NewContainerRequest`, `ContainerMount`, `ContainerProcessRequest`). Both LLBBridge sides use it.
 */
import { constants as os } from 'node:os';
import { CacheSharingOpt, MountType, NetMode, SecurityMode } from '@kiln/llb-core';
import type { ContainerMount, ContainerProcessRequest, NewContainerRequest, Ref } from '@kiln/llb-core';
import { GatewayError } from '../errors.js';
import { platformFromWire, platformToWire } from './convert.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import type { WireInitMessage, WireMount, WireNewContainerRequest, WireStatus } from './messages.js';

/**
 * The exit code an `ExitMessage` carries when there is none (the process never started, or
 * waiting for it failed), with the reason in `Error`: BuildKit's `pb.UnknownExitStatus`
 * (frontend/gateway/pb/exit.go, containerd's value).
 */
export const UNKNOWN_EXIT_STATUS = 255;

/** The frontend API caps of the container RPCs (frontend/gateway/pb/caps.go). */
export const EXEC_CAPS: readonly string[] = ['gateway.exec', 'gateway.exec.extrahosts'];

const MOUNT_TYPES = new Map<number, NonNullable<ContainerMount['type']>>([
  [MountType.BIND, 'bind'],
  [MountType.SECRET, 'secret'],
  [MountType.SSH, 'ssh'],
  [MountType.CACHE, 'cache'],
  [MountType.TMPFS, 'tmpfs'],
]);
const MOUNT_TYPE_IDS = new Map([...MOUNT_TYPES].map(([k, v]) => [v, k] as const));
const SHARING = new Map<number, NonNullable<ContainerMount['cacheSharing']>>([
  [CacheSharingOpt.SHARED, 'shared'],
  [CacheSharingOpt.PRIVATE, 'private'],
  [CacheSharingOpt.LOCKED, 'locked'],
]);
const SHARING_IDS = new Map([...SHARING].map(([k, v]) => [v, k] as const));

function invalid(message: string): GrpcStatusError {
  return new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, message);
}

/**
 * A `pb.Mount` of a NewContainer as a ContainerMount. `resultID` names a ref this server handed
 * out (`ref` looks it up; unknown: NOT_FOUND, as llbBridgeForwarder.NewContainer fails on it);
 * `input` and `output`, ExecOp indexes, mean nothing here and are ignored as BuildKit ignores them.
 * What kiln's contract cannot express is refused (INVALID_ARGUMENT) rather than dropped: a secret
 * or ssh `uid`/`gid`, a tmpfs size, an unknown mount type or sharing mode.
 */
function mountFromWire(m: WireMount, ref: (id: string) => Ref | undefined): ContainerMount {
  const dest = m.dest ?? '';
  const type = MOUNT_TYPES.get(m.mountType ?? 0);
  if (type === undefined) throw invalid(`mount ${dest}: unknown mount type ${m.mountType}`);
  let resolved: Ref | undefined;
  if (m.resultID) {
    resolved = ref(m.resultID);
    if (resolved === undefined) throw new GrpcStatusError(GrpcCode.NOT_FOUND, `failed to find ref ${m.resultID} for "${dest}" mount`);
  }
  const out: { -readonly [K in keyof ContainerMount]: ContainerMount[K] } = { dest, type };
  if (resolved !== undefined) out.ref = resolved;
  if (m.selector) out.selector = m.selector;
  if (m.readonly === true) out.readonly = true;
  if (type === 'cache') {
    const sharing = SHARING.get(m.cacheOpt?.sharing ?? 0);
    if (sharing === undefined) throw invalid(`mount ${dest}: unknown cache sharing mode ${m.cacheOpt?.sharing}`);
    if (m.cacheOpt?.ID) out.cacheId = m.cacheOpt.ID;
    out.cacheSharing = sharing;
  }
  if (m.TmpfsOpt?.size !== undefined && Number(m.TmpfsOpt.size) !== 0) throw invalid(`mount ${dest}: a tmpfs size is not supported`);
  const opt = type === 'secret' ? m.secretOpt : type === 'ssh' ? m.SSHOpt : undefined;
  if (opt !== undefined) {
    if ((opt.uid ?? 0) !== 0 || (opt.gid ?? 0) !== 0) throw invalid(`mount ${dest}: a ${type} owned by uid ${opt.uid ?? 0} gid ${opt.gid ?? 0} is not supported (only root)`);
    if (opt.ID) out[type === 'secret' ? 'secretId' : 'sshId'] = opt.ID;
    if (opt.mode) out.mode = opt.mode;
  }
  return out;
}

/** A ContainerMount as a `pb.Mount`; `refId` names its ref (the id the server handed out). */
function mountToWire(m: ContainerMount, refId: (ref: Ref) => string): WireMount {
  const type = m.type ?? 'bind';
  const out: WireMount = { dest: m.dest };
  if (m.selector) out.selector = m.selector;
  if (m.readonly === true) out.readonly = true;
  const id = MOUNT_TYPE_IDS.get(type) ?? MountType.BIND;
  if (id !== MountType.BIND) out.mountType = id;
  if (m.ref !== undefined) out.resultID = refId(m.ref);
  if (type === 'cache') {
    const sharing = SHARING_IDS.get(m.cacheSharing ?? 'shared') ?? CacheSharingOpt.SHARED;
    out.cacheOpt = { ...(m.cacheId ? { ID: m.cacheId } : {}), ...(sharing === CacheSharingOpt.SHARED ? {} : { sharing }) };
  }
  if (type === 'secret') out.secretOpt = { ...(m.secretId ? { ID: m.secretId } : {}), ...(m.mode ? { mode: m.mode } : {}) };
  if (type === 'ssh') out.SSHOpt = { ...(m.sshId ? { ID: m.sshId } : {}), ...(m.mode ? { mode: m.mode } : {}) };
  return out;
}

/**
 * A NewContainerRequest from the wire, mounts through {@link mountFromWire}. `Network` UNSET is
 * the contract's default `sandbox` (left out), HOST and NONE map as named. `platform` says which
 * programs it runs (checked and emulated as a RUN's); `constraints` pick a worker in BuildKit,
 * kiln has one, so they are ignored.
 */
export function newContainerFromWire(r: WireNewContainerRequest, ref: (id: string) => Ref | undefined, signal: AbortSignal): NewContainerRequest {
  const mounts = (r.Mounts ?? []).map((m) => mountFromWire(m, ref));
  const network = r.Network ?? NetMode.UNSET;
  if (network !== NetMode.UNSET && network !== NetMode.HOST && network !== NetMode.NONE) throw invalid(`unsupported network mode ${network}`);
  const hosts = (r.extraHosts ?? []).map((h) => ({ host: h.Host ?? '', ip: h.IP ?? '' }));
  return {
    mounts,
    signal,
    ...(network === NetMode.HOST ? { network: 'host' as const } : network === NetMode.NONE ? { network: 'none' as const } : {}),
    ...(r.hostname ? { hostname: r.hostname } : {}),
    ...(hosts.length > 0 ? { extraHosts: hosts } : {}),
    ...(r.platform?.OS && r.platform.Architecture ? { platform: platformFromWire(r.platform) } : {}),
  };
}

/** A NewContainerRequest for the wire (its mounts' refs named by `refId`; `sandbox` is NetMode UNSET, left out). */
export function newContainerToWire(id: string, r: NewContainerRequest, refId: (ref: Ref) => string): WireNewContainerRequest {
  const out: WireNewContainerRequest = { ContainerID: id, Mounts: r.mounts.map((m) => mountToWire(m, refId)) };
  if (r.network === 'host') out.Network = NetMode.HOST;
  else if (r.network === 'none') out.Network = NetMode.NONE;
  if (r.hostname !== undefined) out.hostname = r.hostname;
  if (r.extraHosts !== undefined && r.extraHosts.length > 0) out.extraHosts = r.extraHosts.map((h) => ({ Host: h.host, IP: h.ip }));
  if (r.platform !== undefined) out.platform = platformToWire(r.platform);
  return out;
}

/** The process fields of an InitMessage (the streams are the caller's): `Meta` args, env, cwd, user, `Tty`, `Security`. */
export function processFromWire(init: WireInitMessage): Omit<ContainerProcessRequest, 'stdin' | 'stdout' | 'stderr'> {
  const meta = init.Meta ?? {};
  const security = init.Security ?? SecurityMode.SANDBOX;
  if (security !== SecurityMode.SANDBOX && security !== SecurityMode.INSECURE) throw invalid(`unknown security mode ${security}`);
  return {
    args: meta.args ?? [],
    ...(meta.env !== undefined && meta.env.length > 0 ? { env: meta.env } : {}),
    ...(meta.cwd ? { cwd: meta.cwd } : {}),
    ...(meta.user ? { user: meta.user } : {}),
    ...(init.Tty === true ? { tty: true } : {}),
    ...(security === SecurityMode.INSECURE ? { security: 'insecure' as const } : {}),
  };
}

/**
 * An InitMessage for a process of container `containerId`. `Fds` lists the streams given, as
 * BuildKit's grpcclient does (0 with stdin, 1 with stdout, 2 with stderr): the server opens
 * only those.
 */
export function processToWire(containerId: string, r: ContainerProcessRequest): WireInitMessage {
  // v0.11.6's InitMessage has no secretenv (6): dropping them would start the process without them.
  if (r.secretEnv !== undefined && r.secretEnv.length > 0) {
    throw new GatewayError('KLN0615', 'a container process with secret environment variables (secretEnv) cannot be started over LLBBridge', { hint: 'mount the secret as a file instead (a `secret` mount)' });
  }
  const fds: number[] = [];
  if (r.stdin !== undefined) fds.push(0);
  if (r.stdout !== undefined) fds.push(1);
  if (r.stderr !== undefined) fds.push(2);
  const out: WireInitMessage = { ContainerID: containerId, Meta: { args: [...r.args], ...(r.env ? { env: [...r.env] } : {}), ...(r.cwd ? { cwd: r.cwd } : {}), ...(r.user ? { user: r.user } : {}) } };
  if (fds.length > 0) out.Fds = fds;
  if (r.tty === true) out.Tty = true;
  if (r.security === 'insecure') out.Security = SecurityMode.INSECURE;
  return out;
}

/**
 * A signal name as `SignalMessage.Name` carries it: without `SIG` (`TERM`, `INT`), the keys of
 * moby/sys signal.SignalMap that BuildKit looks names up in. Takes `SIGTERM` or `TERM`; throws
 * GatewayError KLN0614 for a name this platform does not know.
 */
export function signalToWire(name: string): string {
  const bare = name.startsWith('SIG') ? name.slice(3) : name;
  if (!(`SIG${bare}` in os.signals)) throw new GatewayError('KLN0614', `unknown signal ${name}`, { hint: 'use a signal name such as SIGTERM, SIGINT or SIGKILL' });
  return bare;
}

/** `SignalMessage.Name` (`TERM`; `SIGTERM` taken too) as the contract's `SIGTERM`, or undefined when unknown. */
export function signalFromWire(name: string): string | undefined {
  const full = name.startsWith('SIG') ? name : `SIG${name}`;
  return full in os.signals ? full : undefined;
}

/**
 * An `ExitMessage` for a process that exited with `code`: a non-zero code comes with an `Error`
 * status, as BuildKit's server sends the process's ExitError (its grpcclient reads `Error` for
 * any non-zero code).
 */
export function exitToWire(code: number): { Code?: number; Error?: WireStatus } {
  if (code === 0) return {};
  return { Code: code, Error: { code: GrpcCode.UNKNOWN, message: `exit code: ${code}` } };
}
