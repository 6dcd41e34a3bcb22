import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { WorkerError } from '../api/errors.js';
import type { ContainerProcessSpec, ContainerRequest, ExecContainer, ExecProcess, ExecRequest } from '../api/executor.js';
import type { RootView, Stub } from './root-view.js';
import { spawnOnPty, startSize, type PtyProcess, type TerminalSize } from './pty-relay.js';
import { childExit } from './child-exit.js';
import { onKilnGone } from './process-helper.js';
import { processSpec, specJson } from './spec.js';
import { resolveUser } from './user.js';
import { rootlessProcessIds, usernsState } from '../userns/index.js';

const execFileP = promisify(execFile);

/** An undo step of a container's set-up (unmount a secret tmpfs, stop an ssh proxy). */
export type Cleanup = () => Promise<void>;

/** A container's config as the executor put it together for its init process. */
export interface Configured {
  readonly spec: Record<string, unknown>;
  /** The root as the container sees it (user lookups, mount stubs). */
  readonly view: RootView;
  /** Mount points runc will create in a writable root: removed once the container is gone. */
  readonly stubs: readonly Stub[];
}

/** What a {@link RuncContainer} needs of the executor that made it. */
export interface ContainerHost {
  /** Container id (`kiln-<pid>-<hex>`, so `recover()` cleans it up after a crash) and bundle dir. */
  readonly id: string;
  readonly bundle: string;
  /** On-disk scratch dir of throw-away layers (`<root>/executor/<id>`). */
  readonly scratch: string;
  readonly runc: string;
  /** `runc --root`. */
  readonly state: string;
  /** The executor's config of a run (root layout, user, mounts, spec); undo steps go to `cleanups`. */
  /** `terminal`: the size of the process's pseudo-terminal; none without. */
  configure(req: ExecRequest, cleanups: Cleanup[], terminal: TerminalSize | undefined): Promise<Configured>;
  /** The capabilities `insecure` grants. */
  insecureCapabilities(): Promise<readonly string[]>;
  /** The error message runc logged at `log`, if any. */
  runcError(log: string): Promise<string | undefined>;
  /** The error of a missing runc binary. */
  missing(): WorkerError;
}

/** How often a starting process's pid file is looked for. */
const PID_POLL_MS = 5;

/**
 * EXEC_FAILED for a process runc could not start: runc's own words (they mostly start with
 * `runc run failed`, so not prefixed twice), with a hint for the usual reasons.
 */
export function runcFailure(why: string): WorkerError {
  const message = /^runc\b/.test(why) ? why : `runc: ${why}`;
  const hint = execHint(why);
  return new WorkerError('EXEC_FAILED', message, hint === undefined ? {} : { hint });
}

function execHint(why: string): string | undefined {
  const exec = /exec: "([^"]*)": (.*)$/.exec(why);
  if (exec === null) return undefined;
  const [, cmd = '', reason = ''] = exec;
  if (reason.includes('executable file not found')) return `${cmd} is not on the container's PATH: give its full path, or install it in an earlier step`;
  if (reason.endsWith('no such file or directory')) {
    return cmd.includes('/') ? `the container has no ${cmd}: check the path, or create it in an earlier step` : undefined;
  }
  if (reason.endsWith('permission denied')) return `${cmd} is not executable in the container: chmod +x it in an earlier step (COPY --chmod=755)`;
  return undefined;
}

/**
 * A long-lived runc container (see {@link ExecContainer}): the first start is `runc run` (BuildKit's
 * Executor.Run), later ones `runc exec --process` (Executor.Exec). Every process is a runc started
 * with pipes on fds 0-2 (runc copies them to the container's own pipes byte for byte) and
 * `--pid-file`, which runc writes once the process runs: a start resolves then. Signals go to the
 * init with `runc kill`, to an exec'd process by its pid. A `tty` process's runc runs in the
 * foreground on a terminal of the pty relay ({@link spawnOnPty}), which copies it to pipes. Not the
 * step fast path (no pre-started runc, no process helper): a container's processes are few and long.
 */
