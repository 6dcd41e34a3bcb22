/**
 * Exec ops (client/llb `ExecOp`): the command, its process values taken from the
 * state, and its mounts. Mounts are sorted by target; writable bind mounts get output
 * indexes in that order; secret then SSH mounts are appended after them.
 */
import { LlbError } from '../errors.js';
import type { ExecOp, Input, Meta, Mount, Op, SecretEnv, Ulimit } from '../op.js';
import { CacheSharingOpt, MountContentCache, MountType, NetMode, SecurityMode } from '../op.js';
import type { ProxyEnv } from '../op.js';
import { compareGoStrings } from '../pb/writer.js';
import { ROOT_MOUNT } from './attrs.js';
import { Caps } from './caps.js';
import { addCap, cloneConstraints, constraintsFrom, marshalConstraints, type Constraints, type ConstraintsOptions } from './constraints.js';
import { shlexSplit } from './shlex.js';
import type { ExtraHost, NetworkMode, SecurityModeName, State, UlimitSpec } from './state.js';
import { finishVertex, Output, Vertex, type MarshalContext, type MarshaledVertex } from './vertex.js';

/** Cache mount sharing modes (Go `CacheMountSharingMode`). */
export type CacheSharing = 'shared' | 'private' | 'locked';

/** One mount of an exec (Go `AddMount` plus its `MountOption`s). */
export interface MountSpec {
  /** Mount point inside the container. */
  readonly target: string;
  /** What to mount; scratch (an empty directory) when omitted. */
  readonly source?: State;
  /** Mount read-only; the mount then has no output (Go `Readonly`). */
  readonly readonly?: boolean;
  /** Mount only this path of the source (Go `SourcePath`, the `selector`). */
  readonly sourcePath?: string;
  /** Writable but discard the result (Go `ForceNoOutput`). */
  readonly forceNoOutput?: boolean;
  /** A persistent cache directory (Go `AsPersistentCacheDir`); no output. */
  readonly cache?: { readonly id: string; readonly sharing?: CacheSharing };
  /** A tmpfs (Go `Tmpfs`, optional `TmpfsSize` in bytes); source must be scratch; no output. */
  readonly tmpfs?: boolean | { readonly size?: number | bigint };
  /** Content cache hint (upstream `ContentCache`). */
  readonly contentCache?: 'default' | 'on' | 'off';
}

/**
 * A secret for an exec (Go `AddSecret` and `SecretOption`s). With `target` it is mounted
 * as a file; with `env` it is exposed as an environment variable; `id` defaults to the
 * target (or env name). Mode defaults to 0400.
 */
export interface SecretSpec {
  /** Secret ID (defaults to the target or env name). */
  readonly id?: string;
  /** Mount the secret as a file at this path. */
  readonly target?: string;
  /** Expose the secret as this environment variable. */
  readonly env?: string;
  /** Owner UID of the file. */
  readonly uid?: number;
  /** Owner GID of the file. */
  readonly gid?: number;
  /** File mode (default 0400). */
  readonly mode?: number;
  /** Do not fail when the secret is missing. */
  readonly optional?: boolean;
}

/**
 * An SSH agent socket (Go `AddSSHSocket`). `target` defaults to
 * `/run/buildkit/ssh_agent.<n>`, mode to 0600; the first socket also sets
 * `SSH_AUTH_SOCK` unless the env has it.
 */
export interface SSHSpec {
  /** SSH agent ID (empty: the default agent). */
  readonly id?: string;
  /** Socket path (default `/run/buildkit/ssh_agent.<n>`). */
  readonly target?: string;
  /** Socket owner UID. */
  readonly uid?: number;
  /** Socket owner GID. */
  readonly gid?: number;
  /** Socket mode (default 0600). */
  readonly mode?: number;
  /** Do not fail when the agent is missing. */
  readonly optional?: boolean;
}

/** Options of {@link State.run}. Value options (env, dir, user…) apply to this exec only. */
export interface RunOptions extends ConstraintsOptions {
  /** The command as argv (Go `Args`). */
  readonly args?: readonly string[];
  /** The command as one string split into words without a shell (Go `Shlex`). */
  readonly shlex?: string;
  /** Extra environment for this exec. */
  readonly env?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  /** Working directory for this exec (relative joins the state's). */
  readonly dir?: string;
  /** User for this exec. */
  readonly user?: string;
  /** Hostname for this exec. */
  readonly hostname?: string;
  /** Network mode for this exec. */
  readonly network?: NetworkMode;
  /** Security mode for this exec. */
  readonly security?: SecurityModeName;
  /** Extra /etc/hosts entries for this exec. */
  readonly extraHosts?: readonly ExtraHost[];
  /** Resource limits for this exec. */
  readonly ulimits?: readonly UlimitSpec[];
  /** cgroup parent for this exec. */
  readonly cgroupParent?: string;
  /** Exit codes treated as success (upstream field). */
  readonly validExitCodes?: readonly number[];
  /** Proxy variables passed to the exec outside its env (Go `WithProxy`). */
  readonly proxy?: ProxyEnv;
  /** Mount the root filesystem read-only; the root then has no output (Go `ReadonlyRootFS`). */
  readonly readonlyRootfs?: boolean;
  /** Extra mounts, sorted by target in the op. */
  readonly mounts?: readonly MountSpec[];
  /** Secrets as files or environment variables. */
  readonly secrets?: readonly SecretSpec[];
  /** SSH agent sockets. */
  readonly ssh?: readonly SSHSpec[];
}

