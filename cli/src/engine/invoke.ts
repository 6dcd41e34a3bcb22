import { suggest } from '@kiln/dockerfile';
import { formatPlatform } from '@kiln/runtime';
import { shlexSplit, type Container, type ContainerProcess, type ContainerProcessRequest, type Platform } from '@kiln/llb-core';
import type { BackendContainerMount } from '@kiln/gateway';
import type { FailedExecState } from '@kiln/solver';
import { signalInterrupts, type Interrupts } from '../io.js';
import type { HeldBuild } from './build.js';
import type { KilnEngine } from './engine.js';
import { EngineError } from './errors.js';
import type { OutputStream } from './output-targets.js';
import { SnapshotRef } from './snapshot-ref.js';

/**
 * `kiln build --invoke`, buildx's debug shell: after the build, a command in a container of the
 * result; after a RUN that failed, in the state that RUN left. `on-error` runs only after a
 * failure; `default` runs the image's entrypoint and command.
 */
export interface InvokeSpec {
  readonly when: 'always' | 'on-error';
  /** The command; absent: the image's entrypoint and command (a result) or `/bin/sh` (a failed RUN). */
  readonly args?: readonly string[];
}

/** Parses an `--invoke` value: `on-error`, `default`, or a command line (shell words). */
export function parseInvoke(value: string): InvokeSpec {
  const v = value.trim();
  if (v === 'on-error') return { when: 'on-error' };
  if (v === 'default') return { when: 'always' };
  let args: string[];
  try {
    args = shlexSplit(v);
  } catch (e) {
    // shlex's LLB_INVALID_STATE would name neither the option nor what to do
    throw new EngineError('KLN0712', `--invoke ${v}: ${e instanceof Error ? e.message.replace(/^shlex: /, '').replace(/ in "[^]*$/, '') : String(e)}`, {
      hint: `close the quote, or quote the whole command for your shell: --invoke 'sh -c "…"'`,
    });
  }
  if (args.length === 0) throw new EngineError('KLN0712', '--invoke needs a command', { hint: 'e.g. --invoke /bin/sh, --invoke on-error or --invoke default' });
  // A misspelt keyword would run as a command only after the whole build, and fail there.
  const near = args.length === 1 && !v.includes('/') ? suggest(v, ['on-error', 'default']) : undefined;
  if (near !== undefined) {
    throw new EngineError('KLN0712', `--invoke ${v}: did you mean --invoke ${near}?`, { hint: `to run a command named ${JSON.stringify(v)}, give its path (e.g. --invoke ./${v} or /usr/bin/${v})` });
  }
  return { when: 'always', args };
}

/** The caller's side of an invoked process. */
export interface InvokeIo {
  readonly stdin: AsyncIterable<Uint8Array>;
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** Ctrl-C and SIGTERM go to the process; SIGHUP (a daemon client gone) ends the container. */
  readonly interrupts: Interrupts;
  /** The caller's terminal, when stdin and stdout are one: the process then gets a pseudo-terminal. */
  readonly terminal?: InvokeTerminal;
}

/**
 * The output callback of a process writing to `out`: it waits for `drain` when `out` is full, so
 * a slow reader slows the process instead of growing kiln's memory. A write that throws (kiln's
 * stdout is gone: its reader ended, the terminal hung up) goes to `lost` once, and what the
 * process writes after that is dropped.
 */
function outputTo(out: OutputStream, lost: (e: unknown) => void): (chunk: Uint8Array) => Promise<void> | undefined {
  let failed = false;
  return (chunk) => {
    if (failed) return undefined;
    try {
      if (out.write(chunk) !== false || out.once === undefined) return undefined;
      return new Promise<void>((resolve) => void out.once?.('drain', resolve));
    } catch (e) {
      failed = true;
      lost(e);
      return undefined;
    }
  };
}

/** A terminal the invoked process takes over: raw while it runs, its size followed. */
export interface InvokeTerminal {
  size(): { readonly rows: number; readonly cols: number };
  onResize(listener: () => void): () => void;
  setRaw(raw: boolean): void;
}

/** The caller's own terminal (process stdin and stdout), if both are one. */
export function processTerminal(): InvokeTerminal | undefined {
  const { stdin, stdout } = process;
  if (stdin.isTTY !== true || stdout.isTTY !== true) return undefined;
  return {
    size: () => ({ rows: stdout.rows, cols: stdout.columns }),
    onResize: (l) => {
      stdout.on('resize', l);
      return () => void stdout.off('resize', l);
    },
    setRaw: (raw) => void stdin.setRawMode(raw),
  };
}

