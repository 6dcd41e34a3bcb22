import type { Readable } from 'node:stream';
import type { ExecRequest, OutputLine } from '../api/executor.js';

/** A line longer than this is emitted in pieces, so output without newlines cannot exhaust memory. */
const MAX_LINE = 1 << 20;

const NEWLINE = 0x0a;

/**
 * A line whose text is decoded when first read: a consumer that forwards the bytes never reads
 * it, and a RUN printing 500 MB would make millions of strings nobody looks at.
 */
class Line implements OutputLine {
  readonly stream: OutputLine['stream'];
  readonly data: Buffer;
  readonly time: number;
  readonly #end: number;
  #line: string | undefined;

  constructor(stream: OutputLine['stream'], data: Buffer, end: number, time: number) {
    this.stream = stream;
    this.data = data;
    this.#end = end;
    this.time = time;
  }

  get line(): string {
    return (this.#line ??= this.data.toString('utf8', 0, this.#end));
  }
}

/**
 * Who takes the output {@link splitLines} reads: `onOutput` (each line apart), `onOutputLines`
 * (the lines of each read at once); either may be absent.
 */
export type OutputSinks = Pick<ExecRequest, 'onOutput' | 'onOutputLines'>;

/**
 * Gives each line of `stream` to `sinks` as soon as its newline arrives; resolves at end of
 * stream. Lines are cut on bytes, so `data` is exactly what the process wrote (any encoding; a
 * newline never occurs inside a UTF-8 sequence), and `line` is its UTF-8 reading. `data` may be a
 * view of the chunk read (not a copy).
 */
export function splitLines(stream: Readable, name: OutputLine['stream'], sinks: OutputSinks): Promise<void> {
  const { onOutput: line, onOutputLines: lines } = sinks;
  let partial: Buffer | undefined;
  /** `data`: whole lines, none longer than MAX_LINE, or one piece without a newline. */
  const send = (data: Buffer, time: number): void => {
    lines?.(name, data);
    if (line === undefined) return;
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      line(new Line(name, data.subarray(start, nl + 1), nl - start, time));
      start = nl + 1;
    }
    if (start < data.length) line(new Line(name, data.subarray(start), data.length - start, time));
  };
  /** One line (or its start) of any length: in pieces of MAX_LINE, however the process's writes were cut. */
  const sendLong = (data: Buffer, time: number): void => {
    for (let off = 0; off < data.length; off += MAX_LINE) send(data.subarray(off, off + MAX_LINE), time);
  };
  /** Whole lines: at once, unless one of them is longer than MAX_LINE (a read larger than that). */
  const sendLines = (data: Buffer, time: number): void => {
    if (data.length <= MAX_LINE) {
      send(data, time);
      return;
    }
    let run = 0;
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      if (nl + 1 - start > MAX_LINE) {
        if (run < start) send(data.subarray(run, start), time);
        sendLong(data.subarray(start, nl + 1), time);
        run = nl + 1;
      }
      start = nl + 1;
    }
    if (run < data.length) send(data.subarray(run), time);
  };
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      const time = Date.now();
      let start = 0;
      if (partial !== undefined) {
        const nl = chunk.indexOf(NEWLINE);
        if (nl >= 0) {
          sendLong(Buffer.concat([partial, chunk.subarray(0, nl + 1)]), time);
          partial = undefined;
          start = nl + 1;
        }
      }
      if (partial === undefined) {
        // Per read, not per line: a RUN printing 200 MB is 3 million lines.
        const last = chunk.lastIndexOf(NEWLINE);
        if (last >= start) {
          sendLines(chunk.subarray(start, last + 1), time);
          start = last + 1;
        }
      }
      if (start < chunk.length) {
        // Copied: the rest of the chunk is not kept alive by a line's start.
        const rest = Buffer.from(chunk.subarray(start));
        partial = partial === undefined ? rest : Buffer.concat([partial, rest]);
        while (partial !== undefined && partial.length >= MAX_LINE) {
          send(partial.subarray(0, MAX_LINE), time);
          partial = partial.length > MAX_LINE ? partial.subarray(MAX_LINE) : undefined;
        }
      }
    });
    const end = (): void => {
      if (partial !== undefined) send(partial, Date.now());
      partial = undefined;
      resolve();
    };
    stream.once('end', end);
    stream.once('error', end);
  });
}
