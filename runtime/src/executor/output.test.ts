import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { OutputLine } from '../api/executor.js';
import { splitLines } from './output.js';

const MIB = 1 << 20;

async function split(chunks: readonly Buffer[]): Promise<OutputLine[]> {
  const lines: OutputLine[] = [];
  await splitLines(Readable.from(chunks), 'stdout', (l) => lines.push(l));
  return lines;
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
});
