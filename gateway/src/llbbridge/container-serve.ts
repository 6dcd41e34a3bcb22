/**
 * The daemon side of LLBBridge's container RPCs, over the gateway client's `newContainer`:
 * `NewContainer`/`ReleaseContainer` (unary) and `ExecProcess` (one bidirectional stream carrying
 * any number of processes, told apart by `ProcessID`), following buildkitd's llbBridgeForwarder
 * (frontend/gateway/gateway.go).
 */
import type { Container, ContainerProcess, FrontendClient, Ref } from '@kiln/llb-core';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import { statusOf } from './grpc-server.js';
import { messageQueue, type AsyncQueue, type ServerStreamCall } from './grpc-stream.js';
import { UNKNOWN_EXIT_STATUS, exitToWire, newContainerFromWire, processFromWire, signalFromWire } from './container-wire.js';
import { statusToWire } from './frontend-solve.js';
import { errorInfoDetail } from './error-info.js';
import type { LLBBridgeCodec, WireExecMessage, WireInitMessage, WireStatus } from './messages.js';

/**
 * Stdin bytes queued for a process before the call waits for it to read: a pipe's buffer. By
 * bytes, not pieces: kiln's client sends 1 MiB pieces, a peer may send up to 16 MiB ones.
 */
const STDIN_QUEUE_BYTES = 64 * 1024;

/** One process of an ExecProcess stream. */
interface ServedProcess {
  /** Output of fds 1 and 2 produced before Started went out (sent right after it). */
  early: WireExecMessage[] | undefined;
  process: ContainerProcess | undefined;
  /** Fd 0, when the Init listed it; ends at the client's EOF or the process's end. */
  readonly stdin: AsyncQueue<Uint8Array> | undefined;
  /** Whether the client may still send fd 0 data (no EOF yet). */
  stdinOpen: boolean;
  /** Settles once its last message is out (Exit and Done; Exit alone when it never started), or could not be sent. */
  finished: Promise<void> | undefined;
  exited: boolean;
}

/** One ExecProcess call: its processes, and how to stop it from this side. */
interface ExecCall {
  readonly procs: Map<string, ServedProcess>;
  readonly stop: () => void;
}

/**
 * The containers and ExecProcess calls of one frontend connection. Containers are this
 * connection's: {@link closeAll} (the frontend returned, or its connection ended) kills what
 * still runs and releases them all.
 */
export class BridgeContainers {
  readonly #codec: LLBBridgeCodec;
  readonly #client: FrontendClient;
  readonly #ref: (id: string) => Ref | undefined;
  readonly #containers = new Map<string, { readonly container: Container; readonly abort: AbortController }>();
  /** Ids of NewContainer calls in progress (a second one with the same id is refused). */
  readonly #creating = new Set<string>();
  readonly #calls = new Set<ExecCall>();
  #closing: Promise<void> | undefined;

  constructor(codec: LLBBridgeCodec, client: FrontendClient, ref: (id: string) => Ref | undefined) {
    this.#codec = codec;
    this.#client = client;
    this.#ref = ref;
  }

