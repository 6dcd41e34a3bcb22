import type { ProgressEvent } from './events.js';
import { LineBuffer, withoutCarriageReturn } from './lines.js';
import { formatBytes, formatSeconds, type ProgressOutput, type ProgressRenderer } from './output.js';

const NEWLINE = Buffer.from('\n');

interface PlainVertex {
  readonly index: number;
  readonly name: string;
  started: number | undefined;
  headerPrinted: boolean;
  /** Log output up to its unfinished last line. */
  readonly log: LineBuffer;
  finished: boolean;
}

/**
 * `--progress=plain`: BuildKit's text printer. Each vertex gets a number in order of first
 * appearance; lines look like `#3 [stage 2/4] RUN make`, `#3 0.123 output`, `#3 DONE 0.3s`,
 * `#3 CACHED`, `#3 ERROR: …`. A blank line separates output of different vertices, and
 * `#N ...` marks the continuation of a vertex whose block was interrupted.
 */
export class PlainRenderer implements ProgressRenderer {
  readonly #out: ProgressOutput;
  readonly #vertices = new Map<string, PlainVertex>();
  #current: string | undefined;
  #any = false;

  constructor(out: ProgressOutput) {
    this.#out = out;
  }

  #vertex(digest: string, name: string | undefined): PlainVertex {
    let v = this.#vertices.get(digest);
    if (v === undefined) {
      v = { index: this.#vertices.size + 1, name: name ?? digest, started: undefined, headerPrinted: false, log: new LineBuffer(), finished: false };
      this.#vertices.set(digest, v);
    }
    return v;
  }

  /** Switches the printer to vertex `digest`, printing separators and the header as needed. */
  #focus(digest: string, v: PlainVertex): void {
    if (this.#current !== digest) {
      const prev = this.#current === undefined ? undefined : this.#vertices.get(this.#current);
      const rest = prev?.log.take();
      if (prev !== undefined && rest !== undefined) this.#line(prev, rest, prev.started);
      if (this.#any) this.#out.write('\n');
      this.#current = digest;
      if (v.headerPrinted) this.#out.write(`#${v.index} ...\n`);
    }
    if (!v.headerPrinted) {
      this.#out.write(`#${v.index} ${v.name}\n`);
      v.headerPrinted = true;
    }
    this.#any = true;
  }

  /** A log line, its bytes as the process wrote them (BuildKit prints them unchanged). */
  #line(v: PlainVertex, text: Buffer, since: number | undefined, at?: number): void {
    const t = since === undefined || at === undefined ? 0 : (at - since) / 1000;
    this.#out.write(Buffer.concat([Buffer.from(`#${v.index} ${t.toFixed(3)} `), text, NEWLINE]));
  }

  handle(ev: ProgressEvent): void {
    switch (ev.kind) {
      case 'vertex.started': {
        const v = this.#vertex(ev.vertex, ev.name);
        v.started ??= ev.time;
        this.#focus(ev.vertex, v);
        return;
      }
      case 'vertex.cached': {
        const v = this.#vertex(ev.vertex, ev.name);
        if (v.finished) return;
        v.finished = true;
        this.#focus(ev.vertex, v);
        this.#out.write(`#${v.index} CACHED\n`);
        return;
      }
      case 'vertex.done': {
        const v = this.#vertex(ev.vertex, undefined);
        if (v.finished) return;
        v.finished = true;
        this.#focus(ev.vertex, v);
        this.#flushPartial(v, ev.time);
        this.#out.write(`#${v.index} DONE ${formatSeconds(ev.time - (v.started ?? ev.time))}\n`);
        return;
      }
      case 'vertex.error': {
        const v = this.#vertex(ev.vertex, undefined);
        if (v.finished) return;
        v.finished = true;
        this.#focus(ev.vertex, v);
        this.#flushPartial(v, ev.time);
        // BuildKit prints a vertex stopped by cancellation as CANCELED, not as an error.
        this.#out.write(ev.error === 'cancelled' ? `#${v.index} CANCELED\n` : `#${v.index} ERROR: ${ev.error}\n`);
        return;
      }
      case 'log': {
        const v = this.#vertex(ev.vertex, undefined);
        this.#focus(ev.vertex, v);
        for (const l of v.log.push(ev.data)) this.#line(v, withoutCarriageReturn(l), v.started, ev.time);
        return;
      }
      case 'status': {
        const v = this.#vertex(ev.vertex, undefined);
        this.#focus(ev.vertex, v);
        // BuildKit's plain printer shows a status by its ID (`sha256:…`, `exporting layers`), not its name.
        const label = ev.id;
        const amount = ev.total !== undefined && ev.total > 0 ? `${formatBytes(ev.current)} / ${formatBytes(ev.total)}` : ev.current > 0 ? formatBytes(ev.current) : '';
        const start = ev.started ?? v.started ?? ev.time;
        const end = ev.completed ?? ev.time;
        const parts = [label, amount, formatSeconds(end - start)].filter((p) => p !== '');
        if (ev.completed !== undefined) parts.push('done');
        this.#out.write(`#${v.index} ${parts.join(' ')}\n`);
        return;
      }
      default: {
        const never: never = ev;
        return never;
      }
    }
  }

  #flushPartial(v: PlainVertex, at: number): void {
    const rest = v.log.take();
    if (rest !== undefined) this.#line(v, rest, v.started, at);
  }

  finish(): void {
    for (const v of this.#vertices.values()) {
      const rest = v.log.take();
      if (rest !== undefined) this.#out.write(Buffer.concat([Buffer.from(`#${v.index} `), rest, NEWLINE]));
    }
  }
}