export class RuncContainer implements ExecContainer {
  readonly id: string;
  readonly #host: ContainerHost;
  readonly #req: ContainerRequest;
  readonly #cleanups: Cleanup[] = [];
  readonly #procs = new Set<RuncProcess>();
  /** Processes whose output is still being delivered (an exited one's may wait on its consumer). */
  readonly #delivering = new Set<RuncProcess>();
  #configured: Configured | undefined;
  #init: Promise<RuncProcess> | undefined;
  #released: Promise<void> | undefined;
  #execs = 0;

  constructor(req: ContainerRequest, host: ContainerHost) {
    this.id = host.id;
    this.#req = req;
    this.#host = host;
  }

  async start(p: ContainerProcessSpec): Promise<ExecProcess> {
    if (this.#released !== undefined) throw new WorkerError('CONTAINER_EXITED', `container ${this.id} was released`);
    if (p.args.length === 0) throw new WorkerError('EXEC_FAILED', 'a container process needs args');
    if (this.#init === undefined) {
      this.#init = this.#startInit(p);
      return this.#init;
    }
    const init = await this.#init.catch(() => undefined);
    if (init === undefined || init.exited || this.#released !== undefined) {
      const why = init === undefined ? 'its init process did not start' : 'its init process has exited';
      throw new WorkerError('CONTAINER_EXITED', `container ${this.id} is gone: ${why}`, {
        hint: 'start processes while the first one (the init) runs; make a new container to run more',
      });
    }
    return this.#exec(p);
  }

  release(): Promise<void> {
    this.#released ??= this.#release();
    return this.#released;
  }

  async #startInit(p: ContainerProcessSpec): Promise<RuncProcess> {
    const { bundle, id } = this.#host;
    mkdirSync(bundle, { recursive: true, mode: 0o711 });
    const r = this.#req;
    this.#configured = await this.#host.configure(
      {
        rootfs: r.rootfs,
        ...(r.readonlyRootfs === undefined ? {} : { readonlyRootfs: r.readonlyRootfs }),
        process: { args: p.args, env: p.env, ...(p.cwd === undefined ? {} : { cwd: p.cwd }), ...(p.user === undefined ? {} : { user: p.user }) },
        ...(r.mounts === undefined ? {} : { mounts: r.mounts }),
        ...(r.network === undefined ? {} : { network: r.network }),
        ...(p.security === undefined ? {} : { security: p.security }),
        ...(r.hostname === undefined ? {} : { hostname: r.hostname }),
        ...(r.extraHosts === undefined ? {} : { extraHosts: r.extraHosts }),
        ...(r.cgroupParent === undefined ? {} : { cgroupParent: r.cgroupParent }),
      },
      this.#cleanups,
      terminalSize(p),
    );
    this.#gone();
    // The spec holds the process environment: root-only.
    writeFileSync(join(bundle, 'config.json'), specJson(this.#configured.spec), { mode: 0o600 });
    const files = { log: join(bundle, 'init.log'), pid: join(bundle, 'init.pid') };
    const args = ['run', '--pid-file', files.pid, '--bundle', bundle, id];
    // Started from Node, not by the process helper: still, if this kiln is killed, the helper
    // stops the container (runc alone would leave it running, for nobody).
    const drop = onKilnGone([this.#host.runc, '--root', this.#host.state, 'kill', id, 'KILL']);
    if (drop !== undefined) this.#cleanups.push(async () => drop());
    return this.#spawn(args, files, p, undefined, (sig) => this.#runcKill(sig));
  }

  async #exec(p: ContainerProcessSpec): Promise<RuncProcess> {
    const configured = this.#configured;
    if (configured === undefined) throw new WorkerError('CONTAINER_EXITED', `container ${this.id} has no init process`);
    const n = ++this.#execs;
    const resolved = await resolveUser(async (path) => configured.view.readFile(path), p.user);
    // Rootless kiln: only the ids of its user namespace exist (as in RuncExecutor's #configure).
    const ns = usernsState();
    const user = ns === undefined ? resolved : rootlessProcessIds(resolved, ns, p.user);
    const security = p.security ?? 'sandbox';
    const spec = processSpec({
      args: p.args,
      env: p.env,
      cwd: posix.normalize(`/${p.cwd ?? '/'}`),
      user,
      security,
      insecureCapabilities: security === 'insecure' ? await this.#host.insecureCapabilities() : [],
      ...(p.tty === true ? { terminal: startSize(p.ttySize) } : {}),
    });
    this.#gone();
    const { bundle, id } = this.#host;
    const files = { log: join(bundle, `exec-${n}.log`), pid: join(bundle, `exec-${n}.pid`) };
    const processFile = join(bundle, `exec-${n}.json`);
    writeFileSync(processFile, specJson(spec), { mode: 0o600 });
    const args = ['exec', '--process', processFile, '--pid-file', files.pid, id];
    // A tty exec whose container dies while it starts may wait for its terminal for ever (see
    // pty-relay.ts): given up on once the init is gone.
    const init = await this.#init;
    const initGone = p.tty === true && init !== undefined ? () => init.exited || processExiting(init.pid) : undefined;
    return this.#spawn(args, files, p, initGone, (sig, pid) => {
      try {
        process.kill(pid, sig);
      } catch {
        // exited meanwhile
      }
      return Promise.resolve();
    });
  }

