import { describe, expect, test } from 'vitest';
import { escapeId, selectsBuildpacks, shQuote } from './wire.js';

describe('wire helpers', () => {
  test.for([
    { text: '# syntax=kiln/buildpacks\n[_]\n', ok: true },
    { text: '#syntax = kiln/buildpacks\n', ok: true },
    { text: '\uFEFF# syntax=kiln/buildpacks', ok: true },
    { text: '# syntax=kiln/buildpacks:1 extra\n', ok: false },
    { text: '# syntax=kiln/buildpacksx\n', ok: false },
    { text: '[_]\n# syntax=kiln/buildpacks\n', ok: false },
    { text: '# syntax=kiln/ts\n', ok: false },
  ])('selectsBuildpacks($text) = $ok', ({ text, ok }) => {
    expect(selectsBuildpacks(text)).toBe(ok);
  });
  test('escapeId and shQuote', () => {
    expect(escapeId('kt/a/b')).toBe('kt_a_b');
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  });
});