/**
 * This process's interrupts while a command is invoked: SIGINT and SIGTERM, and SIGHUP (its
 * terminal closed, an ssh session gone), which would otherwise end kiln at once and leave the
 * container running on (its runc is detached) with the build's state held.
 */
export const invokeInterrupts: Interrupts = signalInterrupts(['SIGINT', 'SIGTERM', 'SIGHUP']);

/** The shell a failed RUN's state opens when no command was given (buildx's on-error default). */
const FAILED_DEFAULT = ['/bin/sh'];

/**
 * Runs the invoked command in `held` (a result, or a failed RUN's state) with the caller's
 * streams, and resolves with its exit status once the container is released. The caller
 * releases `held` afterwards.
 */
export async function invoke(engine: KilnEngine, held: HeldBuild, spec: InvokeSpec, io: InvokeIo): Promise<number> {
  const newContainer = held.backend.newContainer?.bind(held.backend);
  if (newContainer === undefined) throw new EngineError('KLN0712', 'this kiln cannot start containers for --invoke');
  const target = held.failed !== undefined ? failedTarget(engine, held.failed) : held.output !== undefined ? resultTarget(held.output.ref, held.output.config, held.output.platform) : undefined;
  if (target === undefined) throw new EngineError('KLN0712', 'the build left nothing to --invoke');
  const args = spec.args ?? target.defaultArgs;
  const where = held.failed !== undefined
    ? 'the state the failed step left'
    : held.platforms === undefined || held.output === undefined
      ? 'the result'
      : `the ${formatPlatform(held.output.platform)} result (of ${held.platforms.join(', ')})`;
  io.stderr.write(`kiln: --invoke: running ${JSON.stringify(args.join(' '))} in ${where}; it ends with the command (Ctrl-D ends a shell)\n`);
  // Interrupts count from here (kiln must not die with a container set up): SIGHUP (a closed
  // terminal, a daemon client gone) ends the container at any time; SIGINT/SIGTERM stop the
  // invoke while its container is made, and go to the command once it is being started (held
  // until it runs: its output may already be out).
  let container: Container | undefined;
  let starting = false;
  let running: ContainerProcess | undefined;
  const pending: string[] = [];
  let stopped: string | undefined;
  // kiln's own stdout or stderr failed: the command is ended with its container, and kiln reports why.
  let lostOutput: unknown;
  const lose = (e: unknown): void => {
    if (lostOutput !== undefined) return;
    lostOutput = e;
    void container?.release().catch(() => undefined);
  };
  const off = io.interrupts.on((sig) => {
    if (sig === 'SIGHUP' || !starting) {
      stopped ??= sig;
      void container?.release().catch(() => undefined);
    } else if (running === undefined) pending.push(sig);
    else void running.signal(sig).catch(() => undefined);
  });
  const interrupted = (sig: string): EngineError => new EngineError('KLN0705', `interrupted (${sig})`);
  try {
    container = await newContainer({
      mounts: target.mounts,
      network: target.network,
      ...(target.hostname === undefined ? {} : { hostname: target.hostname }),
      extraHosts: target.extraHosts,
      // Another platform's stage: its programs are emulated (or refused) as its RUN steps were.
      ...(target.platform === undefined ? {} : { platform: target.platform }),
    });
    if (stopped !== undefined) throw interrupted(stopped);
    const term = io.terminal;
    const proc: ContainerProcessRequest = {
      args,
      env: target.env,
      // A failed RUN's env= secrets, set again from this build's --secret as its secret mounts are.
      ...(target.secretEnv.length === 0 ? {} : { secretEnv: target.secretEnv }),
      cwd: target.cwd,
      ...(target.user === '' ? {} : { user: target.user }),
      // A failed RUN --security=insecure: its shell has what the step had (buildx passes exec.Security).
      ...(target.security === 'insecure' ? { security: 'insecure' as const } : {}),
      stdin: io.stdin,
      stdout: outputTo(io.stdout, lose),
      stderr: outputTo(io.stderr, lose),
      // On a terminal, keys (Ctrl-C included) go to the process's own terminal as typed.
      ...(term === undefined ? {} : { tty: true, ttySize: term.size() }),
    };
    term?.setRaw(true);
    let offResize: (() => void) | undefined;
    try {
      starting = true;
      const p = await container.start(proc).catch((e: unknown) => {
        throw stopped === undefined ? e : interrupted(stopped);
      });
      if (stopped !== undefined) {
        // Hung up while it started: it is killed with the container.
        await container.release();
        throw interrupted(stopped);
      }
      running = p;
      for (const sig of pending.splice(0)) void p.signal(sig).catch(() => undefined);
      if (term !== undefined) offResize = term.onResize(() => void p.resize(term.size()).catch(() => undefined));
      const code = await p.wait();
      if (lostOutput !== undefined) throw lostOutput;
      // Hung up: killed with its container, kiln reports that rather than the kill's status.
      if (stopped !== undefined) throw interrupted(stopped);
      return code;
    } finally {
      offResize?.();
      // A terminal that hung up cannot be set back (EIO): nothing to restore then.
      try {
        term?.setRaw(false);
      } catch {
        // gone
      }
    }
  } finally {
    off();
    await container?.release();
    for (const r of target.refs) await r.release();
  }
}

