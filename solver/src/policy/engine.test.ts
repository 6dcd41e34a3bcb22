import { describe, expect, test } from 'vitest';
import { SourcePolicyEngine, redactIdentifier, type PolicySource } from './engine.js';
import { parseSourcePolicy } from './policy.js';

type RuleJson = Record<string, unknown>;

const engine = (...rules: RuleJson[]): SourcePolicyEngine => new SourcePolicyEngine([parseSourcePolicy(JSON.stringify({ rules }), 'policy.json')]);
const src = (identifier: string, attrs: Record<string, string> = {}): PolicySource => ({ identifier, attrs: new Map(Object.entries(attrs)) });
const convert = (from: string, to: string, extra: RuleJson = {}): RuleJson => ({ action: 'CONVERT', selector: { identifier: from, ...extra }, updates: { identifier: to } });
const deny = (id: string, extra: RuleJson = {}): RuleJson => ({ action: 'DENY', selector: { identifier: id, ...extra } });
const allow = (id: string): RuleJson => ({ action: 'ALLOW', selector: { identifier: id } });

const BUSYBOX = 'docker-image://docker.io/library/busybox:latest';
const ALPINE = 'docker-image://docker.io/library/alpine:latest';
const PIN = `sha256:${'c'.repeat(64)}`;

describe('matching', () => {
  test('an exact identifier, and only it', () => {
    const e = engine(deny(BUSYBOX, { match_type: 'EXACT' }));
    expect(() => e.evaluate(src(BUSYBOX))).toThrow(expect.objectContaining({ code: 'KLN0952' }));
    expect(e.evaluate(src(ALPINE)).mutated).toBe(false);
    expect(e.evaluate(src('docker-image://docker.io/library/busybox:latestx')).mutated).toBe(false);
  });

  test('a wildcard: * is any run of characters, anchored at both ends, other characters literal', () => {
    const e = engine(deny('docker-image://docker.io/library/*'));
    expect(() => e.evaluate(src(ALPINE))).toThrow(/denied by policy/);
    expect(e.evaluate(src('docker-image://ghcr.io/library/alpine')).mutated).toBe(false);
    expect(e.evaluate(src('docker-image://docker.io/libraryX/alpine')).mutated).toBe(false);
    // `.` is a dot, not any character.
    const dot = engine(deny('docker-image://docker.io/x'));
    expect(dot.evaluate(src('docker-image://dockerXio/x')).mutated).toBe(false);
  });

  test('a regexp matches anywhere in the identifier unless anchored (Go MatchString)', () => {
    expect(() => engine(deny('busybox', { match_type: 'REGEX' })).evaluate(src(BUSYBOX))).toThrow(/denied/);
    expect(engine(deny('^busybox', { match_type: 'REGEX' })).evaluate(src(BUSYBOX)).mutated).toBe(false);
    // Go's escapes outside classes (\-) are accepted, as BuildKit's own tests write them.
    expect(() => engine(deny('^docker\\-image://docker\\.io/library/busy.*$', { match_type: 2 })).evaluate(src(BUSYBOX))).toThrow(/denied/);
  });

  test('a selector without a digest applies to the identifier pinned to one', () => {
    const e = engine(deny(BUSYBOX));
    expect(() => e.evaluate(src(`${BUSYBOX}@${PIN}`))).toThrow(/denied/);
    // Not for other schemes: an @ there is part of the URL.
    expect(engine(deny('https://example.com/a')).evaluate(src('https://example.com/a@b')).mutated).toBe(false);
  });

  test('patterns see a pinned image without its digest, as BuildKit\'s matcher cuts it off', () => {
    const pinned = `${BUSYBOX}@${PIN}`;
    expect(() => engine(deny('docker-image://docker.io/library/*:latest')).evaluate(src(pinned))).toThrow(/denied/);
    expect(() => engine(deny('^docker-image://docker\\.io/library/busybox:latest$', { match_type: 'REGEX' })).evaluate(src(pinned))).toThrow(/denied/);
    // The digest is not part of what a pattern matches (BuildKit: `*@sha256:*` never matches).
    expect(engine(deny('docker-image://*@sha256:*')).evaluate(src(pinned)).mutated).toBe(false);
    // Other schemes are matched whole.
    expect(() => engine(deny('https://*@b')).evaluate(src('https://example.com/a@b'))).toThrow(/denied/);
  });

  test('attribute constraints: EQUAL (a missing attribute is ""), NOTEQUAL, MATCHES', () => {
    const https = 'https://example.com/file';
    const eq = engine(deny('https://*', { constraints: [{ key: 'http.checksum', value: '' }] }));
    expect(() => eq.evaluate(src(https))).toThrow(/denied/);
    expect(eq.evaluate(src(https, { 'http.checksum': 'sha256:x' })).mutated).toBe(false);
    const ne = engine(deny('https://*', { constraints: [{ key: 'http.filename', value: 'a', condition: 'NOTEQUAL' }] }));
    expect(() => ne.evaluate(src(https, { 'http.filename': 'b' }))).toThrow(/denied/);
    expect(ne.evaluate(src(https, { 'http.filename': 'a' })).mutated).toBe(false);
    const re = engine(deny('https://*', { constraints: [{ key: 'http.filename', value: '\\.sh$', condition: 'MATCHES' }] }));
    expect(() => re.evaluate(src(https, { 'http.filename': 'install.sh' }))).toThrow(/denied/);
    expect(re.evaluate(src(https, { 'http.filename': 'install.txt' })).mutated).toBe(false);
  });
});

