import { describe, expect, test } from 'vitest';
import { formatGoDuration, parseGoDuration } from './go-duration.js';

// Expected values are Go 1.20's time.ParseDuration results (worked by its algorithm: integer part
// times the unit, plus float64(fraction digits) * (unit / 10^n) truncated).
describe('parseGoDuration', () => {
  test.each([
    ['0', 0],
    ['+0', 0],
    ['5s', 5e9],
    ['1h30m', 5400e9],
    ['1.5h', 5400e9],
    ['.5s', 5e8],
    ['1.s', 1e9],
    ['1500us', 1.5e6],
    ['1500µs', 1.5e6],
    ['2µs1ms', 1_002_000],
    ['+2ms', 2e6],
    ['-1.5s', -1.5e9],
    ['1.001s', 1_001_000_000],
    ['2.01s', 2_010_000_000],
    ['0.3s', 300_000_000],
    ['1.0000000001s', 1e9],
  ])('%s is %d ns', (s, ns) => {
    expect(parseGoDuration(s)).toBe(ns);
  });

  test.each([
    ['', 'time: invalid duration ""'],
    ['1', 'time: missing unit in duration "1"'],
    ['1x', 'time: unknown unit "x" in duration "1x"'],
    ['.s', 'time: invalid duration ".s"'],
    ['s', 'time: invalid duration "s"'],
    ['1s ', 'time: unknown unit "s " in duration "1s "'],
    ['3000000h', 'time: invalid duration "3000000h"'],
  ])('%j is refused with Go\'s message', (s, message) => {
    expect(() => parseGoDuration(s)).toThrow(message);
  });

  test('formatGoDuration is Duration.String', () => {
    expect([0, 5e8, 1.5e3, 90e9, 5400e9, 3601e9].map(formatGoDuration)).toEqual(['0s', '500ms', '1.5µs', '1m30s', '1h30m0s', '1h0m1s']);
  });
});
