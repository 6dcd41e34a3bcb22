/**
 * {@link State}: an immutable handle on a point of the LLB graph plus the values that
 * later ops inherit (env, working directory, user, platform, network…), in the spirit
 * of BuildKit's Go `client/llb.State`. Every method returns a new State; nothing is
 * marshaled until {@link State.marshal}.
 */
import type { Definition } from '../op.js';
import { LlbError } from '../errors.js';
import { NetMode, SecurityMode } from '../op.js';
import { parseImageConfig, type ImageConfig } from '../image-config.js';
import { toPlatform, type Platform } from '../platform.js';
import { isAbsPath, joinPath } from './paths.js';
import type { ConstraintsOptions } from './constraints.js';
import { Output } from './vertex.js';
import { createExec, type ExecVertex, type RunOptions } from './exec.js';
import { createFileOp, type FileAction } from './file.js';
import { createBuildOp, type BuildOptions } from './build.js';
import { marshalState, type MarshalOptions } from './marshal.js';

/** Network mode names for {@link State.network}. */
export type NetworkMode = 'sandbox' | 'host' | 'none';
/** Security mode names for {@link State.security}. */
export type SecurityModeName = 'sandbox' | 'insecure';

/** An /etc/hosts entry added to execs. */
export interface ExtraHost {
  /** Host name. */
  readonly host: string;
  /** IPv4 or IPv6 address (printed the way Go's net.IP does). */
  readonly ip: string;
}
/** A resource limit for execs (`RLIMIT_*` name in lowercase without prefix, e.g. `nofile`). */
export interface UlimitSpec {
  /** Limit name, e.g. `nofile`. */
  readonly name: string;
  /** Soft limit. */
  readonly soft: number | bigint;
  /** Hard limit. */
  readonly hard: number | bigint;
}

/** The values a State carries for the ops built on it (Go state keys). */
export interface StateValues {
  /** Environment variables, in order. */
  readonly env: readonly (readonly [string, string])[];
  /** Working directory (`/` by default). */
  readonly dir: string;
  /** User execs run as. */
  readonly user: string | undefined;
  /** Hostname of execs. */
  readonly hostname: string | undefined;
  /** Platform of the ops built on this state; undefined means the marshal platform. */
  readonly platform: Platform | undefined;
  /** `pb.NetMode` of execs. */
  readonly network: number | undefined;
  /** `pb.SecurityMode` of execs. */
  readonly security: number | undefined;
  /** Extra /etc/hosts entries. */
  readonly extraHosts: readonly ExtraHost[];
  /** Resource limits. */
  readonly ulimits: readonly UlimitSpec[];
  /** cgroup parent of execs. */
  readonly cgroupParent: string | undefined;
  /** Command of the next exec. */
  readonly args: readonly string[] | undefined;
  /** Exit codes treated as success. */
  readonly validExitCodes: readonly number[] | undefined;
}

const EMPTY_VALUES: StateValues = {
  env: [],
  dir: '/',
  user: undefined,
  hostname: undefined,
  platform: undefined,
  network: undefined,
  security: undefined,
  extraHosts: [],
  ulimits: [],
  cgroupParent: undefined,
  args: undefined,
  validExitCodes: undefined,
};

/**
 * An immutable point in an LLB graph. `output` is undefined for scratch (the empty
 * filesystem). Errors found while building (a bad reference, say) are held and thrown
 * by {@link State.marshal}, as BuildKit holds them until Validate.
 */
export class State {
  /** @internal */
  constructor(
    /** @internal The graph output, undefined for scratch. */
    readonly output: Output | undefined,
    /** The inherited values (env, dir, user, platform, …). */
    readonly values: StateValues,
    /** @internal A held build error, thrown at marshal. */
    readonly error: LlbError | undefined = undefined,
  ) {}

  /** @internal Go `NewState`: dir `/` and the output's platform. */
  static fromOutput(output: Output | undefined, error?: LlbError): State {
    const values = output?.platform ? { ...EMPTY_VALUES, platform: output.platform } : EMPTY_VALUES;
    return new State(output, values, error);
  }

  /** True for scratch (no output). */
  get isScratch(): boolean {
    return this.output === undefined;
  }

  private with(values: Partial<StateValues>): State {
    return new State(this.output, { ...this.values, ...values }, this.error);
  }

  /** Go `WithOutput`: same values, a new output (whose platform, if any, becomes the state's). */
  withOutput(output: Output | undefined): State {
    const values = output?.platform ? { ...this.values, platform: output.platform } : this.values;
    return new State(output, values, this.error);
  }

  /** Go `Reset`: keeps this state's output but takes every value from `other`. */
  reset(other: State): State {
    return new State(this.output, other.values, this.error).withOutput(this.output);
  }

  /** Sets the working directory; a relative path joins the current one (Go `Dir`). */
  dir(path: string): State {
    if (isAbsPath(path)) return this.with({ dir: path });
    return this.with({ dir: joinPath(this.values.dir || '/', path) });
  }

  /** The working directory. */
  getDir(): string {
    return this.values.dir;
  }

  /** Adds or replaces an environment variable; a replaced key moves to the end (Go `AddEnv`). */
  addEnv(key: string, value: string): State {
    const env = this.values.env.filter(([k]) => k !== key);
    return this.with({ env: [...env, [key, value] as const] });
  }

  /** Removes an environment variable. */
  delEnv(key: string): State {
    return this.with({ env: this.values.env.filter(([k]) => k !== key) });
  }

  /** The value of one environment variable, or undefined. */
  getEnv(key: string): string | undefined {
    return this.values.env.find(([k]) => k === key)?.[1];
  }

