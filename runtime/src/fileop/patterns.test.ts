import { describe, expect, test } from 'vitest';
import { IncludeMatcher, PatternMatcher } from './patterns.js';

describe('PatternMatcher (moby patternmatcher)', () => {
  test.for([
    [['*.go'], 'a.go', true],
    [['*.go'], 'dir/a.go', false],
    [['**/*.go'], 'dir/sub/a.go', true],
    [['**/*.go'], 'a.go', true],
    [['dir/**'], 'dir/a/b', true],
    [['dir'], 'dir/a/b', true], // a matching parent matches everything below
    [['dir/*'], 'dir/a/b', true],
    [['a/**/b'], 'a/b', true],
    [['a/**/b'], 'a/x/y/b', true],
    [['a/**/b'], 'a/x/y/c', false],
    [['*', '!keep.txt'], 'keep.txt', false],
    [['*', '!keep.txt'], 'drop.txt', true],
    [['*', '!keep.txt', 'keep*'], 'keep.txt', true], // last match wins
    [['./docs//'], 'docs/x.md', true],
    [['/docs'], 'docs/x.md', true],
    [['a+b(c)'], 'a+b(c)', true],
    [['[ab].txt'], 'b.txt', true],
    [['?.txt'], 'ab.txt', false],
  ] as const)('%j matches %s = %s', ([pats, path, want]) => {
    expect(new PatternMatcher(pats).matches(path)).toBe(want);
  });

  test('rejects a lone "!" and bad syntax', () => {
    expect(() => new PatternMatcher(['!'])).toThrow(expect.objectContaining({ code: 'FILEOP_INVALID_PATTERN' }));
    expect(() => new PatternMatcher(['a['])).toThrow(expect.objectContaining({ code: 'FILEOP_INVALID_PATTERN' }));
  });
});

describe('IncludeMatcher (fsutil include patterns)', () => {
  test('full and partial matches', () => {
    const m = new IncludeMatcher(['a/*/c', 'docs']);
    expect(m.match('a', true)).toEqual({ full: false, partial: true });
    expect(m.match('a/b', true)).toEqual({ full: false, partial: true });
    expect(m.match('a/b/c', false)).toEqual({ full: true, partial: false });
    expect(m.match('a/b/d', false)).toEqual({ full: false, partial: false });
    expect(m.match('x', true)).toEqual({ full: false, partial: false });
    expect(m.match('docs/x/y', false)).toEqual({ full: true, partial: false });
  });
  test('** keeps every directory below the fixed prefix open', () => {
    const m = new IncludeMatcher(['src/**/*.ts']);
    expect(m.match('src/a/b', true).partial).toBe(true);
    expect(m.match('lib', true).partial).toBe(false);
    expect(m.match('src/a/b/x.ts', false).full).toBe(true);
    expect(m.match('src/a/b/x.js', false).full).toBe(false);
  });
});
