import { describe, expect, test } from 'vitest';
import { resolveKilnRoot } from './root.js';

describe('resolveKilnRoot', () => {
  test.for([
    [{ root: '/opt/k', env: { KILN_ROOT: '/e' }, uid: 0 }, '/opt/k', 'option'],
    [{ env: { KILN_ROOT: '/e', XDG_DATA_HOME: '/x' }, uid: 1000 }, '/e', 'env'],
    [{ env: { XDG_DATA_HOME: '/x' }, uid: 0 }, '/var/lib/kiln', 'default-root'],
    [{ env: { XDG_DATA_HOME: '/x' }, uid: 1000 }, '/x/kiln', 'default-user'],
    [{ env: {}, uid: 1000, home: '/home/u' }, '/home/u/.local/share/kiln', 'default-user'],
    [{ env: { KILN_ROOT: '' }, uid: 0 }, '/var/lib/kiln', 'default-root'],
  ] as const)('%j → %s', ([opts, path, source]) => {
    expect(resolveKilnRoot(opts)).toEqual({ path, source });
  });
});
