/**
 * The frontend side of LLBBridge's container RPCs: `Container` and `ContainerProcess` over
 * `NewContainer`/`ReleaseContainer` and one `ExecProcess` stream per connection, multiplexed by
 * `ProcessID` (`<container id>:<random>`), as BuildKit's grpcclient does (its messageForwarder).
 */
import { randomBytes } from 'node:crypto';
import type { Container, ContainerProcess, ContainerProcessRequest } from '@kiln/llb-core';
import { GatewayError } from '../errors.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import type { GrpcClient } from './grpc-client.js';
import type { ClientStreamCall } from './grpc-stream.js';
import { UNKNOWN_EXIT_STATUS, processToWire, signalToWire } from './container-wire.js';
import { statusFromWire } from './return-error.js';
import { kilnErrorInfo } from './error-info.js';
import type { LLBBridgeCodec, WireExecMessage, WireMessages, WireStatus } from './messages.js';
import { LLBBRIDGE_SERVICE } from './serve.js';

/** A typed unary LLBBridge call (connect.ts' BridgeRpc.call). */
export type BridgeUnaryCall = <Req extends keyof WireMessages, Res extends keyof WireMessages>(
  method: string,
  req: Req,
  res: Res,
  request: WireMessages[Req],
) => Promise<WireMessages[Res]>;

/** Stdin goes out in pieces of at most this size, well below the 16 MiB message limit. */
const STDIN_PIECE = 1 << 20;

/** A random id, as BuildKit's identity.NewID gives container and process ids. */
export function newBridgeId(): string {
  return randomBytes(13).toString('hex');
}

/** The failure of the ExecProcess call as a GatewayError KLN0612 (its status as the cause). */
function execError(e: unknown): Error {
  if (e instanceof GrpcStatusError) return new GatewayError('KLN0612', `ExecProcess: ${e.message}`, { cause: e });
  return e instanceof Error ? e : new Error(String(e));
}

/** What an ExecProcess message for one process is handed to. */
interface ProcessSink {
  /** Takes a message; a promise (the caller's output callback's) holds the next read until it settles. */
  message(m: WireExecMessage): void | Promise<void>;
  fail(error: Error): void;
}

/**
 * The one ExecProcess call of a connection, opened by the first container: sends any process's
 * messages and hands each answer to the process it names (messages for unknown ids are dropped,
 * as grpcclient does). When the call ends, every process still registered fails with its error.
 * Backpressure: while a process's output callback has a promise pending no further message is
 * read, so the transport's small read-ahead queue fills, the HTTP/2 stream pauses and sends no
 * WINDOW_UPDATE, and the server stops at its flow-control window (as grpcclient's forwarder
 * blocks in its write to a slow pipe); this holds up every process of the call.
 */
export class BridgeExec {
  readonly codec: LLBBridgeCodec;
  readonly #call: ClientStreamCall;
  readonly #procs = new Map<string, ProcessSink>();
  #failure: Error | undefined;
  #closed: () => void = () => undefined;
  /** Settles at {@link close}: a read held by a caller's pending promise stops waiting for it. */
  readonly #closing = new Promise<void>((resolve) => (this.#closed = resolve));

  constructor(codec: LLBBridgeCodec, grpc: GrpcClient) {
    this.codec = codec;
    this.#call = grpc.stream(`${LLBBRIDGE_SERVICE}ExecProcess`);
    void this.#read();
  }

  /** Whether the call is over (a new container then opens a new one). */
  get ended(): boolean {
    return this.#failure !== undefined;
  }

