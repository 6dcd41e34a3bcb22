import { describe, expect, test, vi } from 'vitest';
import { CLIPPED_TAIL_BYTES, DEFAULT_STEP_LOG_LIMITS, StepLogLimiter, formatLimit, stepLogLimitsFromEnv } from './step-log-limit.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const text = (b: Uint8Array | undefined): string => (b === undefined ? '<none>' : Buffer.from(b).toString('latin1'));
const bytes = (n: number, c = 'x'): Buffer => Buffer.alloc(n, c);

/** Writes `chunks` on one stream at time `at(i)` and returns what is shown, concatenated. */
function shown(lim: StepLogLimiter, chunks: readonly Uint8Array[], at: (i: number) => number = () => 0, stream: 1 | 2 = 1): string {
  return chunks.map((c, i) => lim.clip(stream, c, at(i))).map((b) => (b === undefined ? '' : text(b))).join('');
}

describe('stepLogLimitsFromEnv', () => {
  test("BuildKit's defaults: 2 MiB and 200 KiB/s", () => {
    expect(stepLogLimitsFromEnv({})).toEqual({ maxSize: 2 * MIB, maxSpeed: 200 * KIB });
    expect(DEFAULT_STEP_LOG_LIMITS).toEqual({ maxSize: 2097152, maxSpeed: 204800 });
  });

  test('whole numbers in int32 range are taken, -1 included; anything else is ignored as BuildKit ignores it', () => {
    expect(stepLogLimitsFromEnv({ BUILDKIT_STEP_LOG_MAX_SIZE: '4096', BUILDKIT_STEP_LOG_MAX_SPEED: '-1' })).toEqual({ maxSize: 4096, maxSpeed: -1 });
    expect(stepLogLimitsFromEnv({ BUILDKIT_STEP_LOG_MAX_SIZE: '+2147483647', BUILDKIT_STEP_LOG_MAX_SPEED: '-2147483648' })).toEqual({ maxSize: 2147483647, maxSpeed: -2147483648 });
    for (const bad of ['', ' 10', '10MiB', '1e6', '0x10', '1.5', '2147483648', '-2147483649', '1_000']) {
      expect(stepLogLimitsFromEnv({ BUILDKIT_STEP_LOG_MAX_SIZE: bad, BUILDKIT_STEP_LOG_MAX_SPEED: bad }), bad).toEqual(DEFAULT_STEP_LOG_LIMITS);
    }
  });
});

test("formatLimit prints BuildKit's units.Bytes %#g", () => {
  expect([2 * MIB, 200 * KIB, 4096, 1536, 1000, 1023, 100000, 0, 3 * 1024 * MIB].map(formatLimit)).toEqual(['2MiB', '200KiB', '4KiB', '1.5KiB', '1000B', '1023B', '97.65625KiB', '0B', '3GiB']);
});

