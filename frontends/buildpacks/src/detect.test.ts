import { describe, expect, test } from 'vitest';
import type { BuildpackDescriptor } from './descriptors.js';
import { targetMatches } from './detect.js';
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