describe('messages', () => {
  test('the user and password of a URL source never reach an error; an image keeps its digest', () => {
    const url = 'https://ci-user:s3cret-token@files.example.com/tool.tgz';
    let err: unknown;
    try {
      engine(deny('https://*')).evaluate(src(url));
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'KLN0952', identifier: 'https://files.example.com/tool.tgz' });
    expect(String((err as Error).message)).not.toMatch(/s3cret|ci-user/);
    // Converted to an authenticated mirror, then denied: neither URL shows its credentials.
    const mirror = engine(convert('https://files.example.com/*', 'https://bot:m1rror-pass@mirror.local/${1}'), deny('https://mirror.local/*'), deny('https://*@mirror.local/*'));
    expect(() => mirror.evaluate(src('https://files.example.com/a.tgz'))).toThrow(/^source "https:\/\/mirror\.local\/a\.tgz" \(converted from "https:\/\/files\.example\.com\/a\.tgz"\) denied by policy: rules\[2\] \(DENY "https:\/\/mirror\.local\/\*"\)/);
    expect(() => engine(convert('https://*', 'x:y@host/z')).evaluate(src(url))).toThrow(expect.objectContaining({ code: 'KLN0954', message: expect.not.stringContaining('s3cret') }));
    expect(() => engine(deny(BUSYBOX)).evaluate(src(`${BUSYBOX}@${PIN}`))).toThrow(`source "${BUSYBOX}@${PIN}" denied`);
  });
});

describe('ordering', () => {
  test('for ALLOW and DENY the last matching rule wins', () => {
    expect(engine(allow(BUSYBOX), deny(BUSYBOX), allow(BUSYBOX)).evaluate(src(BUSYBOX)).mutated).toBe(false);
    expect(() => engine(allow(BUSYBOX), deny('docker-image://*')).evaluate(src(BUSYBOX))).toThrow(/rules\[1\]/);
    // ALLOW after a wildcard DENY exempts one image.
    const e = engine(deny('docker-image://docker.io/library/*'), allow(ALPINE));
    expect(e.evaluate(src(ALPINE)).mutated).toBe(false);
    expect(() => e.evaluate(src(BUSYBOX))).toThrow(expect.objectContaining({ code: 'KLN0952', ruleIndex: 0, identifier: BUSYBOX }));
  });

  test('a conversion is evaluated again from the first rule: a DENY before the CONVERT applies to its result', () => {
    const e = engine(deny('docker-image://docker.io/library/alpine:*'), convert(BUSYBOX, ALPINE));
    expect(() => e.evaluate(src(BUSYBOX))).toThrow(`source "${ALPINE}" (converted from "${BUSYBOX}") denied by policy: rules[0]`);
  });

  test('CONVERT then ALLOW and DENY of the result: the later DENY still wins; DENY then ALLOW allows it', () => {
    const e = engine(convert(BUSYBOX, ALPINE), allow(ALPINE), deny('docker-image://docker.io/library/alpine:*'));
    expect(() => e.evaluate(src(BUSYBOX))).toThrow(expect.objectContaining({ code: 'KLN0952', identifier: ALPINE, ruleIndex: 2 }));
    const ok = engine(convert(BUSYBOX, ALPINE), deny('docker-image://*'), allow(ALPINE));
    expect(ok.evaluate(src(BUSYBOX))).toMatchObject({ identifier: ALPINE, mutated: true });
  });

  test('conversions chain, and a loop fails after 20 (KLN0953)', () => {
    const chain = engine(convert(BUSYBOX, ALPINE), convert(ALPINE, 'docker-image://docker.io/library/debian:buster'), convert('docker-image://docker.io/library/debian:buster', 'docker-image://docker.io/library/debian:bullseye'));
    expect(chain.evaluate(src(BUSYBOX)).identifier).toBe('docker-image://docker.io/library/debian:bullseye');
    const loop = engine(convert(BUSYBOX, ALPINE), convert(ALPINE, BUSYBOX));
    expect(() => loop.evaluate(src(BUSYBOX))).toThrow(expect.objectContaining({ code: 'KLN0953' }));
  });

  test('several policies are read in turn; a DENY in any of them denies', () => {
    const two = new SourcePolicyEngine([parseSourcePolicy(JSON.stringify({ rules: [allow(BUSYBOX)] }), 'a.json'), parseSourcePolicy(JSON.stringify({ rules: [deny(BUSYBOX)] }), 'b.json')]);
    expect(() => two.evaluate(src(BUSYBOX))).toThrow(/in b\.json/);
  });
});