  /**
   * NewContainer: mounts by ResultID (NOT_FOUND for an id never handed out), then the client's
   * `newContainer`. ALREADY_EXISTS for an id in use; INVALID_ARGUMENT without one.
   */
  async newContainer(bytes: Uint8Array): Promise<Uint8Array> {
    const r = this.#codec.decode('NewContainerRequest', bytes);
    const newContainer = this.#client.newContainer?.bind(this.#client);
    if (newContainer === undefined) throw new GrpcStatusError(GrpcCode.UNIMPLEMENTED, 'this gateway cannot run containers');
    const id = r.ContainerID ?? '';
    if (id === '') throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'ContainerID required');
    if (this.#closing !== undefined) throw new GrpcStatusError(GrpcCode.FAILED_PRECONDITION, 'the frontend already returned');
    if (this.#containers.has(id) || this.#creating.has(id)) throw new GrpcStatusError(GrpcCode.ALREADY_EXISTS, `Container ${id} already exists`);
    const abort = new AbortController();
    this.#creating.add(id);
    let container: Container;
    try {
      container = await newContainer(newContainerFromWire(r, this.#ref, abort.signal));
    } catch (e) {
      throw this.#status(e);
    } finally {
      this.#creating.delete(id);
    }
    if (this.#closing !== undefined) {
      abort.abort();
      await container.release();
      throw new GrpcStatusError(GrpcCode.CANCELLED, 'the frontend returned while its container was being made');
    }
    this.#containers.set(id, { container, abort });
    return this.#codec.encode('NewContainerResponse', {});
  }

  /** ReleaseContainer: kills its processes and releases it; NOT_FOUND for an unknown (or released) id. */
  async releaseContainer(bytes: Uint8Array): Promise<Uint8Array> {
    const id = this.#codec.decode('ReleaseContainerRequest', bytes).ContainerID ?? '';
    const entry = this.#containers.get(id);
    if (entry === undefined) throw new GrpcStatusError(GrpcCode.NOT_FOUND, `container details for ${id} not found`);
    this.#containers.delete(id);
    await entry.container.release();
    return this.#codec.encode('ReleaseContainerResponse', {});
  }

  /**
   * ExecProcess: reads ExecMessages in order. `Init` starts a process (Started, then its output
   * as `File` fd 1/2 messages, an EOF `File` per output fd, `Exit`, `Done`); `File` fd 0 feeds
   * its stdin (EOF ends it); `Signal` and `Resize` go to it. A protocol error fails the whole
   * call with BuildKit's status (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE); a
   * process that cannot start gets `Exit` {255, Error} and nothing more. When the client half-closes,
   * the call is reset or the frontend returns, the processes still running are killed, as
   * buildkitd cancels them when its loop ends, and the call ends once their Exit went out.
   */
  async execProcess(call: ServerStreamCall): Promise<void> {
    const procs = new Map<string, ServedProcess>();
    let stop: () => void = () => undefined;
    const stopped = new Promise<IteratorReturnResult<undefined>>((resolve) => (stop = () => resolve({ done: true, value: undefined })));
    const self: ExecCall = { procs, stop };
    this.#calls.add(self);
    if (this.#closing !== undefined) stop();
    call.signal.addEventListener('abort', stop, { once: true });
    const send = (m: WireExecMessage): Promise<void> => call.send(this.#codec.encode('ExecMessage', m));
    const it = call.messages[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await Promise.race([it.next(), stopped]);
        if (r.done === true) break;
        await this.#handle(this.#codec.decode('ExecMessage', r.value), procs, send, stopped);
      }
    } finally {
      void it.return?.();
      this.#calls.delete(self);
      await Promise.all([...procs.values()].map((p) => this.#kill(p)));
    }
  }

  /** Ends every ExecProcess call (their processes killed, Exit sent) and releases every container; later NewContainers are refused. */
  closeAll(): Promise<void> {
    this.#closing ??= (async () => {
      for (const call of this.#calls) call.stop();
      const entries = [...this.#containers.values()];
      this.#containers.clear();
      await Promise.all(
        entries.map(async ({ container, abort }) => {
          abort.abort();
          await container.release().catch(() => undefined);
        }),
      );
    })();
    return this.#closing;
  }

  async #handle(m: WireExecMessage, procs: Map<string, ServedProcess>, send: (m: WireExecMessage) => Promise<void>, stopped: Promise<unknown>): Promise<void> {
    const pid = m.ProcessID ?? '';
    if (pid === '') throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'ProcessID required');
    if (m.Init !== undefined) {
      if (procs.has(pid)) throw new GrpcStatusError(GrpcCode.ALREADY_EXISTS, `Process ${pid} already exists`);
      await this.#start(pid, m.Init, procs, send);
      return;
    }
    const p = procs.get(pid);
    const missing = (): GrpcStatusError => new GrpcStatusError(GrpcCode.NOT_FOUND, `IO for process "${pid}" not found`);
    if (m.File !== undefined) {
      if (p === undefined) throw missing();
      const fd = m.File.Fd ?? 0;
      if (fd !== 0 || p.stdin === undefined || !p.stdinOpen) throw new GrpcStatusError(GrpcCode.OUT_OF_RANGE, `fd ${fd} unavailable to write`);
      // After the process ended its stdin is gone: late input is dropped, not an error (a client
      // sends its EOF after Exit).
      if (m.File.Data !== undefined && m.File.Data.byteLength > 0) p.stdin.push(m.File.Data);
      if (m.File.EOF === true) {
        p.stdinOpen = false;
        p.stdin.end();
      } else if (p.stdin.weight >= STDIN_QUEUE_BYTES) await Promise.race([p.stdin.drained(), stopped]);
    } else if (m.Resize !== undefined) {
      if (p === undefined) throw missing();
      if (p.process !== undefined && !p.exited) await p.process.resize({ rows: m.Resize.Rows ?? 0, cols: m.Resize.Cols ?? 0 }).catch(() => undefined);
    } else if (m.Signal !== undefined) {
      if (p === undefined) throw missing();
      const name = signalFromWire(m.Signal.Name ?? '');
      if (name === undefined) throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, `Unknown signal ${m.Signal.Name ?? ''}`);
      if (p.process !== undefined && !p.exited) await p.process.signal(name).catch(() => undefined);
    }
    // Anything else (a server-side message sent by the client) is ignored, as buildkitd does.
  }

  async #start(pid: string, init: WireInitMessage, procs: Map<string, ServedProcess>, send: (m: WireExecMessage) => Promise<void>): Promise<void> {
    const id = init.ContainerID ?? '';
    const entry = this.#containers.get(id);
    if (entry === undefined) throw new GrpcStatusError(GrpcCode.NOT_FOUND, `container "${id}" previously released or not created`);
    const fds = new Set(init.Fds ?? []);
    const p: ServedProcess = { early: [], process: undefined, stdin: fds.has(0) ? messageQueue() : undefined, stdinOpen: fds.has(0), finished: undefined, exited: false };
    procs.set(pid, p);
    // Output written before Started waits for it (and for its own sending).
    let flushEarly: (sent: Promise<unknown>) => void = () => undefined;
    const earlySent = new Promise<void>((resolve) => (flushEarly = (sent) => void sent.then(() => resolve(), () => resolve())));
    // Backpressure: the promise settles once HTTP/2 took the message (at once, or at the stream's
    // `drain` when the peer's flow-control window is used up), and the process's output is not
    // read meanwhile: what kiln holds is about a message beyond the peer's window, as buildkitd's
    // io.Copy into a blocking gRPC Send holds one buffer.
    const output = (fd: number) => (chunk: Uint8Array): Promise<void> => {
      // Copied: the process side may reuse its buffer once the callback returns.
      const m: WireExecMessage = { ProcessID: pid, File: { Fd: fd, Data: chunk.slice() } };
      if (p.early !== undefined) {
        p.early.push(m);
        return earlySent;
      }
      return send(m).catch(() => undefined);
    };
    const request = {
      ...processFromWire(init),
      ...(p.stdin === undefined ? {} : { stdin: p.stdin }),
      ...(fds.has(1) ? { stdout: output(1) } : {}),
      ...(fds.has(2) ? { stderr: output(2) } : {}),
    };
    try {
      p.process = await entry.container.start(request);
    } catch (e) {
      p.exited = true;
      p.stdin?.end();
      p.early = undefined;
      flushEarly(Promise.resolve());
      // Exit alone, no Done: grpcclient's Start reads one message where it waits for Started and
      // fails, but never deregisters the process, so its forwarder would block on a Done for it
      // (an unbuffered channel nobody reads) and stop delivering to every other process.
      p.finished = send({ ProcessID: pid, Exit: { Code: UNKNOWN_EXIT_STATUS, Error: this.#errorStatus(e) } }).catch(() => undefined);
      return;
    }
    // Output goes after Started, as buildkitd starts its output copies only then.
    try {
      await send({ ProcessID: pid, Started: {} });
    } finally {
      const early = (p.early ?? []).map((m) => send(m));
      p.early = undefined;
      flushEarly(Promise.all(early));
    }
    const proc = p.process;
    p.finished = (async () => {
      let exit: WireExecMessage['Exit'];
      try {
        exit = exitToWire(await proc.wait());
      } catch (e) {
        exit = { Code: UNKNOWN_EXIT_STATUS, Error: this.#errorStatus(e) };
      }
      p.exited = true;
      p.stdin?.end();
      await this.#finish(pid, exit, [1, 2].filter((fd) => fds.has(fd)), send);
    })();
  }

  /** EOF for each output fd, Exit, then Done (the last message of a process). Send failures (the call is gone) are dropped. */
  async #finish(pid: string, exit: WireExecMessage['Exit'], outputFds: readonly number[], send: (m: WireExecMessage) => Promise<void>): Promise<void> {
    try {
      for (const fd of outputFds) await send({ ProcessID: pid, File: { Fd: fd, EOF: true } });
      await send({ ProcessID: pid, Exit: exit ?? {} });
      await send({ ProcessID: pid, Done: {} });
    } catch {
      // the ExecProcess call ended; nobody is listening
    }
  }

  /** The `Error` of an ExitMessage for a start or wait failure (see {@link #status}). */
  #errorStatus(e: unknown): WireStatus {
    return statusToWire(this.#status(e));
  }

  /**
   * The status of a gateway failure: its message (UNKNOWN), plus a kiln error's code and hint as
   * an ErrorInfo detail (domain `kiln`), as a Return error carries them, so the frontend side can
   * show the hint.
   */
  #status(e: unknown): GrpcStatusError {
    const status = statusOf(e);
    const info = e instanceof Error && !(e instanceof GrpcStatusError) ? errorInfoDetail(this.#codec, e) : undefined;
    if (info === undefined) return status;
    return new GrpcStatusError(status.grpcCode, status.message, [...status.details, { typeUrl: info.type_url ?? '', value: info.value ?? new Uint8Array() }]);
  }

  /** Kills a process still running (SIGKILL) and waits until its last messages went out. */
  async #kill(p: ServedProcess): Promise<void> {
    if (p.process !== undefined && !p.exited) await p.process.signal('SIGKILL').catch(() => undefined);
    await p.finished;
  }
}
