import { describe, expect, test } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSourcePolicyFile } from './file.js';
import { parseSourcePolicy } from './policy.js';
import { compileGoRegexp, goReplaceAll, PatternError } from './pattern.js';

const parse = (doc: unknown): ReturnType<typeof parseSourcePolicy> => parseSourcePolicy(typeof doc === 'string' ? doc : JSON.stringify(doc), 'policy.json');
const fails = (doc: unknown, code: string, message: string | RegExp): void => {
  let err: unknown;
  try {
    parse(doc);
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code });
  expect((err as Error).message).toMatch(message);
};

describe('parseSourcePolicy', () => {
  test('the file format buildctl and buildx read: names or numbers, Go JSON defaults, keys in any case', () => {
    const p = parse({
      version: 1,
      rules: [
        { action: 'CONVERT', selector: { identifier: 'docker-image://a' }, updates: { identifier: 'docker-image://b', attrs: { k: 'v' } } },
        { selector: { identifier: 'docker-image://c', match_type: 1 } },
        { Action: 1, Selector: { Identifier: 'x.*', Match_Type: 'REGEX', constraints: [{ key: 'k', value: 'v', condition: 'NOTEQUAL' }, { key: 'j' }] } },
      ],
    });
    expect(p.version).toBe(1);
    expect(p.rules.map((r) => [r.index, r.action, r.selector.matchType])).toEqual([
      [0, 'CONVERT', 'WILDCARD'],
      [1, 'ALLOW', 'EXACT'],
      [2, 'DENY', 'REGEX'],
    ]);
    expect(p.rules[0]?.updates).toEqual({ identifier: 'docker-image://b', attrs: new Map([['k', 'v']]) });
    expect(p.rules[2]?.selector.constraints.map((c) => [c.key, c.value, c.condition])).toEqual([
      ['k', 'v', 'NOTEQUAL'],
      ['j', '', 'EQUAL'],
    ]);
    expect(parse('{}').rules).toEqual([]);
  });

  test('errors name the file and the JSON path, with what to write instead', () => {
    fails({ rules: [{ action: 'DENY', selector: { identifier: 'a' } }, {}, { action: 'PIN', selector: { identifier: 'a' } }] }, 'KLN0951', 'policy.json: rules[1].selector: missing');
    fails({ rules: [{ action: 'PIN', selector: { identifier: 'a' } }] }, 'KLN0951', 'policy.json: rules[0].action: unknown action "PIN"');
    fails({ rules: [{ action: 'deny', selector: { identifier: 'a' } }] }, 'KLN0951', 'rules[0].action: unknown action "deny"');
    fails({ rules: [{ action: 7, selector: { identifier: 'a' } }] }, 'KLN0951', 'rules[0].action: unknown action 7');
    fails({ rules: [{ action: 'DENY', selector: { identifier: 'a', matchType: 'REGEX' } }] }, 'KLN0951', 'rules[0].selector.matchType: unknown field (did you mean "match_type"?)');
    fails({ rules: [{ action: 'DENY', selector: { identifier: '' } }] }, 'KLN0951', 'rules[0].selector.identifier: missing');
    fails({ rules: [{ action: 'CONVERT', selector: { identifier: 'a' } }] }, 'KLN0951', 'rules[0].updates: a CONVERT rule needs updates');
    fails({ rules: [{ action: 'CONVERT', selector: { identifier: 'a' }, updates: { attrs: { k: 1 } } }] }, 'KLN0951', 'rules[0].updates.attrs["k"]: expected a string, got number 1');
    fails({ rules: [{ action: 'DENY', selector: { identifier: 'a(', match_type: 'REGEX' } }] }, 'KLN0951', /rules\[0\]\.selector\.identifier: .*/);
    fails({ rules: [{ action: 'DENY', selector: { identifier: 'docker-image://**' } }] }, 'KLN0951', 'rules[0].selector.identifier: invalid wildcard: "**"');
    fails({ rules: [{ action: 'DENY', selector: { identifier: 'a', constraints: [{ key: 'k', value: '[', condition: 'MATCHES' }] } }] }, 'KLN0951', /rules\[0\]\.selector\.constraints\[0\]\.value: /);
    fails({ rules: {} }, 'KLN0951', 'policy.json: rules: expected an array, got an object');
    fails({ version: '1' }, 'KLN0951', 'policy.json: version: expected an integer, got string "1"');
    fails('[]', 'KLN0951', 'policy.json: expected an object, got an array');
    // typo tour 4: an update naming a group the selector lacks expanded to nothing (busybox: at the FROM)
    const convert = (identifier: string, update: string, matchType = 'WILDCARD') => ({ rules: [{ action: 'CONVERT', selector: { identifier, match_type: matchType }, updates: { identifier: update } }] });
    fails(convert('docker-image://docker.io/library/busybox:*', 'docker-image://docker.io/library/busybox:${2}'), 'KLN0951', 'rules[0].updates.identifier: "2" names no group of the selector (its 1 "*": ${1})');
    fails(convert('docker-image://docker.io/library/*:*', 'docker-image://mirror.local/$1x:${2}'), 'KLN0951', '"1x" names no group of the selector');
    fails(convert('^docker-image://(?P<img>[a-z]+)$', 'docker-image://m/${image}', 'REGEX'), 'KLN0951', '"image" names no group of the selector (its groups: ${1}, ${img})');
    expect(parse(convert('docker-image://docker.io/library/*:*', 'docker-image://mirror.local/${1}x:${2}$$')).rules).toHaveLength(1);
    expect(parse(convert('^docker-image://(?P<img>[a-z]+)$', 'docker-image://m/${img}:$1', 'REGEX')).rules).toHaveLength(1);
    fails('{"rules": [\n  {"action": "DENY",}\n]}', 'KLN0951', 'policy.json:2:21: invalid JSON: expected a key after the comma (JSON allows no trailing comma), found "}"');
    // V8 names no position for this one, and its message held the file's tail with its newline
    fails('{"rules": [\n  {"action": "DENY", "selector": {"identifier": "docker-image://*"}},\n]}\n', 'KLN0951', 'policy.json:3:1: invalid JSON: expected a value after the comma (JSON allows no trailing comma), found "]"');
  });

  test('a policy file that cannot be read is KLN0950, naming the file as given', async () => {
    await expect(readSourcePolicyFile('/nonexistent/kiln-policy.json', 'kiln-policy.json')).rejects.toMatchObject({ code: 'KLN0950', message: 'cannot read source policy file kiln-policy.json: no such file' });
    const dir = await mkdtemp(join(tmpdir(), 'kiln-policy-'));
    await expect(readSourcePolicyFile(dir)).rejects.toMatchObject({ code: 'KLN0950', message: expect.stringContaining('it is a directory') });
    await writeFile(join(dir, 'p.json'), '{"rules": [{"action": "DENY", "selector": {"identifier": "docker-image://*"}}]}');
    expect((await readSourcePolicyFile(join(dir, 'p.json'))).rules).toHaveLength(1);
  });
});

