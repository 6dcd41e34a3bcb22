import { describe, expect, test } from 'vitest';
import { commandOf, configFlagOf, rootFlagOf } from './protocol.js';

describe('argv of a client', () => {
  test('the command is the first argument that is not an option nor the value of a global --config', () => {
    expect(commandOf(['node', 'kiln', '--config', 'k.toml', 'build', '.'])).toBe('build');
    expect(commandOf(['node', 'kiln', '--config=k.toml', 'build', '.'])).toBe('build');
    expect(commandOf(['node', 'kiln', 'build', '.', '--config', 'k.toml'])).toBe('build');
    expect(commandOf(['node', 'kiln', '--debug'])).toBeUndefined();
  });

  test('--config FILE / --config=FILE, anywhere before --; the last wins', () => {
    expect(configFlagOf(['node', 'kiln', 'build', '--config', 'a.toml', '.', '--config=b.toml'])).toBe('b.toml');
    expect(configFlagOf(['node', 'kiln', 'build', '.'])).toBeUndefined();
    expect(configFlagOf(['node', 'kiln', 'solve', '--', '--config', 'x'])).toBeUndefined();
  });

  test('--root DIR / --root=DIR the same way; --rootless is not --root', () => {
    expect(rootFlagOf(['node', 'kiln', 'build', '--root=/a', '.', '--root', '/b'])).toBe('/b');
    expect(rootFlagOf(['node', 'kiln', 'build', '--rootless', '.'])).toBeUndefined();
    expect(rootFlagOf(['node', 'kiln', 'build', '--', '--root', '/x'])).toBeUndefined();
  });
});
