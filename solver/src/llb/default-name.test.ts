import { describe, expect, test } from 'vitest';
import type { Op } from '@kiln/llb-core';
import { defaultName } from './load.js';

const source = (identifier: string): Op => ({ kind: 'source', inputs: [], source: { identifier } }) as unknown as Op;

describe('defaultName of a source op', () => {
  test('a URL is named without its user and password; image references keep their digest', () => {
    expect(defaultName(source('https://user:tok-9431@example.com/f.tgz'))).toBe('https://example.com/f.tgz');
    expect(defaultName(source('git://tok@h/r.git#main'))).toBe('git://h/r.git#main');
    expect(defaultName(source('docker-image://docker.io/library/busybox@sha256:' + 'a'.repeat(64)))).toBe('docker-image://docker.io/library/busybox@sha256:' + 'a'.repeat(64));
    expect(defaultName(source('https://example.com/f'))).toBe('https://example.com/f');
  });
});