  register(pid: string, sink: ProcessSink): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.#procs.set(pid, sink);
  }

  unregister(pid: string): void {
    this.#procs.delete(pid);
  }

  async send(m: WireExecMessage): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      await this.#call.send(this.codec.encode('ExecMessage', m));
    } catch (e) {
      throw execError(e);
    }
  }

  /** Ends the call (reset): processes still registered fail. */
  close(): void {
    this.#closed();
    this.#call.cancel();
  }

  async #read(): Promise<void> {
    let failure: Error;
    try {
      for await (const bytes of this.#call.messages) {
        const m = this.codec.decode('ExecMessage', bytes);
        const held = this.#procs.get(m.ProcessID ?? '')?.message(m);
        if (held !== undefined) await Promise.race([held, this.#closing]);
      }
      failure = new GatewayError('KLN0612', 'ExecProcess: the server ended the call');
    } catch (e) {
      failure = execError(e);
    }
    this.#failure = failure;
    for (const sink of this.#procs.values()) sink.fail(failure);
    this.#procs.clear();
  }
}

/**
 * A container made through NewContainer. `exec` gives the connection's ExecProcess call, a new
 * one when the last ended: buildkitd ends the whole call when a process cannot start, and the
 * container must still run the next one. `signal` aborting releases it; the listener goes at
 * release, so a signal shared by many containers (the build's) does not collect them.
 */
export class BridgeContainer implements Container {
  readonly id: string;
  readonly #call: BridgeUnaryCall;
  readonly #exec: () => BridgeExec;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => void this.release().catch(() => undefined);
  /** Its processes whose output may still come (release stops their callbacks holding the call). */
  readonly #procs = new Set<BridgeProcess>();
  #released: Promise<void> | undefined;

  constructor(id: string, call: BridgeUnaryCall, exec: () => BridgeExec, signal?: AbortSignal) {
    this.id = id;
    this.#call = call;
    this.#exec = exec;
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /**
   * Sends Init and resolves once the server answers Started; rejects with the server's error
   * (KLN0612) when it answers Exit instead (the process could not start) or the call fails.
   */
  async start(request: ContainerProcessRequest): Promise<ContainerProcess> {
    if (this.#released !== undefined) throw new GatewayError('KLN0614', `container ${this.id} was released`);
    const pid = `${this.id}:${newBridgeId()}`;
    const exec = this.#exec();
    const proc = new BridgeProcess(pid, request, exec, () => this.#procs.delete(proc));
    this.#procs.add(proc);
    exec.register(pid, proc);
    try {
      await exec.send({ ProcessID: pid, Init: processToWire(this.id, request) });
      await proc.started;
      // The wire has no size in Init (BuildKit's neither): a Resize right after Started.
      if (request.tty === true && request.ttySize !== undefined) await proc.resize(request.ttySize);
    } catch (e) {
      exec.unregister(pid);
      this.#procs.delete(proc);
      throw e;
    }
    proc.pumpStdin();
    return proc;
  }

  /**
   * ReleaseContainer (once; later calls wait for that one). The server kills what still runs.
   * Its processes' output callbacks no longer hold the connection's ExecProcess reader (as the
   * runtime's release stops waiting for a stuck consumer): their last output, Exit and Done are
   * read, and the other processes of the connection go on.
   */
  release(): Promise<void> {
    this.#signal?.removeEventListener('abort', this.#onAbort);
    for (const proc of this.#procs) proc.unpace();
    this.#procs.clear();
    this.#released ??= this.#call('ReleaseContainer', 'ReleaseContainerRequest', 'ReleaseContainerResponse', { ContainerID: this.id }).then(() => undefined);
    return this.#released;
  }
}

/**
 * The error an Exit without a code carries (its `Error` status) as a GatewayError KLN0612; a
 * kiln daemon's ErrorInfo detail gives it the hint (the status, details and all, is the cause).
 */
function exitError(codec: LLBBridgeCodec, pid: string, status: WireStatus | undefined): GatewayError {
  const cause = statusFromWire(status ?? { code: GrpcCode.UNKNOWN, message: 'no exit status' });
  const hint = kilnErrorInfo(codec, cause.details)?.hint;
  return new GatewayError('KLN0612', `ExecProcess ${pid}: ${cause.message}`, { cause, ...(hint === undefined ? {} : { hint }) });
}

/** A process started through ExecProcess. */
class BridgeProcess implements ContainerProcess, ProcessSink {
  readonly started: Promise<void>;
  readonly #pid: string;
  readonly #request: ContainerProcessRequest;
  readonly #exec: BridgeExec;
  readonly #done: Promise<number>;
  #resolveStarted: () => void = () => undefined;
  #rejectStarted: (e: Error) => void = () => undefined;
  #resolveDone: (code: number) => void = () => undefined;
  #rejectDone: (e: Error) => void = () => undefined;
  #isStarted = false;
  #exit: { readonly code: number; readonly error: WireStatus | undefined } | undefined;
  #finished = false;
  #stdinEnded = false;
  readonly #forget: () => void;
  #unpaced = false;
  #unpace: () => void = () => undefined;
  readonly #unpacedAt = new Promise<void>((resolve) => (this.#unpace = resolve));

  constructor(pid: string, request: ContainerProcessRequest, exec: BridgeExec, forget: () => void) {
    this.#pid = pid;
    this.#request = request;
    this.#exec = exec;
    this.#forget = forget;
    this.started = new Promise((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    this.#done = new Promise((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // Nobody may ever wait: a rejection must not be unhandled.
    this.#done.catch(() => undefined);
  }

  /**
   * Resolves with the exit code once the server sent Done (all output delivered); rejects
   * (KLN0612) when the server could not tell a code (Exit 255 with an error) or the call failed.
   */
  wait(): Promise<number> {
    return this.#done;
  }

  async signal(signal: string): Promise<void> {
    const name = signalToWire(signal);
    if (this.#finished || this.#exit !== undefined) return;
    await this.#exec.send({ ProcessID: this.#pid, Signal: { Name: name } });
  }

  async resize(size: { readonly rows: number; readonly cols: number }): Promise<void> {
    if (this.#finished || this.#exit !== undefined) return;
    await this.#exec.send({ ProcessID: this.#pid, Resize: { Rows: size.rows, Cols: size.cols } });
  }

  message(m: WireExecMessage): void | Promise<void> {
    if (m.Started !== undefined) {
      this.#isStarted = true;
      this.#resolveStarted();
    } else if (m.File !== undefined) {
      const data = m.File.Data;
      if (data === undefined || data.byteLength === 0) return;
      let held: unknown;
      try {
        if (m.File.Fd === 1) held = this.#request.stdout?.(data);
        else if (m.File.Fd === 2) held = this.#request.stderr?.(data);
      } catch {
        // The caller's handler failed: its own affair (as in the runtime). Thrown here it would
        // end the connection's one ExecProcess reader, failing every process on it.
      }
      // A pending promise holds the reader (backpressure) until it settles or the container is
      // released; a rejection is ignored like a throw.
      if (!isThenable(held)) return;
      const done = Promise.resolve(held).then(() => undefined, () => undefined);
      if (!this.#unpaced) return Promise.race([done, this.#unpacedAt]);
    } else if (m.Exit !== undefined) {
      this.#exit = { code: m.Exit.Code ?? 0, error: m.Exit.Error };
      if (!this.#isStarted) {
        this.#finish();
        this.#rejectStarted(exitError(this.#exec.codec, this.#pid, m.Exit.Error));
        return;
      }
      // buildkitd sends Done only once fd 0 is closed: end it now if the input is still open.
      void this.#endStdin();
    } else if (m.Done !== undefined) {
      this.#finish();
      const exit = this.#exit;
      if (exit === undefined) this.#rejectDone(new GatewayError('KLN0614', `ExecProcess ${this.#pid}: Done without Exit`));
      else if (exit.code === UNKNOWN_EXIT_STATUS && exit.error !== undefined) this.#rejectDone(exitError(this.#exec.codec, this.#pid, exit.error));
      else this.#resolveDone(exit.code);
    }
  }

  /** Stops holding the reader for this process's output callbacks (its container is released). */
  unpace(): void {
    this.#unpaced = true;
    this.#unpace();
  }

  fail(error: Error): void {
    this.#finished = true;
    this.#forget();
    this.#rejectStarted(error);
    this.#rejectDone(error);
  }

  /** Copies `stdin` into File fd 0 messages, then EOF; stops at the process's end. */
  pumpStdin(): void {
    const stdin = this.#request.stdin;
    if (stdin === undefined) return;
    void (async () => {
      try {
        for await (const chunk of stdin) {
          if (this.#exit !== undefined || this.#finished) break;
          for (let at = 0; at < chunk.byteLength; at += STDIN_PIECE) {
            await this.#exec.send({ ProcessID: this.#pid, File: { Data: chunk.subarray(at, at + STDIN_PIECE) } });
          }
        }
      } catch {
        // the call failed: wait() reports it
      }
      await this.#endStdin();
    })();
  }

  async #endStdin(): Promise<void> {
    if (this.#request.stdin === undefined || this.#stdinEnded || this.#finished) return;
    this.#stdinEnded = true;
    await this.#exec.send({ ProcessID: this.#pid, File: { EOF: true } }).catch(() => undefined);
  }

  #finish(): void {
    this.#finished = true;
    this.#forget();
    this.#exec.unregister(this.#pid);
  }
}

/** Whether an output callback returned a promise (or any thenable). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
