import type { Readable } from 'node:stream';
import type { OutputLine } from '../api/executor.js';

/** A line longer than this is emitted in pieces, so output without newlines cannot exhaust memory. */
const MAX_LINE = 1 << 20;

const NEWLINE = 0x0a;

/**
 * A line whose text is decoded when first read: the solver forwards the bytes and never reads
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
 * Calls `emit` for each line of `stream` as soon as its newline arrives; resolves at end of
 * stream. Lines are cut on bytes, so `data` is exactly what the process wrote (any encoding; a
 * newline never occurs inside a UTF-8 sequence), and `line` is its UTF-8 reading.
 */
export function splitLines(stream: Readable, name: OutputLine['stream'], emit: (l: OutputLine) => void): Promise<void> {
  let partial: Buffer | undefined;
  const send = (data: Buffer, time: number): void => {
    // Longer than MAX_LINE: in pieces of MAX_LINE, however the process's writes were cut.
    for (let off = 0; off < data.length; off += MAX_LINE) {
      const piece = data.subarray(off, off + MAX_LINE);
      const end = piece.length > 0 && piece[piece.length - 1] === NEWLINE ? piece.length - 1 : piece.length;
      emit(new Line(name, piece, end, time));
    }
  };
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      const time = Date.now();
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, nl + 1);
        send(partial === undefined ? piece : Buffer.concat([partial, piece]), time);
        partial = undefined;
        start = nl + 1;
      }
      if (start < chunk.length) {
        // Copied: the chunk's memory may be reused once this handler returns.
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
