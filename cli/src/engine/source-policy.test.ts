import { describe, expect, test } from 'vitest';
import { parseSourcePolicy, SourcePolicyEngine } from '@kiln/solver';
import { policyImageRef, unqualifiedImageSelectors } from './source-policy.js';

const policy = (rules: readonly Record<string, unknown>[]): SourcePolicyEngine => new SourcePolicyEngine([parseSourcePolicy(JSON.stringify({ rules }), 'policy.json')]);
const convert = (from: string, to: string): Record<string, unknown> => ({ action: 'CONVERT', selector: { identifier: from }, updates: { identifier: to } });

describe('policyImageRef', () => {
  test('the image a conversion names is looked up; an image no rule converts is itself', () => {
    const p = policy([convert('docker-image://docker.io/library/busybox:latest', 'docker-image://mirror.example.com/busybox:1')]);
    expect(policyImageRef(p, 'docker.io/library/busybox:latest', {})).toBe('mirror.example.com/busybox:1');
    expect(policyImageRef(p, 'docker.io/library/alpine:latest', {})).toBe('docker.io/library/alpine:latest');
  });

  test('a conversion to a source that is not an image is KLN0954, without the credentials of its URL', () => {
    const p = policy([convert('docker-image://docker.io/library/busybox:latest', 'https://deploy:s3cret-token@files.example.com/busybox.tar')]);
    let err: unknown;
    try {
      policyImageRef(p, 'docker.io/library/busybox:latest', {});
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'KLN0954', identifier: 'https://files.example.com/busybox.tar' });
    expect((err as Error).message).toContain('https://files.example.com/busybox.tar');
    expect((err as Error).message).not.toContain('s3cret');
  });
});

// A selector written as in a Dockerfile (docker-image://busybox) never matched and said nothing:
// a DENY that denied nothing.
describe('unqualifiedImageSelectors', () => {
  const warn = (identifier: string, matchType?: string): string[] =>
    unqualifiedImageSelectors(parseSourcePolicy(JSON.stringify({ rules: [{ action: 'DENY', selector: { identifier, ...(matchType === undefined ? {} : { match_type: matchType }) } }] }), 'policy.json'));

  test.for([
    ['docker-image://busybox', 'docker-image://docker.io/library/busybox:latest'],
    ['docker-image://busybox:1.36', 'docker-image://docker.io/library/busybox:1.36'],
    ['docker-image://docker.io/alpine:3', 'docker-image://docker.io/library/alpine:3'],
    ['docker-image://docker.io/library/alpine', 'docker-image://docker.io/library/alpine:latest'],
    ['docker-image://alpine:*', 'docker-image://docker.io/library/alpine:*'],
    ['docker-image://team/app:*', 'docker-image://docker.io/team/app:*'],
  ] as const)('%s is named, with %s', ([given, want]) => {
    expect(warn(given)).toEqual([`policy.json: rules[0].selector.identifier ${JSON.stringify(given)} matches no image: images are fully qualified, write ${JSON.stringify(want)}`]);
  });

  test.for(['docker-image://docker.io/library/busybox:latest', 'docker-image://*', 'docker-image://docker.io/library/*', 'docker-image://*/library/alpine:*', 'docker-image://localhost:5000/app:*', 'docker-image://ghcr.io/a/b@sha256:' + 'a'.repeat(64), 'https://example.com/x', 'git://github.com/a/b'])('%s is fine', (identifier) => {
    expect(warn(identifier)).toEqual([]);
  });

  test('regexps and exact matches: a regexp may match anywhere; EXACT is checked like a plain wildcard', () => {
    expect(warn('docker-image://busybox', 'REGEX')).toEqual([]);
    expect(warn('docker-image://busybox', 'EXACT')).toHaveLength(1);
  });
});
