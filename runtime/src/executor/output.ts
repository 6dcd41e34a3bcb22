import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { OutputLine } from '../api/executor.js';

/** A line longer than this is emitted in pieces, so output without newlines cannot exhaust memory. */
const MAX_LINE = 1 << 20;

/** Calls `emit` for each line of `stream` as soon as its newline arrives; resolves at end of stream. */
export function splitLines(stream: Readable, name: OutputLine['stream'], emit: (l: OutputLine) => void): Promise<void> {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      const text = partial + decoder.write(chunk);
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      const time = Date.now();
      for (const line of parts) emit({ stream: name, line, time });
      while (partial.length >= MAX_LINE) {
        emit({ stream: name, line: partial.slice(0, MAX_LINE), time });
        partial = partial.slice(MAX_LINE);
      }
    });
    const end = (): void => {
      const rest = partial + decoder.end();
      partial = '';
      if (rest !== '') emit({ stream: name, line: rest, time: Date.now() });
      resolve();
    };
    stream.once('end', end);
    stream.once('error', end);
  });
}
