import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { RegistryHostOptions } from '@kiln/runtime';
import { callerPath, type CliIo, type Interrupts } from '../io.js';
import { configDigest, configLocation } from '../engine/config.js';
import { kilnRoot } from '../engine/cli-support.js';
import { KilnEngine } from '../engine/engine.js';
import { EngineError } from '../engine/errors.js';
import { makeDirs } from '../engine/make-dirs.js';
import { rootlessSocketDir } from '../userns/socket-dir.js';
import type { EngineSource } from '../engine/lease.js';
import { DaemonGc } from '../engine/auto-gc.js';
import type { GcPolicy } from '../engine/gc-policy.js';
import { commandOf, configFlagOf, DAEMON_COMMANDS, ROOTLESS_COMMANDS, Frame, FrameReader, frame, PROTOCOL_VERSION, rootFlagOf, type Hello } from './protocol.js';

/** Options of {@link KilnDaemon.listen}. */
export interface DaemonOptions {
  /** The kiln root this daemon serves (absolute). */
  readonly root: string;
  /** The unix socket to listen on. */
  readonly socket: string;
  /** Runs one command line (the CLI's `main`); injected to keep this module free of the command table. */
  readonly run: (argv: readonly string[], io: CliIo) => Promise<number>;
  /** One line per served command and lifecycle event. */
  readonly log?: (line: string) => void;
  /** The automatic GC after each build command (absent: none), run once its client has the answer. */
  readonly gc?: GcPolicy;
  /** The config file's registry settings, for the engine's registry client. */
  readonly hosts?: Readonly<Record<string, RegistryHostOptions>>;
  /** The digest of the config file the daemon read ('' for none): clients with another one run in-process. */
  readonly configDigest?: string;
}

/** Commands after which the daemon's automatic GC runs. */
const BUILD_COMMANDS: ReadonlySet<string> = new Set(['build', 'bake', 'solve']);

/**
 * `kiln daemon`: one long-lived process per kiln root that runs `kiln build`, `solve`, `du` and
 * `prune` for clients on a unix socket, as buildkitd serves buildctl. It keeps the engine (stores,
 * cache database, snapshotter) open and the code warm between commands. Each command runs with
 * its client's working directory, environment, terminal and Ctrl-C; the socket is mode 0600, so
 * only the daemon's own user can use it.
 */
export class KilnDaemon {
  readonly #opts: DaemonOptions;
  readonly #server: Server;
  readonly #engine: KilnEngine;
  readonly #running = new Set<Promise<void>>();
  readonly #interrupts = new Set<(sig: string) => void>();
  readonly #gc: DaemonGc | undefined;

  private constructor(opts: DaemonOptions, server: Server, engine: KilnEngine) {
    this.#opts = opts;
    this.#server = server;
    this.#engine = engine;
    this.#gc = opts.gc === undefined ? undefined : new DaemonGc(opts.gc, opts.log);
  }

