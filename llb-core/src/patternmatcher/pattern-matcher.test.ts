import { describe, expect, test } from 'vitest';
import { PatternMatcher, matches, NO_MATCH_INFO, type MatchInfo } from './pattern-matcher.js';
import { parseDockerignore } from './ignorefile.js';

// Tables from moby/patternmatcher patternmatcher_test.go (TestMatches, TestMatch) and
// ignorefile_test.go (TestReadAll).
type Kind = 'fail' | 'exact' | 'inexact';
const single: ReadonlyArray<readonly [string, string, Kind]> = [
  ['**', 'file', 'exact'],
  ['**', 'file/', 'exact'],
  ['**/', 'file', 'exact'],
  ['**/', 'file/', 'exact'],
  ['**', '/', 'exact'],
  ['**/', '/', 'exact'],
  ['**', 'dir/file', 'exact'],
  ['**/', 'dir/file', 'exact'],
  ['**', 'dir/file/', 'exact'],
  ['**/', 'dir/file/', 'exact'],
  ['**/**', 'dir/file', 'exact'],
  ['**/**', 'dir/file/', 'exact'],
  ['dir/**', 'dir/file', 'exact'],
  ['dir/**', 'dir/file/', 'exact'],
  ['dir/**', 'dir/dir2/file', 'exact'],
  ['dir/**', 'dir/dir2/file/', 'exact'],
  ['**/dir', 'dir', 'exact'],
  ['**/dir', 'dir/file', 'inexact'],
  ['**/dir2/*', 'dir/dir2/file', 'exact'],
  ['**/dir2/*', 'dir/dir2/file/', 'inexact'],
  ['**/dir2/**', 'dir/dir2/dir3/file', 'exact'],
  ['**/dir2/**', 'dir/dir2/dir3/file/', 'exact'],
  ['**file', 'file', 'exact'],
  ['**file', 'dir/file', 'exact'],
  ['**/file', 'dir/file', 'exact'],
  ['**file', 'dir/dir/file', 'exact'],
  ['**/file', 'dir/dir/file', 'exact'],
  ['**/file*', 'dir/dir/file', 'exact'],
  ['**/file*', 'dir/dir/file.txt', 'exact'],
  ['**/file*txt', 'dir/dir/file.txt', 'exact'],
  ['**/file*.txt', 'dir/dir/file.txt', 'exact'],
  ['**/file*.txt*', 'dir/dir/file.txt', 'exact'],
  ['**/**/*.txt', 'dir/dir/file.txt', 'exact'],
  ['**/**/*.txt2', 'dir/dir/file.txt', 'fail'],
  ['**/*.txt', 'file.txt', 'exact'],
  ['**/**/*.txt', 'file.txt', 'exact'],
  ['a**/*.txt', 'a/file.txt', 'exact'],
  ['a**/*.txt', 'a/dir/file.txt', 'exact'],
  ['a**/*.txt', 'a/dir/dir/file.txt', 'exact'],
  ['a/*.txt', 'a/dir/file.txt', 'fail'],
  ['a/*.txt', 'a/file.txt', 'exact'],
  ['a/*.txt**', 'a/file.txt', 'exact'],
  ['a[b-d]e', 'ae', 'fail'],
  ['a[b-d]e', 'ace', 'exact'],
  ['a[b-d]e', 'aae', 'fail'],
  ['a[^b-d]e', 'aze', 'exact'],
  ['.*', '.foo', 'exact'],
  ['.*', 'foo', 'fail'],
  ['abc.def', 'abcdef', 'fail'],
  ['abc.def', 'abc.def', 'exact'],
  ['abc.def', 'abcZdef', 'fail'],
  ['abc?def', 'abcZdef', 'exact'],
  ['abc?def', 'abcdef', 'fail'],
  ['**/foo/bar', 'foo/bar', 'exact'],
  ['**/foo/bar', 'dir/foo/bar', 'exact'],
  ['**/foo/bar', 'dir/dir2/foo/bar', 'exact'],
  ['abc/**', 'abc', 'fail'],
  ['abc/**', 'abc/def', 'exact'],
  ['abc/**', 'abc/def/ghi', 'exact'],
  ['**/.foo', '.foo', 'exact'],
  ['**/.foo', 'bar.foo', 'fail'],
  ['a(b)c/def', 'a(b)c/def', 'exact'],
  ['a(b)c/def', 'a(b)c/xyz', 'fail'],
  ['a.|)$(}+{bc', 'a.|)$(}+{bc', 'exact'],
  ['dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'exact'],
  ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'exact'],
  ['a\\\\', 'a\\', 'exact'],
  ['a\\*b', 'a*b', 'exact'],
];
const multi: ReadonlyArray<readonly [readonly string[], string, Kind]> = [
  [['**', '!util/docker/web'], 'util/docker/web/foo', 'fail'],
  [['**', '!util/docker/web', 'util/docker/web/foo'], 'util/docker/web/foo', 'exact'],
  [['**', '!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'fail'],
  [['**', '!dist/*.whl'], 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', 'fail'],
];

function viaParents(pm: PatternMatcher, text: string): boolean {
  const parent = text.includes('/') ? text.slice(0, text.lastIndexOf('/')) : '.';
  let info: MatchInfo = NO_MATCH_INFO;
  if (parent !== '.' && parent !== '') {
    const dirs = parent.split('/');
    for (let i = 0; i < dirs.length; i++) info = pm.matchesUsingParentResults(dirs.slice(0, i + 1).join('/'), info).info;
  }
  return pm.matchesUsingParentResults(text, info).matched;
}

describe('PatternMatcher (moby/patternmatcher TestMatches)', () => {
  test.for(single)('MatchesExact %s ~ %s', ([pattern, text, kind]) => {
    expect(new PatternMatcher([pattern]).matchesExact(text)).toBe(kind === 'exact');
  });
  test.for(single)('MatchesOrParentMatches %s ~ %s', ([pattern, text, kind]) => {
    expect(new PatternMatcher([pattern]).matchesOrParentMatches(text)).toBe(kind !== 'fail');
  });
  test.for(single)('MatchesUsingParentResults %s ~ %s', ([pattern, text, kind]) => {
    const pm = new PatternMatcher([pattern]);
    expect(viaParents(pm, text)).toBe(kind !== 'fail');
    expect(pm.matchesUsingParentResults(text, NO_MATCH_INFO).matched).toBe(kind !== 'fail');
  });
  test.for(multi)('multi-pattern %j ~ %s', ([patterns, text, kind]) => {
    const pm = new PatternMatcher(patterns);
    expect(pm.matchesOrParentMatches(text)).toBe(kind !== 'fail');
    expect(viaParents(pm, text)).toBe(kind !== 'fail');
    expect(pm.matchesUsingParentResults(text, NO_MATCH_INFO).matched).toBe(kind !== 'fail');
  });
});

// go's filepath.Match tests as run by patternmatcher's TestMatch through Matches().
const goMatch: ReadonlyArray<readonly [string, string, boolean | 'bad']> = [
  ['abc', 'abc', true], ['*', 'abc', true], ['*c', 'abc', true], ['a*', 'a', true], ['a*', 'abc', true],
  ['a*', 'ab/c', true], ['a*/b', 'abc/b', true], ['a*/b', 'a/c/b', false], ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true], ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false], ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true], ['a*b?c*x', 'abxbbxdbxebxczzy', false], ['ab[c]', 'abc', true], ['ab[b-d]', 'abc', true],
  ['ab[e-g]', 'abc', false], ['ab[^c]', 'abc', false], ['ab[^b-d]', 'abc', false], ['ab[^e-g]', 'abc', true], ['a\\*b', 'a*b', true],
  ['a\\*b', 'ab', false], ['a?b', 'a☺b', true], ['a[^a]b', 'a☺b', true], ['a???b', 'a☺b', false], ['a[^a][^a][^a]b', 'a☺b', false],
  ['[a-ζ]*', 'α', true], ['*[a-ζ]', 'A', false], ['a?b', 'a/b', false], ['a*b', 'a/b', false], ['[\\]a]', ']', true],
  ['[\\-]', '-', true], ['[x\\-]', 'x', true], ['[x\\-]', '-', true], ['[x\\-]', 'z', false], ['[\\-x]', 'x', true],
  ['[\\-x]', '-', true], ['[\\-x]', 'a', false], ['[]a]', ']', 'bad'], ['[-]', '-', 'bad'], ['[x-]', 'x', 'bad'],
  ['[x-]', '-', 'bad'], ['[x-]', 'z', 'bad'], ['[-x]', 'x', 'bad'], ['[-x]', '-', 'bad'], ['[-x]', 'a', 'bad'], ['\\', 'a', 'bad'],
  ['[a-b-c]', 'a', 'bad'], ['[', 'a', 'bad'], ['[^', 'a', 'bad'], ['[^bc', 'a', 'bad'], ['a[', 'a', 'bad'], ['a[', 'ab', 'bad'],
  ['*x', 'xxx', true],
];

