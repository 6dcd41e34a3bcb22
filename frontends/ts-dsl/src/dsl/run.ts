/**
 * `run` options of the DSL, turned into llb-core's RunOptions (Go's `RunOption`s): mounts by
 * target, secrets as files or environment variables, SSH sockets, and per-exec values.
 */
import type { MountSpec, NetworkMode, RunOptions, SecretSpec, SecurityModeName, SSHSpec, State as LlbState } from '@kiln/llb-core';
import type { LowerContext } from './lower.js';
import type { Mount, SecretMount, SshMount } from './mounts.js';
import { Sh } from './sh.js';
import { TsDslError } from '../errors.js';
import { bool, checkOptions, describeValue, oneOf, recordOf, state, str, type Field } from './options.js';

/** Something that lowers to an llb-core State (a DSL State). */
interface Lowerable {
  lower(c: LowerContext): Promise<LlbState>;
}

/** A command: argv, a `sh` script, or one string split into words without a shell (Go `Shlex`). */
export type Command = readonly string[] | Sh | string;

/** Options of `State.run`. */
export interface RunOpts {
  /** Mounts by target path: `cache()`, `secret()`, `bind()`, `tmpfs()`, `ssh()`, or a State (writable bind). */
  readonly mounts?: Readonly<Record<string, Mount | Lowerable>>;
  /** SSH agent sockets. */
  readonly ssh?: SshMount | readonly SshMount[];
  /** Secrets as environment variables: `{ TOKEN: secret("t") }`. */
  readonly secretEnv?: Readonly<Record<string, SecretMount>>;
  /** Extra environment of this command. */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory of this command. */
  readonly dir?: string;
  /** User of this command. */
  readonly user?: string;
  /** Hostname of this command. */
  readonly hostname?: string;
  /** Exit codes that count as success. */
  readonly validExitCodes?: readonly number[];
  /** Network mode of this command. */
  readonly network?: NetworkMode;
  /** Security mode of this command. */
  readonly security?: SecurityModeName;
  /** Always run, never take a cached result. */
  readonly ignoreCache?: boolean;
  /** Name shown in progress output. */
  readonly name?: string;
  /** Mount the root filesystem read-only. */
  readonly readonlyRootfs?: boolean;
}

const isMount = (v: Mount | Lowerable): v is Mount => 'kind' in v;

/** llb-core's NetworkMode and SecurityModeName values, for run-time checks. */
export const NETWORK_MODES: readonly NetworkMode[] = ['sandbox', 'host', 'none'];
export const SECURITY_MODES: readonly SecurityModeName[] = ['sandbox', 'insecure'];

const MOUNT_KINDS = ['cache', 'secret', 'bind', 'tmpfs', 'ssh'];
const kindOf = (v: unknown): unknown => (typeof v === 'object' && v !== null ? (v as { kind?: unknown }).kind : undefined);
const mountValue: Field = {
  what: 'a cache(), secret(), bind(), tmpfs() or ssh() mount or a State',
  ok: (v) => MOUNT_KINDS.includes(kindOf(v) as string) || state.ok(v),
};
const ofKind = (kind: string, what: string): Field => ({ what, ok: (v) => kindOf(v) === kind });
const sshField: Field = { what: 'ssh() or a list of them', ok: (v) => (Array.isArray(v) ? v : [v]).every((x) => kindOf(x) === 'ssh') };

/** @internal Throws KLN0805 (at the `.run` call) for an unknown or mistyped option. */
export function checkRunOptions(o: RunOpts): void {
  checkOptions('run', o, {
    // targets are absolute: runc refuses a relative one only once the step runs
    mounts: {
      ...recordOf(mountValue, 'mounts by target path: { mounts: { "/root/.npm": cache("npm"), "/src": bind(src) } }'),
      what: `an object of ${mountValue.what} values by absolute target path`,
      ok: (v) => recordOf(mountValue).ok(v) && Object.keys(v as object).every((t) => t.startsWith('/')),
      got: (v) => recordOf(mountValue).got?.(v) ?? (typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v).filter((t) => !t.startsWith('/')).map((t) => `the relative target ${JSON.stringify(t)}`)[0] : undefined),
    },
    ssh: sshField,
    secretEnv: recordOf(ofKind('secret', 'secret()'), 'secretEnv: { NPM_TOKEN: secret("npm") }'),
    env: recordOf(str, 'env values are strings: { env: { PORT: "3000" } }'),
    dir: str,
    user: str,
    hostname: str,
    validExitCodes: { what: 'a number[]', ok: (v) => Array.isArray(v) && v.every((x) => Number.isInteger(x)) },
    network: oneOf(...NETWORK_MODES),
    security: oneOf(...SECURITY_MODES),
    ignoreCache: bool,
    name: str,
    readonlyRootfs: bool,
  });
}

function sshSpec(s: SshMount, target?: string): SSHSpec {
  const t = target ?? s.target;
  return {
    ...(s.id === undefined ? {} : { id: s.id }),
    ...(t === undefined ? {} : { target: t }),
    ...(s.mode === undefined ? {} : { mode: s.mode }),
    ...(s.uid === undefined ? {} : { uid: s.uid }),
    ...(s.gid === undefined ? {} : { gid: s.gid }),
    ...(s.optional ? { optional: true } : {}),
  };
}