describe('StepLogLimiter', () => {
  const sizeOnly = { maxSize: 10, maxSpeed: -1 };

  test('the size limit shows the first maxSize bytes, then the message once, then nothing', () => {
    const lim = new StepLogLimiter(sizeOnly, 0);
    expect(shown(lim, [bytes(4), bytes(4), bytes(4), bytes(4), bytes(100)])).toBe('xxxxxxxxxx\n[output clipped, log limit 10B reached]\n');
  });

  test('output within the limit is passed through as the same object; a write ending at the limit is whole', () => {
    const lim = new StepLogLimiter(sizeOnly, 0);
    const a = bytes(10);
    expect(lim.clip(1, a, 0)).toBe(a);
    // The next byte is past it: the message alone (its leading newline as BuildKit writes it).
    expect(text(lim.clip(1, bytes(1), 0))).toBe('\n[output clipped, log limit 10B reached]\n');
    expect(lim.clip(1, bytes(1), 0)).toBeUndefined();
  });

  test("stdout and stderr are counted apart; each run (limiter) starts afresh", () => {
    const lim = new StepLogLimiter(sizeOnly, 0);
    expect(shown(lim, [bytes(12, 'o')], undefined, 1)).toBe('oooooooooo\n[output clipped, log limit 10B reached]\n');
    expect(shown(lim, [bytes(8, 'e')], undefined, 2)).toBe('eeeeeeee');
    expect(shown(lim, [bytes(1, 'o')], undefined, 1)).toBe('');
    expect(shown(new StepLogLimiter(sizeOnly, 0), [bytes(3, 'o')])).toBe('ooo');
  });

  test('-1 for both shows everything', () => {
    const lim = new StepLogLimiter({ maxSize: -1, maxSpeed: -1 }, 0);
    const big = bytes(5 * MIB);
    expect(lim.clip(1, big, 0)).toBe(big);
    expect(lim.clip(1, big, 1)).toBe(big);
  });

  test('a size limit of -1 lifts the speed limit too (BuildKit caps the speed allowance by the size limit)', () => {
    const lim = new StepLogLimiter({ maxSize: -1, maxSpeed: 10 }, 0);
    expect(shown(lim, [bytes(100)])).toBe('x'.repeat(100));
  });

  test('the default limits: a fast 3 MiB dump shows 200 KiB and the speed message', () => {
    const lim = new StepLogLimiter(DEFAULT_STEP_LOG_LIMITS, 1000);
    const out = shown(lim, Array.from({ length: 48 }, () => bytes(64 * KIB)), () => 1500);
    expect(out).toBe(`${'x'.repeat(200 * KIB)}\n[output clipped, log limit 200KiB/s reached]\n`);
  });

  test('the speed allowance grows a second at a time from the start, counting dropped bytes too; output shows again once it has caught up, with the message again at the next clip', () => {
    const lim = new StepLogLimiter({ maxSize: 1000, maxSpeed: 10 }, 0);
    // In the first second: 10 bytes.
    expect(shown(lim, [bytes(8, 'a'), bytes(8, 'b')], () => 1)).toBe('aaaaaaaabb\n[output clipped, log limit 10B/s reached]\n');
    // 16 written; at 1.5 s the allowance is 20 (two seconds begun): 4 more bytes, still clipping (no message).
    expect(shown(lim, [bytes(8, 'c')], () => 1500)).toBe('cccc');
    // 24 written; at 3.2 s, 40: a write that fits is shown whole and ends the clipping.
    expect(shown(lim, [bytes(5, 'd')], () => 3200)).toBe('ddddd');
    expect(shown(lim, [bytes(20, 'e')], () => 3300)).toBe('eeeeeeeeeee\n[output clipped, log limit 10B/s reached]\n');
  });

  test('the size limit applies once the speed allowance passes it, with its own message', () => {
    const lim = new StepLogLimiter({ maxSize: 25, maxSpeed: 10 }, 0);
    expect(shown(lim, [bytes(10, 'a')], () => 100)).toBe('aaaaaaaaaa');
    // At 5 s the speed allows 50: the size limit (25) is the smaller.
    expect(shown(lim, [bytes(20, 'b')], () => 5000)).toBe('bbbbbbbbbbbbbbb\n[output clipped, log limit 25B reached]\n');
    expect(shown(lim, [bytes(5, 'c')], () => 100_000)).toBe('');
  });

  test('a limit of 0 shows only the message', () => {
    expect(shown(new StepLogLimiter({ maxSize: 0, maxSpeed: -1 }, 0), [bytes(3), bytes(3)])).toBe('\n[output clipped, log limit 0B reached]\n');
    expect(shown(new StepLogLimiter({ maxSize: 100, maxSpeed: 0 }, 0), [bytes(3), bytes(3)])).toBe('\n[output clipped, log limit 0B/s reached]\n');
  });

  test('a write in the start millisecond gets the first second of allowance', () => {
    expect(shown(new StepLogLimiter({ maxSize: 100, maxSpeed: 10 }, 5000), [bytes(4)], () => 5000)).toBe('xxxx');
  });
});

describe('StepLogLimiter.flush (a failed run: BuildKit keeps the last 256 KiB of a clipped stream)', () => {
  const flushed = (lim: StepLogLimiter): Array<[number, string]> => lim.flush().map(({ stream, data }) => [stream, text(data)]);

  test('nothing for streams never clipped', () => {
    const lim = new StepLogLimiter({ maxSize: 10, maxSpeed: -1 }, 0);
    lim.clip(1, bytes(10), 0);
    lim.clip(2, bytes(3), 0);
    expect(lim.flush()).toEqual([]);
  });

  test('each clipped stream, stdout first: every byte written from the first clipped write on (its shown head too), once', () => {
    const lim = new StepLogLimiter({ maxSize: 10, maxSpeed: -1 }, 0);
    lim.clip(2, Buffer.from('err-1\n'), 0);
    lim.clip(1, Buffer.from('before\n'), 0);
    lim.clip(1, Buffer.from('crosses\n'), 0);
    lim.clip(1, Buffer.from('dropped\n'), 0);
    lim.clip(2, Buffer.from('err-2 clipped\n'), 0);
    expect(flushed(lim)).toEqual([
      [1, 'crosses\ndropped\n'],
      [2, 'err-2 clipped\n'],
    ]);
    expect(lim.flush()).toEqual([]);
  });

  test('a speed clip starts keeping too, and what shows again afterwards is kept as well', () => {
    const lim = new StepLogLimiter({ maxSize: 1000, maxSpeed: 10 }, 0);
    lim.clip(1, bytes(8, 'a'), 1);
    lim.clip(1, bytes(8, 'b'), 1);
    expect(text(lim.clip(1, bytes(5, 'd'), 3200))).toBe('ddddd');
    expect(flushed(lim)).toEqual([[1, 'bbbbbbbbddddd']]);
  });

  test('only the last 256 KiB are kept, however the writes were cut', () => {
    const total = 3 * CLIPPED_TAIL_BYTES + 12345;
    const all = Buffer.alloc(total);
    for (let i = 0; i < total; i++) all[i] = (i * 7919) % 251;
    const want = all.subarray(total - CLIPPED_TAIL_BYTES);
    for (const piece of [1000, 4093, CLIPPED_TAIL_BYTES, CLIPPED_TAIL_BYTES + 1, total]) {
      const lim = new StepLogLimiter({ maxSize: 0, maxSpeed: -1 }, 0);
      for (let off = 0; off < total; off += piece) lim.clip(1, all.subarray(off, off + piece), 0);
      const [out] = lim.flush();
      expect(out?.stream, String(piece)).toBe(1);
      expect(Buffer.from(out?.data ?? []).equals(want), String(piece)).toBe(true);
    }
    // Exactly filled, then less than full.
    const exact = new StepLogLimiter({ maxSize: 0, maxSpeed: -1 }, 0);
    exact.clip(1, all.subarray(0, CLIPPED_TAIL_BYTES), 0);
    expect(Buffer.from(exact.flush()[0]?.data ?? []).equals(all.subarray(0, CLIPPED_TAIL_BYTES))).toBe(true);
  });
});