interface MountEntry {
  readonly target: string;
  readonly source: Output | undefined;
  readonly readonly: boolean;
  readonly selector: string;
  readonly cacheId: string;
  readonly cacheSharing: CacheSharing;
  readonly tmpfs: boolean;
  readonly tmpfsSize: bigint;
  readonly noOutput: boolean;
  readonly contentCache: number;
  output: Output | undefined;
}

/** Go `system.DefaultPathEnv`. */
export function defaultPathEnv(os: string): string {
  return os === 'windows'
    ? 'c:\\Windows\\System32;c:\\Windows'
    : '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
}

/** Formats an IP address as Go's `net.IP.String` does. */
export function formatIP(ip: string): string {
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1] as string;
  try {
    const host = new URL(`http://[${ip}]/`).hostname;
    const out = host.slice(1, -1);
    const v4 = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(out);
    if (v4) {
      const a = parseInt(v4[1] as string, 16);
      const b = parseInt(v4[2] as string, 16);
      return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
    }
    return out;
  } catch {
    return ip;
  }
}

const sharingCode = (s: CacheSharing): number =>
  s === 'private' ? CacheSharingOpt.PRIVATE : s === 'locked' ? CacheSharingOpt.LOCKED : CacheSharingOpt.SHARED;

/** @internal The exec vertex. */
export class ExecVertex extends Vertex {
  readonly mounts: MountEntry[] = [];
  readonly root: Output | undefined;
  error: LlbError | undefined;

  constructor(
    private readonly base: State,
    private readonly constraints: Constraints,
    private readonly proxy: ProxyEnv | undefined,
    private readonly secrets: readonly SecretSpec[],
    private readonly ssh: readonly SSHSpec[],
    readonlyRoot: boolean,
    extra: readonly MountSpec[],
  ) {
    super();
    const rootMount = this.entry({ target: ROOT_MOUNT, readonly: readonlyRoot }, base.output);
    if (readonlyRoot) rootMount.output = base.output;
    else rootMount.output = new Output(this, () => this.mountIndex(rootMount), constraints.platform);
    this.root = rootMount.output;
    this.mounts.push(rootMount);
    for (const m of extra) {
      const e = this.entry(m, m.source?.output);
      if (m.source?.error) this.error ??= m.source.error;
      if (e.readonly) e.output = e.source;
      else if (e.tmpfs) e.output = new Output(this, undefined, undefined, `tmpfs mount for ${e.target} can't be used as a parent`);
      else if (e.noOutput) e.output = new Output(this, undefined, undefined, `mount marked no-output and ${e.target} can't be used as a parent`);
      else e.output = new Output(this, () => this.mountIndex(e), constraints.platform);
      this.mounts.push(e);
    }
    // Go sorts mounts by target (insertion sort for small slices, so stable).
    this.mounts.sort((a, b) => compareGoStrings(a.target, b.target));
  }

  private entry(m: MountSpec, source: Output | undefined): MountEntry {
    const tmpfs = m.tmpfs !== undefined && m.tmpfs !== false;
    const size = typeof m.tmpfs === 'object' && m.tmpfs.size !== undefined ? BigInt(m.tmpfs.size) : 0n;
    return {
      target: m.target,
      source,
      readonly: m.readonly === true,
      selector: m.sourcePath ?? '',
      cacheId: m.cache?.id ?? '',
      cacheSharing: m.cache?.sharing ?? 'shared',
      tmpfs,
      tmpfsSize: size,
      noOutput: m.forceNoOutput === true,
      contentCache:
        m.contentCache === 'on' ? MountContentCache.ON : m.contentCache === 'off' ? MountContentCache.OFF : MountContentCache.DEFAULT,
      output: undefined,
    };
  }

  private mountIndex(m: MountEntry): number {
    let i = 0;
    for (const m2 of this.mounts) {
      if (m2.noOutput || m2.readonly || m2.tmpfs || m2.cacheId !== '') continue;
      if (m2 === m) return i;
      i++;
    }
    throw new LlbError('LLB_INVALID_STATE', `invalid mount: ${m.target}`);
  }