  /** The environment as `KEY=value` strings, in order. */
  env(): string[] {
    return this.values.env.map(([k, v]) => `${k}=${v}`);
  }

  /** Sets the user execs run as (`name`, `uid`, `uid:gid`…). */
  user(user: string): State {
    return this.with({ user });
  }

  /** The user, or undefined for the image default. */
  getUser(): string | undefined {
    return this.values.user;
  }

  /** Sets the hostname of execs. */
  hostname(hostname: string): State {
    return this.with({ hostname });
  }

  /** Sets the platform for the ops built on this state (e.g. `linux/arm64`). */
  platform(platform: Platform | string): State {
    return this.with({ platform: toPlatform(platform) });
  }

  /** The platform, or undefined to use the marshal-time platform. */
  getPlatform(): Platform | undefined {
    return this.values.platform;
  }

  /** Sets the exec network mode. */
  network(mode: NetworkMode): State {
    return this.with({ network: mode === 'host' ? NetMode.HOST : mode === 'none' ? NetMode.NONE : NetMode.UNSET });
  }

  /** Sets the exec security mode (`insecure` = privileged). */
  security(mode: SecurityModeName): State {
    return this.with({ security: mode === 'insecure' ? SecurityMode.INSECURE : SecurityMode.SANDBOX });
  }

  /** Adds an /etc/hosts entry for execs. */
  addExtraHost(host: string, ip: string): State {
    return this.with({ extraHosts: [...this.values.extraHosts, { host, ip }] });
  }

  /** Adds a ulimit for execs. */
  addUlimit(name: string, soft: number | bigint, hard: number | bigint): State {
    return this.with({ ulimits: [...this.values.ulimits, { name, soft, hard }] });
  }

  /** Sets the cgroup parent of execs. */
  cgroupParent(cgroupParent: string): State {
    return this.with({ cgroupParent });
  }

  /** Sets the exit codes execs treat as success (upstream `ValidExitCodes`). */
  validExitCodes(...codes: number[]): State {
    return this.with({ validExitCodes: codes });
  }

  /** Sets the command of the next exec (Go `Args`); usually passed to {@link State.run} instead. */
  args(...args: string[]): State {
    return this.with({ args });
  }

  /**
   * Applies an image config's `Env` and `WorkingDir` (and its platform), as Go's
   * `WithImageConfig` does for resolved images. The config's `User` is not applied.
   */
  withImageConfig(config: ImageConfig | Uint8Array | string): State {
    const img = config instanceof Uint8Array || typeof config === 'string' ? parseImageConfig(config) : config;
    let s: State = this;
    for (const e of img.config?.Env ?? []) {
      const i = e.indexOf('=');
      const k = i < 0 ? e : e.slice(0, i);
      if (k.length > 0) s = s.addEnv(k, i < 0 ? '' : e.slice(i + 1));
    }
    s = s.dir(img.config?.WorkingDir ?? '');
    if (img.architecture && img.os) {
      s = s.platform(img.variant ? { os: img.os, architecture: img.architecture, variant: img.variant } : { os: img.os, architecture: img.architecture });
    }
    return s;
  }

  /** Applies functions to this state in order (Go `With`). */
  apply(...fns: ((s: State) => State)[]): State {
    return fns.reduce<State>((s, f) => f(s), this);
  }

  /**
   * Runs a command on this state (Go `Run`). The result is an {@link ExecState} whose
   * output is the root filesystem after the command; mounts' results are available via
   * {@link ExecState.getMount}. Run options that change values (env, dir, user…) apply
   * to this exec only; the returned state keeps this state's values.
   */
  run(opts: RunOptions): ExecState {
    const { vertex, root } = createExec(this, opts);
    return new ExecState(this.withOutput(root).output, this.withOutput(root).values, this.error ?? vertex.error, vertex);
  }

  /** Applies a chain of file actions as one FileOp (Go `File`). */
  file(action: FileAction, opts?: ConstraintsOptions): State {
    return this.withOutput(createFileOp(this, action, opts));
  }

  /** Runs a nested build of the LLB definition file in this state (Go `llbbuild.Build`). */
  build(opts: BuildOptions = {}): State {
    return this.withOutput(createBuildOp(this, opts));
  }

  /**
   * Marshals the graph ending at this state into a Definition: ops in depth-first
   * post-order from the terminal op (inputs in listed order, each op once), then the
   * terminal op. Throws {@link LlbError} for held errors or invalid graphs.
   */
  async marshal(opts: MarshalOptions = {}): Promise<Definition> {
    return marshalState(this, opts);
  }

  /** Synchronous {@link State.marshal}. */
  marshalSync(opts: MarshalOptions = {}): Definition {
    return marshalState(this, opts);
  }
}

/** The result of {@link State.run}: the root filesystem, plus access to the exec's mounts. */
export class ExecState extends State {
  /** @internal */
  constructor(output: Output | undefined, values: StateValues, error: LlbError | undefined, private readonly exec: ExecVertex) {
    super(output, values, error);
  }

  /** The root filesystem after the command (the state itself, as Go's `Root`). */
  root(): State {
    return new State(this.output, this.values, this.error);
  }

  /**
   * The filesystem of the mount at `target` after the command (Go `GetMount`). For a
   * read-only mount this is its source; tmpfs, cache and no-output mounts have none and
   * fail at marshal when used.
   */
  getMount(target: string): State {
    const o = this.exec.getMountOutput(target);
    if (o === undefined) {
      return State.fromOutput(undefined, new LlbError('LLB_INVALID_STATE', `exec has no mount at ${target}`));
    }
    return State.fromOutput(o);
  }
}

/** Scratch: the empty filesystem (Go `llb.Scratch`). */
export function scratch(): State {
  return State.fromOutput(undefined);
}
