import { describe, expect, it } from 'vitest';
import { parseJsonArray } from './json.js';

/** What BuildKit's parseJSON gives, computed with JSON.parse (the oracle). */
function oracle(text: string): { elements: string[]; nonString: boolean } | undefined {
  let v: unknown;
  let overflow = false;
  try {
    // Go's Unmarshal fails on a number out of float64's range (JSON.parse makes it Infinity)
    v = JSON.parse(text, (_k, x: unknown) => {
      if (typeof x === 'number' && !Number.isFinite(x)) overflow = true;
      return x;
    });
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || overflow) return undefined;
  return { elements: v.filter((x): x is string => typeof x === 'string'), nonString: v.some((x) => typeof x !== 'string') };
}

describe('parseJsonArray', () => {
  it('keeps element offsets and finds the first non-string', () => {
    expect(parseJsonArray('[ "a",  "b\\u00e9" ]')).toEqual({ elements: [{ value: 'a', offset: 2 }, { value: 'bé', offset: 8 }], nonString: undefined });
    expect(parseJsonArray('["a", {"k": [1]}, 2]')?.nonString).toBe(6);
    expect(parseJsonArray('[]')).toEqual({ elements: [], nonString: undefined });
  });

  it.for([
    "['echo','single quotes are invalid JSON']",
    '[ "echo", "unterminated',
    '[ "a" "b" ]',
    '[ "a", ]',
    '["a"] x',
    '["\\x"]',
    '["tab\there"]',
    '[01]',
    '{"a": "b"}',
  ])('rejects %j like JSON.parse', (text) => {
    expect(parseJsonArray(text)).toBeUndefined();
    expect(oracle(text)).toBeUndefined();
  });

  it('agrees with JSON.parse on 20000 random inputs', () => {
    const alphabet = ['[', ']', '{', '}', ',', ':', '"', '\\', 'a', 'u', '0', '1', '-', '.', 'e', ' ', '\t', '\n', 'true', 'null', 'false', 'é', '"x"', '"\\u00e9"'];
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let accepted = 0;
    for (let i = 0; i < 20000; i++) {
      let s = '[';
      const len = rnd(12);
      for (let j = 0; j < len; j++) s += alphabet[rnd(alphabet.length)];
      if (rnd(2) === 0) s += ']';
      const want = oracle(s);
      const got = parseJsonArray(s);
      if (want === undefined) {
        expect(got, s).toBeUndefined();
      } else {
        accepted++;
        expect(got?.elements.map((e) => e.value), s).toEqual(want.elements);
        expect(got?.nonString !== undefined, s).toBe(want.nonString);
        for (const e of got?.elements ?? []) expect(stringAt(s, e.offset), s).toBe(e.value);
      }
    }
    expect(accepted).toBeGreaterThan(100);
  });

  it('gives offsets of strings with escaped quotes and backslashes (the fast path)', () => {
    const text = `${String.raw` [ "a\\", "\"q\"",`}\n${String.raw`"\\\"" ,"" ] `}`;
    const got = parseJsonArray(text);
    expect(got?.elements.map((e) => e.value)).toEqual(JSON.parse(text));
    for (const e of got?.elements ?? []) expect(stringAt(text, e.offset)).toBe(e.value);
    // the same offsets as the scan of mixed arrays gives for the array with a number appended
    const slow = parseJsonArray(text.replace(' ] ', ', 1 ] '));
    expect(slow?.nonString).toBeDefined();
    expect(slow?.elements).toEqual(got?.elements);
  });

  it('decodes escaped lone surrogates to U+FFFD, as Go encoding/json does (both paths)', () => {
    // Go's unquote: an escaped surrogate that does not pair with the next escape becomes U+FFFD
    const text = String.raw`["a\ud800b", "\udc00", "\ud83d\ude00", "\ud800\ud83d\ude00", "\ude00\ud83d"]`;
    const want = ['a\ufffdb', '\ufffd', '\ud83d\ude00', '\ufffd\ud83d\ude00', '\ufffd\ufffd'];
    expect(parseJsonArray(text)?.elements.map((e) => e.value)).toEqual(want);
    const slow = parseJsonArray(text.replace(']', ', 1]'));
    expect(slow?.nonString).toBeDefined();
    expect(slow?.elements.map((e) => e.value)).toEqual(want);
  });

  it('is not a JSON array when a number overflows float64 (Go: UnmarshalTypeError, so the shell form)', () => {
    expect(parseJsonArray('["a", 1e400]')).toBeUndefined();
    expect(parseJsonArray('["a", {"k": [-1e999]}]')).toBeUndefined();
    // in range: still an array with a non-string element
    expect(parseJsonArray('["a", 1e300, 1e-400]')?.nonString).toBe(6);
  });

  it('finds the non-string in deeply nested values, and nests at most as deep as Go (10000)', () => {
    const nested = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
    // depth 3000: a non-string element (the grammar overflowed the stack here)
    expect(parseJsonArray(`["a", ${nested(2999)}, "b"]`)).toEqual({ elements: [{ value: 'a', offset: 1 }, { value: 'b', offset: 6 + 2 * 2999 + 2 }], nonString: 6 });
    expect(parseJsonArray(`["a", ${'{"k":'.repeat(9999)}1${'}'.repeat(9999)}]`)?.nonString).toBe(6);
    // depth 10001: Go's scanner fails ("exceeded max depth"), so BuildKit takes the shell form
    expect(parseJsonArray(`["a", ${nested(10000)}]`)).toBeUndefined();
  });
});

/** The JSON string literal that starts at `offset`, decoded. */
function stringAt(text: string, offset: number): string {
  const m = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(offset));
  if (m === null) throw new Error(`no string at ${offset} in ${text}`);
  return JSON.parse(m[0]) as string;
}
