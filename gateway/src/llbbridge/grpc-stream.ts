/**
 * Streaming gRPC calls (LLBBridge's `ExecProcess` is bidirectional): the call handles each side
 * gets, the queue that turns pushed messages into an `AsyncIterable`, and flow-controlled writes.
 */
import type { Http2Stream } from 'node:http2';
import { frameMessage } from './grpc.js';

/**
 * Writes messages (framed) on one HTTP/2 stream. Each write resolves once HTTP/2 took it: at
 * once, or at `drain` when the stream's buffer is full (flow control), or when the stream
 * closes; it rejects with KLN0613 for a message over the limit (nothing written). Writes not
 * awaited (a process's output, stdin beside a signal) wait together on one `drain` listener, not
 * one each (which piled up listeners and set off MaxListenersExceededWarning at 11).
 */
export class MessageWriter {
  readonly #stream: Http2Stream;
  readonly #waiting: (() => void)[] = [];

  constructor(stream: Http2Stream) {
    this.#stream = stream;
    const release = (): void => {
      for (const resolve of this.#waiting.splice(0)) resolve();
    };
    stream.on('drain', release);
    stream.once('close', release);
  }

  write(message: Uint8Array): Promise<void> {
    let frame: Buffer;
    try {
      frame = frameMessage(message);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#stream.write(frame) || this.#stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

/**
 * Messages, and bytes, queued for a slow reader before the HTTP/2 stream stops reading: a paused
 * stream sends no WINDOW_UPDATE, so the peer's writes wait at its flow-control window, as
 * grpc-go's Recv does when nobody calls it. Without this every message the peer sends piles up
 * in memory. Bytes count too: a message may be 16 MiB.
 */
const QUEUE_HIGH_WATER = { messages: 16, bytes: 1024 * 1024 } as const;

/** A queue of received bytes (messages, a process's stdin), weighed by their size (for {@link pauseWhileFull}). */
export function messageQueue(): AsyncQueue<Uint8Array> {
  return new AsyncQueue<Uint8Array>((m) => m.byteLength);
}

/**
 * Pauses `stream` while `queue` holds {@link QUEUE_HIGH_WATER} messages or bytes, and resumes it
 * once the consumer has read them all (or stopped reading).
 */
export function pauseWhileFull(stream: Http2Stream, queue: AsyncQueue<Uint8Array>): void {
  if ((queue.length < QUEUE_HIGH_WATER.messages && queue.weight < QUEUE_HIGH_WATER.bytes) || stream.isPaused()) return;
  stream.pause();
  void queue.drained().then(() => {
    if (!stream.destroyed) stream.resume();
  });
}

/**
 * A FIFO read as an `AsyncIterable` by one consumer: `push` adds, `end` finishes it after what is
 * queued, `fail` finishes it with an error after what is queued. Iteration that stops early
 * (`break`) closes it: later pushes are dropped. {@link drained} lets a producer wait for the
 * consumer, as a pipe write would.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  readonly #weigh: ((item: T) => number) | undefined;
  #weight = 0;
  #closed = false;
  #error: { readonly error: unknown } | undefined;
  #wake: (() => void) | undefined;
  #drainWaiters: (() => void)[] = [];

  /** `weigh` gives an item's size (bytes, say) for {@link weight}; without it each weighs nothing. */
  constructor(weigh?: (item: T) => number) {
    this.#weigh = weigh;
  }

  /** Items queued and not yet read. */
  get length(): number {
    return this.#items.length;
  }

  /** The summed `weigh` of the items queued and not yet read. */
  get weight(): number {
    return this.#weight;
  }

  /** Whether `end`/`fail` was called or the consumer stopped. */
  get closed(): boolean {
    return this.#closed;
  }

  push(item: T): void {
    if (this.#closed) return;
    this.#items.push(item);
    this.#weight += this.#weigh?.(item) ?? 0;
    this.#notify();
  }

  end(): void {
    this.#closed = true;
    this.#notify();
    this.#releaseDrainWaiters();
  }

  fail(error: unknown): void {
    if (this.#closed) return;
    this.#error = { error };
    this.end();
  }

  /** Resolves once every queued item was read, or the queue closed. */
  drained(): Promise<void> {
    if (this.#items.length === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    try {
      for (;;) {
        const item = this.#items.shift();
        if (item !== undefined) {
          this.#weight -= this.#weigh?.(item) ?? 0;
          if (this.#items.length === 0) this.#releaseDrainWaiters();
          yield item;
          continue;
        }
        if (this.#closed) {
          if (this.#error !== undefined) throw this.#error.error;
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      // A consumer that stops early closes the queue: nothing more will be read.
      if (!this.#closed) {
        this.#closed = true;
        this.#items.length = 0;
        this.#weight = 0;
        this.#releaseDrainWaiters();
      }
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #releaseDrainWaiters(): void {
    for (const w of this.#drainWaiters.splice(0)) w();
  }
}

/** The server's handle on one streaming call. */
export interface ServerStreamCall {
  /** The request messages as they arrive; ends at the client's half-close, throws when the stream is reset or malformed. */
  readonly messages: AsyncIterable<Uint8Array>;
  /** Sends one response message (the response headers go first); resolves once HTTP/2 took it (flow control). */
  send(message: Uint8Array): Promise<void>;
  /** Aborted when the call is gone: reset by the client, or the connection ended. */
  readonly signal: AbortSignal;
}

/**
 * Serves one streaming call: resolving sends status OK in the trailers, rejecting sends the
 * error's status (see `statusOf`), after the messages already sent.
 */
export type StreamHandler = (call: ServerStreamCall) => Promise<void>;

/** The client's handle on one streaming call. */
export interface ClientStreamCall {
  /** Sends one request message; resolves once HTTP/2 took it. Rejects after {@link end} or when the call is over. */
  send(message: Uint8Array): Promise<void>;
  /** Half-closes: no more request messages (the server may still answer). */
  end(): void;
  /** Resets the call (RST_STREAM CANCEL); {@link messages} then rejects with CANCELLED. */
  cancel(): void;
  /**
   * The response messages as they arrive; ends when the server ends the call with status OK,
   * throws a GrpcStatusError otherwise (UNAVAILABLE when the connection went away).
   */
  readonly messages: AsyncIterable<Uint8Array>;
}
