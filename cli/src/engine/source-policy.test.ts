import { describe, expect, test } from 'vitest';
import { parseSourcePolicy, SourcePolicyEngine } from '@kiln/solver';
import { policyImageRef } from './source-policy.js';

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