function secretSpec(s: SecretMount, where: { target: string } | { env: string }): SecretSpec {
  return {
    id: s.id,
    ...where,
    ...(s.mode === undefined ? {} : { mode: s.mode }),
    ...(s.uid === undefined ? {} : { uid: s.uid }),
    ...(s.gid === undefined ? {} : { gid: s.gid }),
    ...(s.optional ? { optional: true } : {}),
  };
}

/** @internal Throws KLN0805 (at the `.run` call) for an empty or malformed command. */
export function validateCommand(cmd: Command): void {
  const hint = 'run(["make", "all"]), run(sh`make all`) or run("make all")';
  if (cmd instanceof Sh || typeof cmd === 'string') {
    if ((cmd instanceof Sh ? cmd.script : cmd).trim() === '') throw new TsDslError('KLN0805', 'run: the command is empty', { hint });
    return;
  }
  if (!Array.isArray(cmd)) throw new TsDslError('KLN0805', `run: the command must be a string[], an sh\`…\` script or a string (got ${describeValue(cmd)})`, { hint });
  if (cmd.length === 0) throw new TsDslError('KLN0805', 'run: the command is empty', { hint });
  const bad = cmd.findIndex((a) => typeof a !== 'string');
  if (bad >= 0) throw new TsDslError('KLN0805', `run: argument ${bad} of the command is ${describeValue(cmd[bad])}, not a string`, { hint });
}

/** @internal For `Exec.output`: each mount target, undefined when it has an output, else why not. */
export function mountOutputs(o: RunOpts): ReadonlyMap<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  // the root: Go's ReadonlyRootFS hands back the input rootfs, so the command would vanish
  out.set('/', o.readonlyRootfs === true ? 'the root filesystem is read-only (readonlyRootfs), so it has no output: take a writable mount\'s' : undefined);
  for (const [target, m] of Object.entries(o.mounts ?? {})) {
    if (!isMount(m)) out.set(target, undefined);
    else if (m.kind === 'bind') out.set(target, m.readonly ? 'a read-only bind mount has no output (its content is its source: use that State)' : undefined);
    else out.set(target, `a ${m.kind} mount has no output`);
  }
  return out;
}

/** @internal Lowers the mount sources and builds llb-core's RunOptions. */
export async function toRunOptions(cmd: Command, o: RunOpts, c: LowerContext): Promise<RunOptions> {
  const mounts: MountSpec[] = [];
  const secrets: SecretSpec[] = [];
  const sshs: SSHSpec[] = [];
  for (const [target, m] of Object.entries(o.mounts ?? {})) {
    if (!isMount(m)) {
      mounts.push({ target, source: await m.lower(c) });
      continue;
    }
    switch (m.kind) {
      case 'cache':
        mounts.push({
          target,
          cache: { id: m.id, sharing: m.sharing },
          ...(m.from === undefined ? {} : { source: await m.from.lower(c) }),
          ...(m.path === undefined ? {} : { sourcePath: m.path }),
        });
        break;
      case 'bind':
        mounts.push({
          target,
          source: await m.from.lower(c),
          ...(m.path === undefined ? {} : { sourcePath: m.path }),
          ...(m.readonly ? { readonly: true } : {}),
        });
        break;
      case 'tmpfs':
        mounts.push({ target, tmpfs: m.size === undefined ? true : { size: m.size } });
        break;
      case 'secret':
        secrets.push(secretSpec(m, { target }));
        break;
      case 'ssh':
        sshs.push(sshSpec(m, target));
        break;
    }
  }
  for (const [name, s] of Object.entries(o.secretEnv ?? {})) secrets.push(secretSpec(s, { env: name }));
  const extraSsh = o.ssh === undefined ? [] : Array.isArray(o.ssh) ? (o.ssh as readonly SshMount[]) : [o.ssh as SshMount];
  for (const s of extraSsh) sshs.push(sshSpec(s));
  const command = cmd instanceof Sh ? { args: cmd.args } : typeof cmd === 'string' ? { shlex: cmd } : { args: cmd };
  return {
    ...command,
    ...(mounts.length > 0 ? { mounts } : {}),
    ...(secrets.length > 0 ? { secrets } : {}),
    ...(sshs.length > 0 ? { ssh: sshs } : {}),
    ...(o.env === undefined ? {} : { env: o.env }),
    ...(o.dir === undefined ? {} : { dir: o.dir }),
    ...(o.user === undefined ? {} : { user: o.user }),
    ...(o.hostname === undefined ? {} : { hostname: o.hostname }),
    ...(o.validExitCodes === undefined ? {} : { validExitCodes: o.validExitCodes }),
    ...(o.network === undefined ? {} : { network: o.network }),
    ...(o.security === undefined ? {} : { security: o.security }),
    ...(o.ignoreCache === true ? { ignoreCache: true } : {}),
    ...(o.name === undefined ? {} : { customName: o.name }),
    ...(o.readonlyRootfs === true ? { readonlyRootfs: true } : {}),
  };
}