describe('Matches (go filepath.Match table)', () => {
  test.for(goMatch)('%s ~ %s', ([pattern, s, want]) => {
    if (want === 'bad') {
      expect(() => matches(s, [pattern])).toThrow(expect.objectContaining({ code: 'LLB_BAD_PATTERN' }));
    } else {
      expect(matches(s, [pattern])).toBe(want);
    }
  });

  test('exclusions, folders and errors', () => {
    expect(matches('fileutils.go', ['*'])).toBe(true);
    expect(matches('fileutils.go', ['*.go'])).toBe(true);
    expect(matches('fileutils.go', ['!fileutils.go', '*.go'])).toBe(true);
    expect(matches('docs/README.md', ['docs', '!docs/README.md'])).toBe(false);
    expect(matches('docs/README.md', ['docs/', '!docs/README.md'])).toBe(false);
    expect(matches('docs/README.md', ['docs/*', '!docs/README.md'])).toBe(false);
    expect(matches('fileutils.go', ['*.go', '!fileutils.go'])).toBe(false);
    expect(matches('.', ['*.go'])).toBe(false);
    expect(matches('/any/path/there', [])).toBe(false);
    expect(() => matches('fileutils.go', ['!'])).toThrow(expect.objectContaining({ code: 'LLB_BAD_PATTERN' }));
    expect(() => matches('/any/path/there', ['['])).toThrow(expect.objectContaining({ code: 'LLB_BAD_PATTERN' }));
  });

  test('clean patterns: empty stripped, spaces trimmed, exceptions flagged', () => {
    expect(new PatternMatcher(['docs', 'config', '']).patterns).toHaveLength(2);
    expect(new PatternMatcher(['docs', '  !docs/README.md']).exclusions).toBe(true);
    expect(new PatternMatcher(['docs', '!docs/README.md  ']).exclusions).toBe(true);
    expect(new PatternMatcher(['docs', 'config']).exclusions).toBe(false);
  });

  test('a pattern whose class Go accepts but its regexp rejects fails at match time, repeatedly', () => {
    const pm = new PatternMatcher(['[Local-Only]/']);
    expect(() => pm.matchesOrParentMatches('x')).toThrow(expect.objectContaining({ code: 'LLB_BAD_PATTERN' }));
    expect(() => pm.matchesOrParentMatches('x')).toThrow(expect.objectContaining({ code: 'LLB_BAD_PATTERN' }));
  });
});

describe('parseDockerignore (ignorefile.ReadAll)', () => {
  test('comments, blanks, leading slash, inverted absolute path', () => {
    const content = 'test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ';
    expect(parseDockerignore(content)).toEqual(['test1', 'test2', 'a/file/here', 'lastfile', '!inverted/abs/path', '!', '!']);
  });
  test('BOM, CRLF and cleaning', () => {
    expect(parseDockerignore('\uFEFFnode_modules\r\n./build/../dist/\r\n  *.log  ')).toEqual(['node_modules', 'dist', '*.log']);
  });
});
