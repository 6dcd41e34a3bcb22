/**
 * Values the DSL's types accept (and EXPOSE / HEALTHCHECK accept in a Dockerfile) that the
 * run-time option checks must not refuse, and the config JSON they give.
 */
import { describe, expect, test } from 'vitest';
import type { ChownSpec } from '@kiln/llb-core';
import { image, scratch } from './index.js';

describe('run-time checks accept what the types allow', () => {
  test('a chown object with an undefined user or group (llb-core leaves that part unset)', () => {
    // what a build file's own tsconfig (no exactOptionalPropertyTypes, TypeScript's default) accepts
    const loose = (c: { user?: string | number | undefined; group?: string | number | undefined }): ChownSpec => c as ChownSpec;
    expect(() => image('busybox').copy(scratch(), '/a', '/b', { chown: loose({ user: 1000, group: undefined }) })).not.toThrow();
    expect(() => image('busybox').mkdir('/a', { chown: loose({ user: undefined, group: 'app' }) })).not.toThrow();
    expect(() => image('busybox').mkdir('/a', { chown: { user: 1000, group: null as never } })).toThrow(/mkdir: option "chown" must be/);
  });
});
