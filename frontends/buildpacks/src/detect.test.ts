import { describe, expect, test } from 'vitest';
import type { BuildpackDescriptor } from './descriptors.js';
import { detectHint, targetMatches } from './detect.js';
import type { ResolvedEntry } from './order.js';

const entry = (targets: BuildpackDescriptor['targets']): ResolvedEntry => ({
  id: 'kt/x',
  version: '1',
  optional: false,
  descriptor: { api: '0.10', id: 'kt/x', version: '1', clearEnv: false, targets },
});
const linuxAmd64 = new Map([
  ['CNB_TARGET_OS', 'linux'],
  ['CNB_TARGET_ARCH', 'amd64'],
]);

describe('targetMatches', () => {
  test.for([
    { name: 'no targets: any run image', targets: [], ok: true },
    { name: 'os only', targets: [{ os: 'linux' }], ok: true },
    { name: 'os and arch', targets: [{ os: 'linux', arch: 'amd64' }], ok: true },
    { name: 'wildcard arch', targets: [{ os: 'linux', arch: '*' }], ok: true },
    { name: 'another os', targets: [{ os: 'windows' }], ok: false },
    { name: 'another arch', targets: [{ os: 'linux', arch: 'arm64' }], ok: false },
    { name: 'one of several', targets: [{ os: 'linux', arch: 'arm64' }, { os: 'linux', arch: 'amd64' }], ok: true },
  ])('$name', ({ targets, ok }) => {
    expect(targetMatches(entry(targets), linuxAmd64)).toBe(ok);
  });
});

describe('detectHint (typo tour 4)', () => {
  test('126 and 127 are the shell failing to run bin/detect, not the program deciding', () => {
    const e = entry([]);
    // was "a detect program must exit 0 (pass) or 100" for a bin/detect without its exec bit
    expect(detectHint({ code: 126, entry: e })).toBe('/cnb/buildpacks/kt_x/1/bin/detect could not be executed: give it the exec bit (chmod 755) in the buildpack and rebuild the builder');
    expect(detectHint({ code: 127, entry: { ...e, extension: true } })).toBe('/cnb/extensions/kt_x/1/bin/detect or the interpreter of its #! line was not found in the builder image');
    expect(detectHint({ code: 7, entry: e })).toBe('a detect program must exit 0 (pass) or 100 (does not apply)');
    expect(detectHint(undefined)).toBe('a detect program must exit 0 (pass) or 100 (does not apply)');
  });
});
