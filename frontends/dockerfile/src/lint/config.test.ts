import { describe, expect, test } from 'vitest';
import { resolveCheckConfig } from './config.js';
import { DEFAULT_CHECK_CONFIG } from './linter.js';

const none = new Map<string, string>();

describe('resolveCheckConfig', () => {
  test('no directive: every stable rule, warnings only', () => {
    expect(resolveCheckConfig('FROM scratch\n', none, 'Dockerfile')).toEqual(DEFAULT_CHECK_CONFIG);
  });

  test('reads # check= (key case-insensitive, after # syntax=)', () => {
    const text = '# syntax=docker/dockerfile:1\n# CHECK = skip=StageNameCasing,FromAsCasing;error=true\nFROM scratch\n';
    expect(resolveCheckConfig(text, none, 'Dockerfile')).toMatchObject({ skip: ['StageNameCasing', 'FromAsCasing'], skipAll: false, error: true });
  });

  test('a # check= line after an instruction or a plain comment is only a comment', () => {
    expect(resolveCheckConfig('FROM scratch\n# check=error=true\n', none, 'Dockerfile')).toEqual(DEFAULT_CHECK_CONFIG);
    expect(resolveCheckConfig('# hello\n# check=error=true\nFROM scratch\n', none, 'Dockerfile')).toEqual(DEFAULT_CHECK_CONFIG);
  });

  test('the BUILDKIT_DOCKERFILE_CHECK build arg replaces the directive', () => {
    const text = '# check=error=true\nFROM scratch\n';
    expect(resolveCheckConfig(text, new Map([['BUILDKIT_DOCKERFILE_CHECK', 'skip=all']]), 'Dockerfile')).toMatchObject({ skipAll: true, error: false });
  });

  test('an invalid directive is KLN0102 at its line; an invalid build arg names the arg', () => {
    expect(() => resolveCheckConfig('# check=skip=all;error=maybe\nFROM scratch\n', none, 'Dockerfile')).toThrow(expect.objectContaining({ code: 'KLN0102', location: { file: 'Dockerfile', line: 1, column: 1 } }));
    expect(() => resolveCheckConfig('FROM scratch\n', new Map([['BUILDKIT_DOCKERFILE_CHECK', 'warn=1']]), 'Dockerfile')).toThrow(/failed to parse BUILDKIT_DOCKERFILE_CHECK: invalid check option "warn"/);
  });
});