  /** The output of the mount at `target`, if there is such a mount. */
  getMountOutput(target: string): Output | undefined {
    return this.mounts.find((m) => m.target === target)?.output;
  }

  inputs(): readonly Vertex[] {
    const out: Vertex[] = [];
    // indexed loops here and in marshal: see encMeta in pb/exec-codec.ts
    for (let i = 0; i < this.mounts.length; i++) {
      const m = this.mounts[i] as MountEntry;
      if (m.source && !out.includes(m.source.vertex)) out.push(m.source.vertex);
    }
    return out;
  }

  marshal(ctx: MarshalContext): MarshaledVertex {
    if (this.error) throw this.error;
    const v = this.base.values;
    const c = cloneConstraints(this.constraints);
    let env = [...v.env];
    const ssh = this.ssh.map((s, i) => ({ ...s, target: s.target ?? `/run/buildkit/ssh_agent.${i}` }));
    if (ssh.length > 0 && !env.some(([k]) => k === 'SSH_AUTH_SOCK')) {
      env = [...env.filter(([k]) => k !== 'SSH_AUTH_SOCK'), ['SSH_AUTH_SOCK', (ssh[0] as { target: string }).target] as const];
    }
    if (ctx.caps !== undefined) {
      if (!ctx.caps.has(Caps.execMetaSetsDefaultPath)) {
        const os = ctx.constraints.platform?.os ?? c.platform?.os ?? 'linux';
        if (!env.some(([k]) => k === 'PATH')) env.push(['PATH', defaultPathEnv(os)]);
      } else addCap(c, Caps.execMetaSetsDefaultPath);
    }
    const args = v.args ?? [];
    if (args.length === 0) throw new LlbError('LLB_INVALID_STATE', 'exec: arguments are required');
    if (!v.dir) throw new LlbError('LLB_INVALID_STATE', 'exec: working directory is required');

    const meta: { -readonly [K in keyof Meta]: Meta[K] } = { args: [...args] };
    if (env.length > 0) meta.env = env.map(([k, val]) => `${k}=${val}`);
    meta.cwd = v.dir;
    if (v.user) meta.user = v.user;
    if (v.hostname) meta.hostname = v.hostname;
    if (v.cgroupParent) meta.cgroupParent = v.cgroupParent;
    meta.removeMountStubsRecursive = true;
    if (v.validExitCodes !== undefined) {
      meta.validExitCodes = [...v.validExitCodes];
      addCap(c, Caps.execValidExitCode);
    }
    if (v.extraHosts.length > 0) meta.extraHosts = v.extraHosts.map((h) => ({ host: h.host, ip: formatIP(h.ip) }));
    if (v.ulimits.length > 0) {
      addCap(c, Caps.execMetaUlimit);
      meta.ulimit = v.ulimits.map((u): Ulimit => ({ name: u.name, soft: BigInt(u.soft), hard: BigInt(u.hard) }));
    }
    const network = v.network ?? NetMode.UNSET;
    const security = v.security ?? SecurityMode.SANDBOX;
    if (network !== NetMode.UNSET) addCap(c, Caps.execMetaNetwork);
    if (security !== SecurityMode.SANDBOX) addCap(c, Caps.execMetaSecurity);
    if (this.proxy) {
      meta.proxyEnv = { ...this.proxy };
      addCap(c, Caps.execMetaProxy);
    }
    addCap(c, Caps.execMetaBase);
    for (let i = 0; i < this.mounts.length; i++) {
      const m = this.mounts[i] as MountEntry;
      if (m.selector) addCap(c, Caps.execMountSelector);
      if (m.cacheId) {
        addCap(c, Caps.execMountCache);
        addCap(c, Caps.execMountCacheSharing);
      } else if (m.tmpfs) {
        addCap(c, Caps.execMountTmpfs);
        if (m.tmpfsSize > 0n) addCap(c, Caps.execMountTmpfsSize);
      } else if (m.source) addCap(c, Caps.execMountBind);
      if (m.contentCache !== MountContentCache.DEFAULT) addCap(c, Caps.execMountContentCache);
    }
    if (this.secrets.length > 0) {
      addCap(c, Caps.execMountSecret);
      if (this.secrets.some((s) => s.env !== undefined)) addCap(c, Caps.execSecretEnv);
    }
    if (ssh.length > 0) addCap(c, Caps.execMountSSH);
    c.platform ??= v.platform;

    const mc = marshalConstraints(ctx.constraints, c);
    const inputs: Input[] = [];
    const inputVertices: Vertex[] = [];
    const mounts: Mount[] = [];
    let outIndex = 0;
    for (let i = 0; i < this.mounts.length; i++) {
      const m = this.mounts[i] as MountEntry;
      let inputIndex = inputs.length;
      if (m.source) {
        if (m.tmpfs) throw new LlbError('LLB_INVALID_STATE', 'tmpfs mounts must use scratch');
        const { input, vertex } = ctx.toInput(m.source);
        const found = inputs.findIndex((i) => i.digest === input.digest && i.index === input.index);
        if (found >= 0) inputIndex = found;
        else {
          inputs.push(input);
          inputVertices.push(vertex);
        }
      } else inputIndex = -1;
      let outputIndex = -1;
      if (!m.noOutput && !m.readonly && !m.cacheId && !m.tmpfs) outputIndex = outIndex++;
      const pm: { -readonly [K in keyof Mount]: Mount[K] } = { input: inputIndex, dest: m.target, output: outputIndex };
      if (m.readonly) pm.readonly = true;
      if (m.selector) pm.selector = m.selector;
      if (m.cacheId) {
        pm.mountType = MountType.CACHE;
        pm.cacheOpt = { id: m.cacheId, sharing: sharingCode(m.cacheSharing) };
      }
      if (m.contentCache) pm.contentCache = m.contentCache;
      if (m.tmpfs) {
        pm.mountType = MountType.TMPFS;
        pm.tmpfsOpt = { size: m.tmpfsSize };
      }
      mounts.push(pm);
    }
    const secretenv: SecretEnv[] = [];
    for (const s of this.secrets) {
      const id = s.id ?? s.target ?? s.env ?? '';
      if (s.env !== undefined) secretenv.push({ id, name: s.env, optional: s.optional === true });
      if (s.target !== undefined) {
        mounts.push({
          dest: s.target,
          mountType: MountType.SECRET,
          secretOpt: { id, uid: s.uid ?? 0, gid: s.gid ?? 0, optional: s.optional === true, mode: s.mode ?? 0o400 },
        });
      }
    }
    for (const s of ssh) {
      mounts.push({
        dest: s.target,
        mountType: MountType.SSH,
        sshOpt: { id: s.id ?? '', uid: s.uid ?? 0, gid: s.gid ?? 0, mode: s.mode ?? 0o600, optional: s.optional === true },
      });
    }
    const exec: { -readonly [K in keyof ExecOp]: ExecOp[K] } = { meta, mounts };
    if (network) exec.network = network;
    if (security) exec.security = security;
    if (secretenv.length > 0) exec.secretenv = secretenv;
    const op: Op = {
      kind: 'exec',
      inputs,
      exec,
      platform: mc.platform,
      constraints: mc.workerConstraints.length > 0 ? { filter: mc.workerConstraints } : {},
    };
    return finishVertex(op, mc.metadata, inputVertices, c.sourceLocations);
  }
}

