import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { OutputLine } from '../api/executor.js';
import { splitLines } from './output.js';

const MIB = 1 << 20;

async function split(chunks: readonly Buffer[]): Promise<OutputLine[]> {
  const lines: OutputLine[] = [];
  await splitLines(Readable.from(chunks), 'stdout', { onOutput: (l) => lines.push(l) });
  return lines;
}

/** Both sinks at once: each line apart, and the lines of each read together. */
async function both(chunks: readonly Buffer[]): Promise<{ lines: Buffer[]; reads: Buffer[] }> {
  const lines: Buffer[] = [];
  const reads: Buffer[] = [];
  await splitLines(Readable.from(chunks), 'stderr', {
    onOutput: (l) => lines.push(Buffer.from(l.data)),
    onOutputLines: (stream, data) => {
      expect(stream).toBe('stderr');
      reads.push(Buffer.from(data));
    },
  });
  return { lines, reads };
}

/** `data` cut after each newline (a last piece without one too). */
const linesOf = (data: Buffer): Buffer[] => {
  const out: Buffer[] = [];
  let start = 0;
  for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
    out.push(data.subarray(start, nl + 1));
    start = nl + 1;
  }
  if (start < data.length) out.push(data.subarray(start));
  return out;
};

/** `data` cut into pieces of the given sizes, in turn. */
function cut(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe('splitLines', () => {
  test('a line longer than 1 MiB comes in the same pieces however the writes were cut', async () => {
    const line = Buffer.concat([Buffer.alloc(MIB + 4, 'x'), Buffer.from('\n')]);
    const whole = await split([line]);
    const bytewise = await split([line.subarray(0, 1000), line.subarray(1000, MIB + 2), line.subarray(MIB + 2)]);
    for (const lines of [whole, bytewise]) {
      expect(lines.map((l) => l.data.length)).toEqual([MIB, 5]);
      expect(lines[1]?.line).toBe('xxxx');
    }
  });

  test('lines are cut on bytes: a UTF-8 character split across writes is whole, invalid bytes kept in data', async () => {
    const snow = Buffer.from('\u2603\n');
    const lines = await split([snow.subarray(0, 1), snow.subarray(1), Buffer.from([0xff, 0x0a, 0x61])]);
    expect(lines.map((l) => l.line)).toEqual(['\u2603', '\ufffd', 'a']);
    expect(lines.map((l) => [...l.data])).toEqual([[...snow], [0xff, 0x0a], [0x61]]);
  });

  test('onOutputLines gets the lines onOutput gets, the lines of a read at once, however the writes were cut', async () => {
    // Short and empty lines, lines longer than 1 MiB (cut in 1 MiB pieces), binary bytes, no last newline.
    const text = Buffer.concat([
      Buffer.from(Array.from({ length: 3000 }, (_, i) => `line ${i}${i % 7 === 0 ? '\n' : ''}\n`).join('')),
      Buffer.alloc(MIB + 10, 'a'),
      Buffer.from('\n\0\xff\n'),
      Buffer.alloc(3 * MIB, 'b'),
      Buffer.from('\nshort\n'),
      Buffer.alloc(2 * MIB + 1, 'c'),
      Buffer.from('\nend without newline'),
    ]);
    for (const sizes of [[text.length], [65536], [1000, 3, 70000, 1, 2 * MIB], [MIB + 5, 17]]) {
      const chunks = cut(text, sizes);
      const { lines, reads } = await both(chunks);
      expect(Buffer.concat(lines).equals(text)).toBe(true);
      expect(Buffer.concat(reads).equals(text)).toBe(true);
      // The reads' lines are exactly the lines, 1 MiB pieces included: a piece without a newline
      // ends its read.
      expect(reads.flatMap(linesOf).map((b) => b.toString('latin1'))).toEqual(lines.map((b) => b.toString('latin1')));
      expect(Math.max(...lines.map((l) => l.length))).toBe(MIB);
      // A call a read (or piece), not a line.
      expect(reads.length).toBeLessThanOrEqual(chunks.length + 16);
    }
  });
});