  /** Opens the root's engine and starts listening; refuses if a daemon already answers on the socket. */
  static async listen(opts: DaemonOptions): Promise<KilnDaemon> {
    if (await answers(opts.socket)) {
      throw new EngineError('KLN0709', `a kiln daemon already listens on ${opts.socket}`, { hint: 'stop it first, or pass --addr unix:///other/path' });
    }
    // one level at a time: a recursive mkdir never returns under /proc (--addr /proc/x/kilnd.sock hung)
    await makeDirs(dirname(opts.socket), (why, cause) => new EngineError('KLN0709', `cannot listen on ${opts.socket}: ${why}`, { hint: 'give --addr (or KILN_HOST) a socket path in a directory you can write', ...(cause === undefined ? {} : { cause }) }), 0o700);
    await checkSocketDir(dirname(opts.socket));
    await removeStaleSocket(opts.socket);
    const engine = await KilnEngine.open({ root: opts.root, ...(opts.hosts === undefined ? {} : { registry: { hosts: opts.hosts } }) });
    const server = createServer();
    const daemon = new KilnDaemon(opts, server, engine);
    server.on('connection', (socket) => daemon.#serve(socket));
    // The socket is created 0600 (umask), not chmod-ed after: no moment where others can connect.
    const umask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.socket, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    await chmod(opts.socket, 0o600);
    return daemon;
  }

  /** Stops accepting clients, interrupts running commands, waits for them and closes the engine. */
  async close(): Promise<void> {
    // server.close() calls back only once every connection ended: interrupt the builds first.
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // The builds interrupted now start no GC pass (one already running finishes below).
    this.#gc?.stop();
    for (const l of [...this.#interrupts]) l('SIGTERM');
    await Promise.allSettled([...this.#running]);
    await this.#gc?.idle();
    await closed;
    // A cache mount's size still being measured is recorded first.
    await this.#engine.closeWhenSettled();
    await unlink(this.#opts.socket).catch(() => undefined);
  }

  #serve(socket: Socket): void {
    socket.on('error', () => undefined);
    let request: ClientRequest | undefined;
    const reader = new FrameReader((kind, payload) => {
      if (request === undefined) {
        if (kind !== Frame.Hello) return void socket.destroy();
        request = new ClientRequest(socket);
        try {
          this.#start(request, payload);
        } catch {
          // A malformed hello must not take down the daemon and every other client's build.
          request.decline('bad hello');
        }
      } else {
        request.onFrame(kind, payload);
      }
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.once('close', () => request?.disconnected());
  }

  #start(req: ClientRequest, payload: Buffer): void {
    let hello: Hello;
    try {
      hello = JSON.parse(payload.toString('utf8')) as Hello;
    } catch {
      return req.decline('bad hello');
    }
    if (!isHello(hello)) return req.decline('bad hello');
    const command = commandOf(hello.argv);
    if (command === undefined || !DAEMON_COMMANDS.has(command)) return req.decline(`command ${command ?? '(none)'}`);
    const io = req.io(hello, this.#interrupts, this.#engines());
    // A command for another root runs in the client's own process, against that root.
    if (!ROOTLESS_COMMANDS.has(command) && kilnRoot(rootFlagOf(hello.argv), io).path !== this.#opts.root) return req.decline('another root');
    // So does a command under another config file (or an edited one: the daemon read its own at
    // start, as buildkitd does), so that it gets that file's registries and GC.
    if (command !== 'dump-llb' && clientConfigDigest(hello, io) !== (this.#opts.configDigest ?? '')) return req.decline('another config');
    const t0 = performance.now();
    const client = `client pid ${Number.isInteger(hello.pid) ? String(hello.pid) : '?'}`;
    // Not `<command>: client pid …`: that form is the line of a command that has ended.
    this.#opts.log?.(`started ${command} for ${client}`);
    const run = this.#opts
      .run(hello.argv, io)
      .catch(() => 1)
      .then((code) => {
        req.exit(code);
        // Only the command name: arguments can carry values (build args) that must not reach a log.
        this.#opts.log?.(`${command}: ${client} → exit ${code} in ${Math.round(performance.now() - t0)} ms`);
        if (BUILD_COMMANDS.has(command)) this.#gc?.afterBuild(this.#engine);
      })
      .finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  #engines(): EngineSource {
    const engine = this.#engine;
    const root = this.#opts.root;
    return {
      open: async (opts) => {
        if (opts.root !== root) throw new EngineError('KLN0709', `this kiln daemon serves ${root}, not ${opts.root}`, { hint: 'pass --root once, or use KILN_DAEMON=0' });
        return engine;
      },
      keepsOpen: true,
    };
  }
}

/** The digest of the config file a client's command would read (`--config`, `KILN_CONFIG`, the default). */
function clientConfigDigest(hello: Hello, io: CliIo): string {
  const flag = configFlagOf(hello.argv);
  return configDigest(flag === undefined ? configLocation(io) : { path: callerPath(io, flag), explicit: true });
}

/** A hello of this protocol version with the fields the daemon reads. */
function isHello(h: unknown): h is Hello {
  if (typeof h !== 'object' || h === null) return false;
  const o = h as Record<string, unknown>;
  return (
    o['version'] === PROTOCOL_VERSION &&
    Array.isArray(o['argv']) &&
    o['argv'].every((a) => typeof a === 'string') &&
    typeof o['cwd'] === 'string' &&
    typeof o['env'] === 'object' &&
    o['env'] !== null &&
    typeof o['stdout'] === 'object' &&
    typeof o['stderr'] === 'object'
  );
}

/**
 * The socket's directory must be the daemon user's and closed to others (or sticky, like /tmp):
 * otherwise another user could have made it to swap the socket and read clients' environments.
 */
async function checkSocketDir(dir: string): Promise<void> {
  const st = await lstat(dir);
  const uid = process.getuid?.() ?? 0;
  // Rootless kiln sees root's /tmp as owned by 65534: the launcher vouched for it, or KLN0891.
  const rootless = rootlessSocketDir(dir, st);
  if (rootless instanceof Error) throw rootless;
  const owner = rootless === 'root' ? 0 : st.uid;
  const open = (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0;
  if (!st.isDirectory() || (owner !== uid && owner !== 0) || open) {
    throw new EngineError('KLN0709', `unsafe directory for the daemon socket: ${dir} (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`, {
      hint: 'use a directory only you can write to (--addr unix:///run/user/UID/kilnd.sock)',
    });
  }
}

/**
 * Removes the socket a daemon that died left at `path`, and nothing else: `--addr` naming a file
 * or directory by mistake (`--addr kiln.toml`) is refused instead of deleting the file (it was
 * unlinked, as buildkitd does) or failing as "address already in use".
 */
export async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (st === undefined) return;
  if (!st.isSocket()) {
    const what = st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isFile() ? 'a regular file' : 'not a socket';
    throw new EngineError('KLN0709', `cannot listen on ${path}: it is ${what}, not a socket`, {
      hint: 'give --addr (or KILN_HOST) the path of the socket to create, e.g. unix:///run/kiln/kilnd.sock; only a stale socket there is replaced',
    });
  }
  await unlink(path).catch(() => undefined);
}

/** True when something accepts connections on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Client stdin the daemon holds for a command at most (about): past it, the client waits. */
const STDIN_HIGH = 8 * 1024 * 1024;
const STDIN_LOW = 1024 * 1024;

/**
 * One client connection: its streams, stdin on demand, interrupts and the exit frame. A signal
 * (or the client going away) that comes before the command listens for interrupts is kept and
 * delivered when it does, and ends a pending stdin read, so no Ctrl-C is lost.
 */
class ClientRequest {
  readonly #socket: Socket;
  readonly #stdin: Buffer[] = [];
  /** Bytes in #stdin; past STDIN_HIGH the socket is paused until the command took them down to STDIN_LOW. */
  #stdinBytes = 0;
  #paused = false;
  #stdinEnded = false;
  #stdinWanted = false;
  #wake: (() => void) | undefined;
  readonly #listeners = new Set<(sig: string) => void>();
  /** The first interrupt (signal name, or SIGHUP for a client that went away), once there was one. */
  #interrupted: string | undefined;
  #finished = false;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  io(hello: Hello, registry: Set<(sig: string) => void>, engines: EngineSource): CliIo {
    const write = (kind: number) => (chunk: string | Uint8Array): boolean => {
      if (this.#finished || this.#socket.destroyed) return false;
      return this.#socket.write(frame(kind, chunk));
    };
    const interrupts: Interrupts = {
      on: (listener) => {
        this.#listeners.add(listener);
        registry.add(listener);
        const late = this.#interrupted;
        if (late !== undefined) queueMicrotask(() => this.#listeners.has(listener) && listener(late));
        return () => {
          this.#listeners.delete(listener);
          registry.delete(listener);
        };
      },
      // A second Ctrl-C: the client exits 130 now; the command finishes cancelling here.
      giveUp: () => this.exit(130),
    };
    return {
      // isTTY as on a process's stdin: `kiln load` refuses to read the client's terminal.
      stdin: Object.assign(this.#stdinIterable(), { isTTY: hello.stdin?.isTTY === true }),
      // `once('drain')`: a command writing much to stdout (an archive) waits for the socket;
      // a client that went away releases it at once (its writes are dropped).
      stdout: { write: write(Frame.Stdout), isTTY: hello.stdout.isTTY, once: (event: string, listener: () => void) => this.#once(event, listener) } as CliIo['stdout'],
      stderr: { write: write(Frame.Stderr), ...hello.stderr } as CliIo['stderr'],
      cwd: hello.cwd,
      env: hello.env,
      interrupts,
      engines,
      remote: true,
    };
  }

  #once(event: string, listener: () => void): void {
    if (event !== 'drain') return;
    if (this.#finished || this.#socket.destroyed) return void queueMicrotask(listener);
    const done = (): void => {
      this.#socket.off('drain', done);
      this.#socket.off('close', done);
      listener();
    };
    this.#socket.once('drain', done);
    this.#socket.once('close', done);
  }

  async *#stdinIterable(): AsyncGenerator<Uint8Array> {
    if (!this.#stdinWanted) {
      this.#stdinWanted = true;
      this.#socket.write(frame(Frame.WantStdin));
    }
    for (;;) {
      // An interrupted or vanished client's input is not "complete": never hand on a truncated stdin.
      if (this.#interrupted !== undefined) throw new EngineError('KLN0705', `interrupted (${this.#interrupted}) while reading standard input`);
      const chunk = this.#stdin.shift();
      if (chunk !== undefined) {
        this.#stdinBytes -= chunk.length;
        if (this.#paused && this.#stdinBytes <= STDIN_LOW) this.#resume();
        yield chunk;
        continue;
      }
      if (this.#stdinEnded) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  onFrame(kind: number, payload: Buffer): void {
    if (kind === Frame.Stdin) {
      this.#stdin.push(payload);
      this.#stdinBytes += payload.length;
      // The client sends its stdin as fast as it reads it: a slower command (kiln load into a busy
      // disk) would otherwise hold the whole archive in the daemon's memory.
      if (!this.#paused && this.#stdinBytes > STDIN_HIGH) {
        this.#paused = true;
        this.#socket.pause();
      }
    } else if (kind === Frame.StdinEnd) this.#stdinEnded = true;
    else if (kind === Frame.Signal) this.#interrupt(payload.toString('utf8'));
    this.#wakeStdin();
  }

  #resume(): void {
    this.#paused = false;
    this.#socket.resume();
  }

  #interrupt(sig: string): void {
    this.#interrupted ??= sig;
    for (const l of [...this.#listeners]) l(sig);
  }

  #wakeStdin(): void {
    this.#wake?.();
    this.#wake = undefined;
  }

  /** The client went away: its command is interrupted as if by Ctrl-C. */
  disconnected(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#interrupt('SIGHUP');
    this.#wakeStdin();
  }

  decline(reason: string): void {
    this.#finished = true;
    this.#socket.end(frame(Frame.Decline, reason));
  }

  exit(code: number): void {
    if (this.#finished) return;
    this.#finished = true;
    // Stdin the command left unread is dropped; the socket reads on, so the client's close is seen.
    this.#stdin.length = 0;
    if (this.#paused) this.#resume();
    this.#socket.end(frame(Frame.Exit, String(code)));
  }
}