/** Applies run options that change state values (for this exec only). */
function runState(base: State, o: RunOptions): State {
  let s = base;
  if (o.args !== undefined) s = s.args(...o.args);
  if (o.shlex !== undefined) s = s.args(...shlexSplit(o.shlex));
  if (o.env !== undefined) {
    const entries = Array.isArray(o.env) ? (o.env as readonly (readonly [string, string])[]) : Object.entries(o.env);
    for (const [k, v] of entries) s = s.addEnv(k, v);
  }
  if (o.dir !== undefined) s = s.dir(o.dir);
  if (o.user !== undefined) s = s.user(o.user);
  if (o.hostname !== undefined) s = s.hostname(o.hostname);
  if (o.network !== undefined) s = s.network(o.network);
  if (o.security !== undefined) s = s.security(o.security);
  for (const h of o.extraHosts ?? []) s = s.addExtraHost(h.host, h.ip);
  for (const u of o.ulimits ?? []) s = s.addUlimit(u.name, u.soft, u.hard);
  if (o.cgroupParent !== undefined) s = s.cgroupParent(o.cgroupParent);
  if (o.validExitCodes !== undefined) s = s.validExitCodes(...o.validExitCodes);
  return s;
}

/** @internal Builds the exec vertex for {@link State.run}. */
export function createExec(state: State, opts: RunOptions): { vertex: ExecVertex; root: Output | undefined } {
  let base: State;
  let err: LlbError | undefined;
  try {
    base = runState(state, opts);
  } catch (e) {
    base = state;
    err = e instanceof LlbError ? e : new LlbError('LLB_INVALID_STATE', String(e));
  }
  const vertex = new ExecVertex(
    base,
    constraintsFrom(opts),
    opts.proxy,
    opts.secrets ?? [],
    opts.ssh ?? [],
    opts.readonlyRootfs === true,
    opts.mounts ?? [],
  );
  if (err) vertex.error ??= err;
  return { vertex, root: vertex.root };
}