describe('conversion', () => {
  test('pins a tag to a digest; the pinned identifier is not converted again', () => {
    const pinned = `${ALPINE}@${PIN}`;
    const e = engine(convert(ALPINE, pinned));
    expect(e.evaluate(src(ALPINE))).toMatchObject({ identifier: pinned, mutated: true });
    expect(e.evaluate(src(pinned))).toMatchObject({ identifier: pinned, mutated: false });
  });

  test('a pinned image converted by a pattern that matches it only without its digest (a FROM the frontend pinned)', () => {
    const pinned = `${BUSYBOX}@${PIN}`;
    const to = `docker-image://registry.local/team/busybox@${PIN}`;
    const anchored = engine(convert('^docker-image://docker\\.io/library/busybox:latest$', to, { match_type: 'REGEX' }));
    expect(anchored.evaluate(src(pinned))).toMatchObject({ identifier: to, mutated: true });
    // ${1} is filled from the image without the digest, never left as written.
    const mirror = engine(convert('docker-image://docker.io/library/*:latest', 'docker-image://mirror.local/library/${1}:stable'));
    expect(mirror.evaluate(src(pinned)).identifier).toBe('docker-image://mirror.local/library/busybox:stable');
    // A pattern that matches the whole pinned identifier takes its groups from it, digest included.
    const tag = engine(convert('docker-image://docker.io/library/busybox:*', 'docker-image://mirror.local/busybox:${1}'));
    expect(tag.evaluate(src(pinned)).identifier).toBe(`docker-image://mirror.local/busybox:latest@${PIN}`);
  });

  test('EXACT selectors convert to the update as written', () => {
    const to = `docker-image://docker.io/library/busybox@${PIN}`;
    expect(engine(convert(BUSYBOX, to, { match_type: 'EXACT' })).evaluate(src(BUSYBOX)).identifier).toBe(to);
  });

  test('wildcard matches fill ${1}…', () => {
    const e = engine(convert('docker-image://docker.io/library/golang:*', 'docker-image://fakereg.io/library/golang:${1}-alpine'));
    expect(e.evaluate(src('docker-image://docker.io/library/golang:1.19')).identifier).toBe('docker-image://fakereg.io/library/golang:1.19-alpine');
    const two = engine(convert('docker-image://docker.io/*/*:latest', 'docker-image://mirror.local/$2/$1'));
    expect(two.evaluate(src('docker-image://docker.io/library/node:latest')).identifier).toBe('docker-image://mirror.local/node/library');
  });

  test('regexp groups, named groups and $$, replacing what the regexp matched (Go ReplaceAllString)', () => {
    const e = engine(convert('docker\\-image://docker\\.io/library/golang:(.*)', 'docker-image://fakereg.io/library/golang:${1}', { match_type: 'REGEX' }));
    expect(e.evaluate(src('docker-image://docker.io/library/golang:1.19')).identifier).toBe('docker-image://fakereg.io/library/golang:1.19');
    const named = engine(convert('docker.io/library/(?P<name>[a-z]+)', 'mirror.local/${name}', { match_type: 'REGEX' }));
    expect(named.evaluate(src(BUSYBOX)).identifier).toBe('docker-image://mirror.local/busybox:latest');
    const dollar = engine(convert('https://example.com/(.*)', 'https://cache.local/$$/${1}', { match_type: 'REGEX' }));
    expect(dollar.evaluate(src('https://example.com/a.tgz')).identifier).toBe('https://cache.local/$/a.tgz');
  });

  test('attrs only: http.checksum added to an http source, the identifier kept', () => {
    const e = engine({ action: 'CONVERT', selector: { identifier: 'https://example.com/*' }, updates: { attrs: { 'http.checksum': PIN } } });
    const d = e.evaluate(src('https://example.com/foo', { 'http.filename': 'foo' }));
    expect(d.identifier).toBe('https://example.com/foo');
    expect([...d.attrs]).toEqual([['http.filename', 'foo'], ['http.checksum', PIN]]);
    expect(d.mutated).toBe(true);
    // Already set: nothing to do.
    expect(e.evaluate(src('https://example.com/foo', { 'http.checksum': PIN })).mutated).toBe(false);
  });

  test('a conversion to something that is not a source identifier fails (KLN0954)', () => {
    expect(() => engine(convert(BUSYBOX, 'alpine:latest')).evaluate(src(BUSYBOX))).toThrow(expect.objectContaining({ code: 'KLN0954', ruleIndex: 0 }));
  });

  test('no rules: every source as it is', () => {
    const e = new SourcePolicyEngine([parseSourcePolicy('{"version": 1}', 'p.json')]);
    expect(e.empty).toBe(true);
    expect(e.evaluate(src(BUSYBOX)).mutated).toBe(false);
  });
});

test('redactIdentifier drops the whole user info of a URL, a password holding an @ included', () => {
  expect(redactIdentifier('https://user:p@ss@example.com/x.tar')).toBe('https://example.com/x.tar');
  expect(redactIdentifier('git://tok@example.com/r.git#main')).toBe('git://example.com/r.git#main');
  expect(redactIdentifier('https://example.com/a@b')).toBe('https://example.com/a@b');
  expect(redactIdentifier('docker-image://docker.io/library/busybox:latest')).toBe('docker-image://docker.io/library/busybox:latest');
});
