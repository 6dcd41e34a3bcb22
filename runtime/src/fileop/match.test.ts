import { describe, expect, test } from 'vitest';
import { containsWildcards, goMatch, splitWildcards } from './match.js';

describe('goMatch (Go filepath.Match)', () => {
  test.for([
    ['abc', 'abc', true],
    ['*', 'abc', true],
    ['*c', 'abc', true],
    ['a*', 'a', true],
    ['a*/b', 'abc/b', true],
    ['a*/b', 'a/c/b', false],
    ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
    ['ab[c]', 'abc', true],
    ['ab[b-d]', 'abc', true],
    ['ab[e-g]', 'abc', false],
    ['ab[^c]', 'abc', false],
    ['ab[^b-d]', 'abe', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'ab', false],
    ['a?b', 'a☺b', true],
    ['a?b', 'a/b', false],
    ['a*b', 'a/b', false],
    ['[\\-]', '-', true],
    ['[x\\-]', 'z', false],
    ['*.txt', 'a.txt', true],
    ['*.txt', '.txt', true],
  ] as const)('%s ~ %s = %s', ([p, n, want]) => {
    expect(goMatch(p, n)).toBe(want);
  });

  test.for(['[', '[^', '[^bc', 'a[', '[]a]', '[-]', '[x-]', 'a\\', '[a-b-c]'])('bad pattern %s', (p) => {
    expect(() => goMatch(p, 'x')).toThrow(expect.objectContaining({ code: 'FILEOP_INVALID_PATTERN' }));
  });
});

describe('wildcard splitting (fsutil)', () => {
  test('containsWildcards honours escapes', () => {
    expect(containsWildcards('a*')).toBe(true);
    expect(containsWildcards('a\\*')).toBe(false);
    expect(containsWildcards('[ab]')).toBe(true);
    expect(containsWildcards('plain')).toBe(false);
  });
  test('splitWildcards', () => {
    expect(splitWildcards('/a/b*/c')).toEqual(['/a', 'b*/c']);
    expect(splitWildcards('/*.txt')).toEqual(['/', '*.txt']);
    expect(splitWildcards('/a/b')).toEqual(['/a/b', '']);
    expect(splitWildcards('a/?')).toEqual(['a', '?']);
  });
});