  /** Throws when the container was released while a start was being set up. */
  #gone(): void {
    if (this.#released !== undefined) throw new WorkerError('CONTAINER_EXITED', `container ${this.id} was released`);
  }

  async #spawn(
    command: readonly string[],
    files: { readonly log: string; readonly pid: string },
    p: ContainerProcessSpec,
    initGone: (() => boolean) | undefined,
    kill: (signal: NodeJS.Signals, pid: number) => Promise<void>,
  ): Promise<RuncProcess> {
    const h = this.#host;
    const args = ['--root', h.state, '--log', files.log, '--log-format', 'json', ...command];
    // A terminal: runc in the foreground on a pty of the relay's, which copies it to pipes.
    const pty = p.tty === true ? spawnOnPty(h.runc, args, p.ttySize) : undefined;
    // Its own process group: kiln stops containers on Ctrl-C itself (as the executor's runs).
    const child = pty?.child ?? spawn(h.runc, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const proc = new RuncProcess(child, p, kill, () => (pty === undefined ? h.missing() : ptyMissing()), pty);
    this.#procs.add(proc);
    this.#delivering.add(proc);
    void proc.exit.finally(() => this.#procs.delete(proc)).catch(() => undefined);
    void proc.delivered.then(() => this.#delivering.delete(proc));
    // What runc printed before the process ran is its own failure, which the error below carries:
    // passed through too, `--invoke /missing` printed it twice. Kept back until then (a few ms).
    let told = false;
    try {
      const pid = await proc.started(files.pid, initGone);
      if (pid !== undefined) return proc;
      const code = await proc.exit;
      if (proc.abandoned) throw new WorkerError('CONTAINER_EXITED', `container ${this.id} is gone: its init process has exited`);
      const why = (await h.runcError(files.log)) ?? proc.relayError();
      // An exec that lost the race with the init's exit (runc: cannot exec in a stopped container).
      const init = command[0] === 'exec' ? await this.#init?.catch(() => undefined) : undefined;
      if (init?.exited === true) throw new WorkerError('CONTAINER_EXITED', `container ${this.id} is gone: its init process has exited`);
      told = why !== undefined;
      throw runcFailure(why ?? `exited with status ${code} before the process started`);
    } finally {
      proc.startSettled(told);
    }
  }

  async #runcKill(signal: string): Promise<void> {
    const h = this.#host;
    await execFileP(h.runc, ['--root', h.state, 'kill', h.id, signal]).catch(() => undefined);
  }

  async #release(): Promise<void> {
    const h = this.#host;
    const init = await this.#init?.catch(() => undefined);
    if (init !== undefined && !init.exited) await this.#runcKill('KILL');
    // The init's death kills every process of the container's pid namespace; the exec'd ones'
    // runc processes then exit too. Killed by pid as well: runc kill may have lost a race.
    for (const proc of this.#procs) proc.kill();
    // Exited ones too: what they left in the pipe no longer waits for a stuck consumer.
    for (const proc of this.#delivering) proc.unpace();
    await Promise.all([...this.#procs].map((proc) => proc.exit.catch(() => undefined)));
    await execFileP(h.runc, ['--root', h.state, 'delete', '-f', h.id]).catch(() => undefined);
    for (const c of this.#cleanups.splice(0).reverse()) await c().catch(() => undefined);
    const configured = this.#configured;
    if (configured !== undefined && configured.stubs.length > 0) configured.view.removeStubs(configured.stubs);
    rmSync(h.bundle, { recursive: true, force: true });
    rmSync(h.scratch, { recursive: true, force: true });
    rmSync(join(h.state, h.id), { recursive: true, force: true });
  }
}

/** One runc (run or exec) and the container process it stands for. */
class RuncProcess implements ExecProcess {
  /** runc's exit status: the process's (128+n when killed by signal n), or runc's own failure. */
  readonly exit: Promise<number>;
  exited = false;
  /** Its start was given up on (see {@link started}). */
  abandoned = false;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #output: Promise<void>;
  readonly #kill: (signal: NodeJS.Signals, pid: number) => Promise<void>;
  readonly #pty: PtyProcess | undefined;
  #relayErr = '';
  /** Output that came before the process was known to run; undefined once that is settled. */
  #early: Array<() => void> | undefined = [];
  #dropEarly = false;
  #pid: number | undefined;
  #unpaced = false;
  #unpace: () => void = () => undefined;
  readonly #unpacedAt = new Promise<void>((resolve) => (this.#unpace = resolve));

  constructor(
    child: ChildProcessWithoutNullStreams,
    p: ContainerProcessSpec,
    kill: (signal: NodeJS.Signals, pid: number) => Promise<void>,
    missing: () => WorkerError,
    pty: PtyProcess | undefined,
  ) {
    this.#child = child;
    this.#kill = kill;
    this.#pty = pty;
    this.exit = childExit(child, missing);
    this.exit.then(
      () => (this.exited = true),
      () => (this.exited = true),
    );
    // The relay's own errors (a terminal it could not open) explain a start that failed.
    const toStderr = this.#untilStarted(p.stderr);
    const stderr = pty === undefined ? toStderr : (chunk: Uint8Array): void | Promise<void> => {
      if (this.#relayErr.length < 4096) this.#relayErr += Buffer.from(chunk).toString();
      return toStderr?.(chunk);
    };
    this.#output = Promise.all([this.#deliver(child.stdout, this.#untilStarted(p.stdout)), this.#deliver(child.stderr, stderr)]).then(() => undefined);
    // The process may exit (or never read) while input is pending: EPIPE is not an error here.
    child.stdin.on('error', () => undefined);
    void this.#feed(p.stdin);
  }

  /**
   * Hands `stream`'s chunks to `to` until it ends, one at a time: while a promise `to` returned is
   * pending the stream is paused, Node stops reading the pipe once its buffer is full, and the
   * process (or the pty relay) blocks in its write, as BuildKit's io.Copy into a slow writer does.
   * A chunk that comes anyway (Node resumes a child's stdio when the child exits) waits in a
   * queue (what was left in the pipe) and pauses the stream again. A throw or rejection is the
   * caller's own affair (it must not end kiln as an exception in a stream event would): the chunk
   * is dropped and output goes on. Resolves once the stream ended and the last promise settled.
   * After {@link unpace} promises are no longer waited for.
   */
  #deliver(stream: Readable, to: ((chunk: Uint8Array) => void | Promise<void>) | undefined): Promise<void> {
    return new Promise((resolve) => {
      const queue: Buffer[] = [];
      let ended = false;
      let waiting = false;
      const pump = (): void => {
        for (let chunk = queue.shift(); chunk !== undefined; chunk = queue.shift()) {
          let r: unknown;
          try {
            r = to?.(chunk);
          } catch {
            continue;
          }
          if (!isThenable(r)) continue;
          // Settled later either way; a rejection must not be unhandled.
          const done = Promise.resolve(r).then(() => undefined, () => undefined);
          if (this.#unpaced) continue;
          waiting = true;
          stream.pause();
          void Promise.race([done, this.#unpacedAt]).then(() => {
            waiting = false;
            pump();
          });
          return;
        }
        if (ended) resolve();
        else if (!stream.destroyed) stream.resume();
      };
      stream.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        if (waiting) stream.pause();
        else pump();
      });
      const end = (): void => {
        ended = true;
        if (!waiting && queue.length === 0) resolve();
      };
      stream.once('end', end);
      stream.once('error', end);
    });
  }

  /**
   * `to`, but a chunk that comes before {@link startSettled} waits for it (its stream paused
   * meanwhile), then goes on; when the start failed with runc's own message, every chunk is dropped.
   */
  #untilStarted(to: ((chunk: Uint8Array) => void | Promise<void>) | undefined): ((chunk: Uint8Array) => void | Promise<void>) | undefined {
    if (to === undefined) return undefined;
    return (chunk) => {
      // A process that never started wrote nothing: what comes after its failure is runc's too
      // (a terminal relay hands its pty's output on after runc exited).
      if (this.#dropEarly) return;
      const early = this.#early;
      if (early === undefined) return to(chunk);
      return new Promise<void>((resolve) => {
        early.push(() => {
          if (this.#dropEarly) return resolve();
          // A throw is the caller's affair (as in #deliver): the chunk is dropped.
          try {
            void Promise.resolve(to(chunk)).then(() => resolve(), () => resolve());
          } catch {
            resolve();
          }
        });
      });
    };
  }

  /** The start is settled: output held back goes on, or is dropped (`drop`: the error says it all). */
  startSettled(drop: boolean): void {
    const early = this.#early;
    if (early === undefined) return;
    this.#early = undefined;
    this.#dropEarly = drop;
    for (const go of early) go();
  }

  /**
   * Stops waiting for the caller's output promises (release: the process is being killed, and a
   * tty relay flushing its last output would otherwise never exit for a consumer that is stuck).
   */
  unpace(): void {
    this.#unpaced = true;
    this.#unpace();
  }

  /**
   * Copies `stdin` to runc's fd 0 (runc copies it on and closes the process's fd 0 at its end).
   * Once the process has exited its iterator is returned, as a `for await` loop's `break` does,
   * so a caller's stream (a terminal) is not read on for a process that is gone.
   */
  async #feed(stdin: AsyncIterable<Uint8Array> | undefined): Promise<void> {
    const sink = this.#child.stdin;
    if (stdin === undefined) {
      sink.end();
      return;
    }
    const ended = this.exit.then(
      () => undefined,
      () => undefined,
    );
    const it = stdin[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await Promise.race([it.next(), ended]);
        if (next === undefined || this.exited || sink.destroyed) {
          // Not awaited: a generator still inside a pending next() runs its return after it.
          void (async () => it.return?.())().catch(() => undefined);
          return;
        }
        if (next.done === true) break;
        if (!sink.write(next.value)) await Promise.race([new Promise((r) => sink.once('drain', r)), ended]);
      }
      sink.end();
    } catch {
      sink.destroy();
    }
  }

  /**
   * The pid once runc has written `pidFile` (the process runs), or undefined when runc exited
   * first. Once `abandon` says so, a tty process's runc is stopped (it is {@link abandoned}).
   */
  async started(pidFile: string, abandon?: () => boolean): Promise<number | undefined> {
    for (;;) {
      let text: string | undefined;
      try {
        text = readFileSync(pidFile, 'utf8');
      } catch {
        // not written yet
      }
      if (text !== undefined && /^\d+$/.test(text.trim())) {
        this.#pid = Number(text.trim());
        return this.#pid;
      }
      if (this.exited) return undefined;
      if (!this.abandoned && this.#pty !== undefined && abandon?.() === true) {
        this.abandoned = true;
        this.#pty.stop();
      }
      await Promise.race([new Promise((r) => setTimeout(r, PID_POLL_MS)), this.exit.catch(() => undefined)]);
    }
  }

  /** Settles once the output has all been handed over (and the last promise settled, unless unpaced). */
  get delivered(): Promise<void> {
    return this.#output;
  }

  async wait(): Promise<number> {
    const code = await this.exit;
    await this.#output;
    return code;
  }

  async signal(name: string): Promise<void> {
    const sig = signalName(name);
    if (this.exited || this.#pid === undefined) return;
    await this.#kill(sig, this.#pid);
  }

  /** What the pty relay wrote to its stderr before it failed, if anything. */
  relayError(): string | undefined {
    const text = this.#relayErr.trim();
    return text === '' ? undefined : text;
  }

  async resize(size: TerminalSize): Promise<void> {
    if (!this.exited) this.#pty?.resize(size);
  }

  /**
   * SIGKILLs the process by pid, if it still runs (its runc then exits with it), and a tty
   * process's runc through its relay: one still starting has no pid yet, and may never exit by
   * itself (see pty-relay.ts).
   */
  kill(): void {
    if (this.exited) return;
    if (this.#pid !== undefined) {
      try {
        process.kill(this.#pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#pty?.stop();
  }

  /** The pid runc reported (the container process's, as the host sees it), once started. */
  get pid(): number | undefined {
    return this.#pid;
  }
}

/** PF_EXITING in /proc/<pid>/stat's flags. */
const PF_EXITING = 0x4;

/**
 * Whether process `pid` is gone or exiting (a container's init being torn down with its pid
 * namespace: the last thread, PF_EXITING). Undefined pid: not known yet, so not gone.
 */
function processExiting(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return true;
  }
  // Fields after the command name (which may hold spaces): state is field 3, flags 9, num_threads 20.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[6]) & PF_EXITING) !== 0 && Number(f[17]) <= 1;
}

/** `SIGTERM`, `TERM` or `15` as Node's signal name; UNSUPPORTED for anything else. */
function signalName(name: string): NodeJS.Signals {
  const upper = name.trim().toUpperCase();
  const signals = constants.signals as Readonly<Record<string, number>>;
  if (/^\d+$/.test(upper)) {
    const found = Object.keys(signals).find((k) => signals[k] === Number(upper));
    if (found !== undefined) return found as NodeJS.Signals;
  }
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (signals[full] !== undefined) return full as NodeJS.Signals;
  throw new WorkerError('UNSUPPORTED', `unknown signal ${JSON.stringify(name)}`, { hint: 'use a signal name such as SIGTERM, SIGINT, SIGKILL or SIGHUP' });
}

/** The size `p`'s terminal is made with (the relay's and the container's alike); none without `tty`. */
function terminalSize(p: ContainerProcessSpec): TerminalSize | undefined {
  return p.tty === true ? startSize(p.ttySize) : undefined;
}

/** The error of a missing perl (the terminal relay). */
function ptyMissing(): WorkerError {
  return new WorkerError('PREREQUISITE_MISSING', 'perl not found: a container process with a terminal needs it', { hint: 'apt-get install perl-base' });
}

/** Whether `value` is a promise (or any thenable) an output callback returned. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