describe('StepLogLimiter.clipLines (a read of many lines at once)', () => {
  /** What each line shows, as `clip` of the lines one by one gives it, and the flush after. */
  function lineByLine(limits: { maxSize: number; maxSpeed: number }, writes: ReadonlyArray<readonly [Buffer, number]>): { shown: string[]; flushed: string[] } {
    const lim = new StepLogLimiter(limits, 0);
    const shown: string[] = [];
    for (const [data, at] of writes) {
      for (const line of text(data).split(/(?<=\n)/)) {
        const s = lim.clip(1, Buffer.from(line, 'latin1'), at);
        if (s !== undefined) shown.push(text(s));
      }
    }
    return { shown, flushed: lim.flush().map((f) => text(f.data)) };
  }
  function atOnce(limits: { maxSize: number; maxSpeed: number }, writes: ReadonlyArray<readonly [Buffer, number]>): { shown: string[]; flushed: string[] } {
    const lim = new StepLogLimiter(limits, 0);
    const shown: string[] = [];
    for (const [data, at] of writes) lim.clipLines(1, data, at, (s) => shown.push(text(s)));
    return { shown, flushed: lim.flush().map((f) => text(f.data)) };
  }
  const lines = (from: number, n: number, end = '\n'): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => `line ${from + i}`).join('\n') + end);

  test('shows what the lines one by one show (an event per line, the clip message with the line it cuts) and keeps the same bytes', () => {
    const writes: ReadonlyArray<readonly [Buffer, number]> = [
      [lines(0, 3), 10],
      [lines(3, 40), 20],
      [lines(43, 500, ''), 900],
      [Buffer.from(' the rest of it\n'), 1500],
      [lines(543, 30), 2100],
      [lines(573, 2000), 9000],
      [Buffer.alloc(0), 9000],
      [lines(2573, 5), 60_000],
    ];
    for (const limits of [
      { maxSize: 100, maxSpeed: -1 },
      { maxSize: 70, maxSpeed: -1 }, // the limit at a line's end
      { maxSize: 5000, maxSpeed: 150 },
      { maxSize: 0, maxSpeed: -1 },
      { maxSize: -1, maxSpeed: -1 },
      DEFAULT_STEP_LOG_LIMITS,
    ]) {
      const want = lineByLine(limits, writes);
      expect(atOnce(limits, writes), JSON.stringify(limits)).toEqual(want);
      // More than an event per read where lines show.
      if (limits.maxSize !== 0) expect(want.shown.length).toBeGreaterThan(writes.length);
    }
  });

  test('a stream past its limit is counted and kept a read at a time, not a line at a time', () => {
    const lim = new StepLogLimiter({ maxSize: 100, maxSpeed: -1 }, 0);
    const clip = vi.spyOn(lim, 'clip');
    const shown: string[] = [];
    lim.clipLines(1, lines(0, 10_000), 0, (s) => shown.push(text(s)));
    // The lines up to the one the limit cuts, one by one; then the rest at once.
    expect(clip.mock.calls.length).toBeLessThan(20);
    // "line 0\n" … "line 9\n" (70 bytes), "line 10\n" … "line 12\n" (94), then 6 bytes of "line 13".
    expect(shown).toHaveLength(14);
    expect(shown.at(-1)).toBe('line 1\n[output clipped, log limit 100B reached]\n');
    clip.mockClear();
    lim.clipLines(1, lines(10_000, 10_000), 1, (s) => shown.push(text(s)));
    expect(clip.mock.calls.length).toBe(1);
  });
});
