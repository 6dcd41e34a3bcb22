import { describe, expect, test } from 'vitest';
import { LogTail } from './log-tail.js';

const tailOf = (lines: number, chunks: readonly string[], maxBytes?: number): string[] => {
  const t = new LogTail(lines, maxBytes);
  for (const c of chunks) t.push(Buffer.from(c));
  return t.lines();
};

describe('LogTail', () => {
  test('the last lines, however the output was cut into chunks, an unterminated last line too', () => {
    const text = Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join('') + 'no newline';
    const want = [...Array.from({ length: 4 }, (_, i) => `line ${46 + i}`), 'no newline'];
    expect(tailOf(5, [text])).toEqual(want);
    expect(tailOf(5, text.match(/[^]{1,3}/g) ?? [])).toEqual(want);
    expect(tailOf(5, text.split(/(?<=\n)/))).toEqual(want);
  });

  test('fewer lines than asked, empty lines, and a UTF-8 character split across chunks', () => {
    const snow = Buffer.from('\u2603\n');
    const t = new LogTail(20);
    t.push(Buffer.from('a\n\nb'));
    t.push(snow.subarray(0, 1));
    t.push(snow.subarray(1));
    expect(t.lines()).toEqual(['a', '', 'b\u2603']);
    expect(new LogTail(20).lines()).toEqual([]);
  });

  test('memory is bounded for a line without newlines: its end is kept', () => {
    const t = new LogTail(20, 1024);
    const piece = Buffer.alloc(1 << 20, 'z');
    for (let i = 0; i < 200; i++) t.push(piece);
    t.push(Buffer.from('the end'));
    const lines = t.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`${'z'.repeat(1024 - 7)}the end`);
  });

  test('reads of many lines (as a RUN\'s output comes) next to small ones: the same last lines as the text whole', () => {
    const text = Array.from({ length: 400 }, (_, i) => `l${i}${i % 13 === 0 ? '\n' : ''}`).join('\n') + '\n';
    const buf = Buffer.from(text);
    for (const keep of [0, 1, 3, 5, 20]) {
      const want = text.split('\n').slice(0, -1).slice(-keep || buf.length);
      // Chunks with exactly `keep`, `keep + 1` and many more lines than kept, then single lines.
      for (const sizes of [[buf.length], [keep * 4, keep * 4 + 4, 600, 3, 1], [1000, 5, 5, 5, 5, 5], [2, 997]]) {
        const t = new LogTail(keep);
        for (let off = 0, i = 0; off < buf.length; i++) {
          const n = Math.max(1, sizes[i % sizes.length] ?? 1);
          t.push(buf.subarray(off, off + n));
          off += n;
        }
        expect(t.lines(), `${keep} ${JSON.stringify(sizes)}`).toEqual(keep === 0 ? [] : want);
      }
    }
  });
});