describe('Go regexp semantics', () => {
  test('ReplaceAllString skips an empty match right after a match, as Go does', () => {
    expect(goReplaceAll('baaac', compileGoRegexp('a*'), 'X')).toBe('XbXcX');
    expect(goReplaceAll('abc', compileGoRegexp('(b)'), '[$1]')).toBe('a[b]c');
    // $1x is the group named "1x" (empty); ${1}x is group 1 then x.
    expect(goReplaceAll('abc', compileGoRegexp('(b)'), '$1x|${1}x')).toBe('a|bxc');
  });

  test('leading flags and \\A \\z become JavaScript flags and anchors; \\Q is refused', () => {
    expect(compileGoRegexp('(?i)^BUSYBOX').test('busybox')).toBe(true);
    expect(compileGoRegexp('\\Aab\\z').test('ab')).toBe(true);
    expect(compileGoRegexp('\\Aab\\z').test('xab')).toBe(false);
    // Go has no \A in a class (JavaScript would read it as the letter A).
    expect(() => compileGoRegexp('[\\A]')).toThrow(/not an escape/);
    expect(() => compileGoRegexp('\\Qa.b\\E')).toThrow(/not supported/);
    // \A and \z stay the input's ends under (?m), where ^ and $ would match at a line end.
    expect(compileGoRegexp('(?m)\\Ab\\z').test('a\nb')).toBe(false);
    expect(compileGoRegexp('(?m)^b$').test('a\nb')).toBe(true);
  });

  test('ASCII classes [[:alpha:]] match as in Go (JavaScript reads them as a class of ":alph" and a "]")', () => {
    const tag = compileGoRegexp('^docker-image://docker\\.io/library/alpine:[[:digit:]]+\\.[[:digit:]]+$');
    expect(tag.test('docker-image://docker.io/library/alpine:3.18')).toBe(true);
    expect(tag.test('docker-image://docker.io/library/alpine:latest')).toBe(false);
    expect(compileGoRegexp('^[[:alpha:]_]+$').test('Abc_d')).toBe(true);
    expect(compileGoRegexp('^[[:alpha:]_]+$').test('a:]')).toBe(false);
    expect(compileGoRegexp('^[[:^digit:]]+$').test('abc')).toBe(true);
    expect(compileGoRegexp('^[[:^digit:]]+$').test('a1')).toBe(false);
    expect(() => compileGoRegexp('[[:letters:]]')).toThrow(/invalid character class/);
  });

  test('JavaScript-only syntax Go refuses (look-around, back-references, \\u, \\k, unknown letter escapes) is refused, as buildctl would', () => {
    for (const re of ['^docker-image://(?!docker\\.io/)', '(?<=@)sha256', 'a(?=b)', '(a)\\1', '(?<n>a)\\k<n>', '\\u0041', '\\e', '[\\b]', '\\8']) {
      expect(() => compileGoRegexp(re), re).toThrow(PatternError);
    }
    // What Go accepts: octal codes, control and Perl escapes, escaped punctuation, named groups.
    expect(compileGoRegexp('^\\101\\t\\d\\-\\.(?<n>x)$').test('A\t1-.x')).toBe(true);
    expect(compileGoRegexp('[\\d\\-\\n]').test('-')).toBe(true);
  });

  test('\\x{…} is a code point; \\pL and \\p{…} (the letter p to JavaScript) are refused', () => {
    expect(compileGoRegexp('^a\\x{2d}b$').test('a-b')).toBe(true);
    expect(compileGoRegexp('^a\\x{2d}b$').test('ax{2d}b')).toBe(false);
    expect(() => compileGoRegexp('\\pL+')).toThrow(/Unicode classes/);
    expect(() => compileGoRegexp('[\\p{Greek}]')).toThrow(/Unicode classes/);
  });
});
