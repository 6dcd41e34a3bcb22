import { describe, expect, test } from 'vitest';
import { cleanInRoot, inRootPath, pathComponents } from './resolve.js';
import { timestampToSeconds } from './meta.js';

describe('in-root path helpers', () => {
  test.for([
    ['/a/b/../c/', '/a/c'],
    ['../../etc/passwd', '/etc/passwd'],
    ['a//./b', '/a/b'],
    ['/', '/'],
    ['', '/'],
    ['/..', '/'],
  ] as const)('cleanInRoot(%j) = %j', ([p, want]) => {
    expect(cleanInRoot(p)).toBe(want);
  });

  test('pathComponents drops empty and dot components but keeps ..', () => {
    expect(pathComponents('/a/./b//../c')).toEqual(['a', 'b', '..', 'c']);
  });

  test('inRootPath maps host paths back without leaking the root', () => {
    expect(inRootPath('/var/snap/1', '/var/snap/1')).toBe('/');
    expect(inRootPath('/var/snap/1', '/var/snap/1/etc/x')).toBe('/etc/x');
    expect(inRootPath('/var/snap/1', '/var/snap/10/x')).toBe('/var/snap/10/x');
  });

  test('timestampToSeconds: -1 keeps, nanoseconds convert without bigint overflow', () => {
    expect(timestampToSeconds(-1)).toBeUndefined();
    expect(timestampToSeconds(-1n)).toBeUndefined();
    expect(timestampToSeconds(0)).toBe(0);
    expect(timestampToSeconds(1_700_000_000_500_000_000n)).toBe(1_700_000_000.5);
  });
});
