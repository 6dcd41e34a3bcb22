import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { CliIo, Interrupts } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { KilnEngine } from '../engine/engine.js';
import { EngineError } from '../engine/errors.js';
import type { EngineSource } from '../engine/lease.js';
import { commandOf, DAEMON_COMMANDS, Frame, FrameReader, frame, PROTOCOL_VERSION, rootFlagOf, type Hello } from './protocol.js';

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
}

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

  private constructor(opts: DaemonOptions, server: Server, engine: KilnEngine) {
    this.#opts = opts;
    this.#server = server;
    this.#engine = engine;
  }

  /** Opens the root's engine and starts listening; refuses if a daemon already answers on the socket. */
  static async listen(opts: DaemonOptions): Promise<KilnDaemon> {
    if (await answers(opts.socket)) {
      throw new EngineError('KLN0709', `a kiln daemon already listens on ${opts.socket}`, { hint: 'stop it first, or pass --addr unix:///other/path' });
    }
    await mkdir(dirname(opts.socket), { recursive: true, mode: 0o700 });
    await unlink(opts.socket).catch(() => undefined); // a stale socket of a daemon that died
    const engine = await KilnEngine.open({ root: opts.root });
    const server = createServer();
    const daemon = new KilnDaemon(opts, server, engine);
    server.on('connection', (socket) => daemon.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.socket, () => resolve());
    });
    await chmod(opts.socket, 0o600);
    return daemon;
  }

  /** Stops accepting clients, interrupts running commands, waits for them and closes the engine. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const l of this.#interrupts) l('SIGTERM');
    await Promise.allSettled([...this.#running]);
    this.#engine.close();
    await unlink(this.#opts.socket).catch(() => undefined);
  }

  #serve(socket: Socket): void {
    socket.on('error', () => undefined);
    let request: ClientRequest | undefined;
    const reader = new FrameReader((kind, payload) => {
      if (request === undefined) {
        if (kind !== Frame.Hello) return void socket.destroy();
        request = new ClientRequest(socket);
        this.#start(request, payload);
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
    const command = commandOf(hello.argv);
    if (hello.version !== PROTOCOL_VERSION) return req.decline(`protocol ${hello.version}`);
    if (command === undefined || !DAEMON_COMMANDS.has(command)) return req.decline(`command ${command ?? '(none)'}`);
    const io = req.io(hello, this.#interrupts, this.#engines());
    // A command for another root runs in the client's own process, against that root.
    if (kilnRoot(rootFlagOf(hello.argv), io).path !== this.#opts.root) return req.decline('another root');
    const t0 = performance.now();
    const run = this.#opts
      .run(hello.argv, io)
      .catch(() => 1)
      .then((code) => {
        req.exit(code);
        this.#opts.log?.(`${hello.argv.slice(2).join(' ')} → exit ${code} in ${Math.round(performance.now() - t0)} ms`);
      })
      .finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  #engines(): EngineSource {
    const engine = this.#engine;
    return { open: async () => engine, keepsOpen: true };
  }
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

/** One client connection: its streams, stdin on demand, interrupts and the exit frame. */
class ClientRequest {
  readonly #socket: Socket;
  readonly #stdin: Buffer[] = [];
  #stdinEnded = false;
  #stdinWanted = false;
  #wake: (() => void) | undefined;
  readonly #listeners = new Set<(sig: string) => void>();
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
        return () => {
          this.#listeners.delete(listener);
          registry.delete(listener);
        };
      },
      // A second Ctrl-C: the client exits 130 now; the command finishes cancelling here.
      giveUp: () => this.exit(130),
    };
    return {
      stdin: this.#stdinIterable(),
      stdout: { write: write(Frame.Stdout), isTTY: hello.stdout.isTTY } as CliIo['stdout'],
      stderr: { write: write(Frame.Stderr), ...hello.stderr } as CliIo['stderr'],
      cwd: hello.cwd,
      env: hello.env,
      interrupts,
      engines,
    };
  }

  async *#stdinIterable(): AsyncGenerator<Uint8Array> {
    if (!this.#stdinWanted) {
      this.#stdinWanted = true;
      this.#socket.write(frame(Frame.WantStdin));
    }
    for (;;) {
      const chunk = this.#stdin.shift();
      if (chunk !== undefined) {
        yield chunk;
        continue;
      }
      if (this.#stdinEnded) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  onFrame(kind: number, payload: Buffer): void {
    if (kind === Frame.Stdin) this.#stdin.push(payload);
    else if (kind === Frame.StdinEnd) this.#stdinEnded = true;
    else if (kind === Frame.Signal) for (const l of [...this.#listeners]) l(payload.toString('utf8'));
    this.#wake?.();
    this.#wake = undefined;
  }

  /** The client went away: its command is interrupted as if by Ctrl-C. */
  disconnected(): void {
    this.#stdinEnded = true;
    this.#wake?.();
    if (this.#finished) return;
    this.#finished = true;
    for (const l of [...this.#listeners]) l('SIGHUP');
  }

  decline(reason: string): void {
    this.#finished = true;
    this.#socket.end(frame(Frame.Decline, reason));
  }

  exit(code: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#socket.end(frame(Frame.Exit, String(code)));
  }
}
