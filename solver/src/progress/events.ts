/**
 * The solver's progress event stream, shaped after BuildKit's client.SolveStatus
 * (vertexes, statuses, logs) but flattened to one event per change.
 * Times are milliseconds since the epoch.
 */
export type ProgressEvent =
  | VertexStartedEvent
  | VertexCachedEvent
  | VertexDoneEvent
  | VertexErrorEvent
  | VertexLogEvent
  | VertexStatusEvent;

/** A vertex began running (its op is executing or its cache is being loaded). */
export interface VertexStartedEvent {
  readonly kind: 'vertex.started';
  /** The vertex digest (`sha256:…`), unique within a build. */
  readonly vertex: string;
  /** Display name, e.g. `[stage 2/4] RUN make` (the LLB `llb.customname`). */
  readonly name: string;
  readonly inputs?: readonly string[];
  readonly time: number;
}

/** A vertex's result came from the cache; no op ran. */
export interface VertexCachedEvent {
  readonly kind: 'vertex.cached';
  readonly vertex: string;
  readonly name: string;
  readonly time: number;
}

/** A vertex finished successfully. */
export interface VertexDoneEvent {
  readonly kind: 'vertex.done';
  readonly vertex: string;
  readonly time: number;
}

/** A vertex failed; `error` is the one-line message shown to the user. */
export interface VertexErrorEvent {
  readonly kind: 'vertex.error';
  readonly vertex: string;
  readonly error: string;
  readonly time: number;
}

/**
 * Output of a running vertex; `stream` 1 is stdout, 2 is stderr, `data` the bytes as written
 * (BuildKit's VertexLog).
 */
export interface VertexLogEvent {
  readonly kind: 'log';
  readonly vertex: string;
  readonly stream: 1 | 2;
  readonly data: Uint8Array;
  readonly time: number;
}

/**
 * Progress of a sub-task of a vertex (a layer pull, an export, a context transfer), like
 * BuildKit's VertexStatus: `id` names the sub-task, `current`/`total` count bytes or items.
 */
export interface VertexStatusEvent {
  readonly kind: 'status';
  readonly vertex: string;
  readonly id: string;
  readonly name?: string;
  readonly current: number;
  readonly total?: number;
  readonly started?: number;
  readonly completed?: number;
  readonly time: number;
}

/** Something that accepts progress events. `emit` never throws and never blocks. */
export interface ProgressSink {
  emit(event: ProgressEvent): void;
}

/**
 * A multi-consumer progress stream: producers `emit`, consumers iterate (each iterator sees
 * every event emitted after it started, plus the backlog kept since creation), `close` ends
 * all iterators. Emitting after close is ignored.
 */
export class ProgressStream implements ProgressSink, AsyncIterable<ProgressEvent> {
  readonly #events: ProgressEvent[] = [];
  readonly #waiters = new Set<() => void>();
  #closed = false;

  emit(event: ProgressEvent): void {
    if (this.#closed) return;
    this.#events.push(event);
    this.#wake();
  }

  /** Ends the stream; iterators finish once they have drained the backlog. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** All events emitted so far (a snapshot). */
  events(): readonly ProgressEvent[] {
    return this.#events.slice();
  }

  #wake(): void {
    const ws = [...this.#waiters];
    this.#waiters.clear();
    for (const w of ws) w();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ProgressEvent> {
    let i = 0;
    for (;;) {
      while (i < this.#events.length) {
        const ev = this.#events[i++];
        if (ev !== undefined) yield ev;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
  }
}

/** A sink that fans events out to several sinks (a shared vertex reports to every build using it). */
export class ProgressFanout implements ProgressSink {
  readonly #sinks = new Set<ProgressSink>();
  add(sink: ProgressSink): void {
    this.#sinks.add(sink);
  }
  delete(sink: ProgressSink): void {
    this.#sinks.delete(sink);
  }
  emit(event: ProgressEvent): void {
    for (const s of this.#sinks) s.emit(event);
  }
}

/** A sink that drops everything. */
export const discardProgress: ProgressSink = { emit: () => undefined };