/** Where and how the invoked command runs. */
interface InvokeTarget {
  readonly mounts: readonly BackendContainerMount[];
  readonly env: readonly string[];
  readonly secretEnv: NonNullable<ContainerProcessRequest['secretEnv']>;
  readonly cwd: string;
  readonly user: string;
  readonly network: 'sandbox' | 'none' | 'host';
  readonly security: 'sandbox' | 'insecure';
  readonly hostname?: string;
  readonly extraHosts: readonly { readonly host: string; readonly ip: string }[];
  readonly platform?: Platform;
  readonly defaultArgs: readonly string[];
  /** Refs made here for the failed state's snapshots (released with the container). */
  readonly refs: readonly SnapshotRef[];
}

/** The image config fields a container of the result takes (OCI image config `config`). */
interface ImageRunConfig {
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
  readonly User?: string;
  readonly Entrypoint?: readonly string[] | null;
  readonly Cmd?: readonly string[] | null;
}

/** The result's root, writable with a throw-away layer, run as its image config says. */
function resultTarget(ref: SnapshotRef, config: Uint8Array | undefined, platform: Platform): InvokeTarget {
  let c: ImageRunConfig = {};
  if (config !== undefined) {
    try {
      c = ((JSON.parse(new TextDecoder().decode(config)) as { config?: ImageRunConfig }).config ?? {}) as ImageRunConfig;
    } catch {
      // raw LLB results carry no config: the defaults below
    }
  }
  const entry = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  return {
    mounts: [{ dest: '/', ref }],
    env: c.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    secretEnv: [],
    cwd: c.WorkingDir === undefined || c.WorkingDir === '' ? '/' : c.WorkingDir,
    user: c.User ?? '',
    network: 'sandbox',
    security: 'sandbox',
    extraHosts: [],
    platform,
    defaultArgs: entry.length > 0 ? entry : ['/bin/sh'],
    refs: [],
  };
}

/** A failed RUN's mounts (each snapshot writable on a throw-away layer as it was), env (its env= secrets by id), dir and user. */
function failedTarget(engine: KilnEngine, st: FailedExecState): InvokeTarget {
  const refs: SnapshotRef[] = [];
  const mounts: BackendContainerMount[] = st.mounts.map((m) => {
    switch (m.kind) {
      case 'snapshot': {
        const ref = new SnapshotRef(engine.snapshotter, m.snapshot, () => undefined);
        refs.push(ref);
        return { dest: m.dest, ref, ...(m.selector === '' ? {} : { selector: m.selector }), readonly: m.readonly };
      }
      case 'cache':
        return { dest: m.dest, type: 'cache', cacheId: m.cacheId, cacheSharing: m.sharing, readonly: m.readonly };
      case 'tmpfs':
        return { dest: m.dest, type: 'tmpfs' };
      // By id: the values come from this build's --secret / --ssh again.
      case 'secret':
        return { dest: m.dest, type: 'secret', secretId: m.secretId, ...(m.mode === undefined ? {} : { mode: m.mode }) };
      case 'ssh':
        return { dest: m.dest, type: 'ssh', sshId: m.sshId, ...(m.mode === undefined ? {} : { mode: m.mode }) };
    }
  });
  return {
    mounts,
    env: st.process.env,
    secretEnv: st.process.secretEnv.map((se) => ({ name: se.name, id: se.secretId, optional: se.optional })),
    cwd: st.process.cwd,
    user: st.process.user,
    network: st.network,
    security: st.security,
    ...(st.hostname === undefined ? {} : { hostname: st.hostname }),
    extraHosts: st.extraHosts,
    ...(st.platform?.os && st.platform.architecture ? { platform: { os: st.platform.os, architecture: st.platform.architecture, ...(st.platform.variant ? { variant: st.platform.variant } : {}) } } : {}),
    defaultArgs: FAILED_DEFAULT,
    refs,
  };
}
