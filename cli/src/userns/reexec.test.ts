import { describe, expect, test } from 'vitest';
import { insideEnv, namespaceHint, rootSocketDir, usernsDisabled } from './reexec.js';

const sysctls = (values: Record<string, string>) => (path: string): string | undefined => values[path];

describe('rootless launcher: why no user namespace can be made', () => {
  test('user.max_user_namespaces = 0 and kernel.unprivileged_userns_clone = 0 are named with the sysctl to set', () => {
    expect(usernsDisabled(sysctls({ '/proc/sys/user/max_user_namespaces': '0\n' }))).toMatch(/user\.max_user_namespaces = 0\): sudo sysctl -w user\.max_user_namespaces=28633$/);
    expect(usernsDisabled(sysctls({ '/proc/sys/user/max_user_namespaces': '96364\n', '/proc/sys/kernel/unprivileged_userns_clone': '0\n' }))).toMatch(/sudo sysctl -w kernel\.unprivileged_userns_clone=1$/);
  });
  test('allowed (or not a Debian kernel knob): nothing to say', () => {
    expect(usernsDisabled(sysctls({ '/proc/sys/user/max_user_namespaces': '96364\n' }))).toBeUndefined();
    expect(usernsDisabled(sysctls({ '/proc/sys/user/max_user_namespaces': '1\n', '/proc/sys/kernel/unprivileged_userns_clone': '1\n' }))).toBeUndefined();
  });
  test('after unshare failed: AppArmor, else the usual causes', () => {
    expect(namespaceHint(sysctls({ '/proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' }))).toMatch(/^AppArmor restricts/);
    expect(namespaceHint(sysctls({}))).toMatch(/^unprivileged user namespaces may be disabled/);
  });
});

describe('rootless launcher: the environment of kiln inside', () => {
  test("HOME from passwd when the caller has none (inside, homedir() would be uid 0's: /root); the launcher's pid", () => {
    expect(insideEnv({ PATH: '/bin' }, 'single:1000:1000:alice', '/home/alice', 77)).toEqual({
      PATH: '/bin',
      HOME: '/home/alice',
      KILN_USERNS: 'single:1000:1000:alice',
      KILN_USERNS_READY: '3',
      KILN_USERNS_LAUNCHER: '77',
    });
    expect(insideEnv({ HOME: '' }, 'v', '/home/alice', 77)['HOME']).toBe('/home/alice');
    // the caller's own HOME stays; no passwd entry: nothing to set
    expect(insideEnv({ HOME: '/srv/h' }, 'v', '/home/alice', 77)['HOME']).toBe('/srv/h');
    expect(insideEnv({}, 'v', undefined, 77)).toEqual({ KILN_USERNS: 'v', KILN_USERNS_READY: '3', KILN_USERNS_LAUNCHER: '77' });
  });
});

describe("rootless launcher: kiln daemon's socket directory, as seen outside", () => {
  const dir = (uid: number, mode: number) => ({ isDirectory: () => true, uid, mode, dev: 2049, ino: 17 });
  const stats = (entries: Record<string, ReturnType<typeof dir>>) => (p: string) => entries[p];
  const argv = (...a: string[]) => ['node', 'kiln', ...a];
  test("root's sticky /tmp (--addr, --addr=, KILN_HOST) is vouched for as dev:ino", () => {
    const tmp = stats({ '/tmp': dir(0, 0o41777) });
    expect(rootSocketDir(argv('daemon', '--addr', '/tmp/x.sock'), {}, 1000, '/home/a', tmp)).toBe('2049:17');
    expect(rootSocketDir(argv('daemon', '--addr=unix:///tmp/x.sock'), {}, 1000, '/home/a', tmp)).toBe('2049:17');
    expect(rootSocketDir(argv('daemon'), { KILN_HOST: 'unix:///tmp/y.sock' }, 1000, '/home/a', tmp)).toBe('2049:17');
    // relative to the working directory
    expect(rootSocketDir(argv('daemon', '--addr', 'x.sock'), {}, 1000, '/tmp', tmp)).toBe('2049:17');
  });
  test("another user's, a root directory open to all, or another command: nothing", () => {
    expect(rootSocketDir(argv('daemon', '--addr', '/tmp/x.sock'), {}, 1000, '/', stats({ '/tmp': dir(1001, 0o41777) }))).toBeUndefined();
    expect(rootSocketDir(argv('daemon', '--addr', '/tmp/x.sock'), {}, 1000, '/', stats({ '/tmp': dir(0, 0o40777) }))).toBeUndefined();
    expect(rootSocketDir(argv('daemon', '--addr', '/nope/x.sock'), {}, 1000, '/', stats({}))).toBeUndefined();
    expect(rootSocketDir(argv('build', '--addr', '/tmp/x.sock'), {}, 1000, '/', stats({ '/tmp': dir(0, 0o41777) }))).toBeUndefined();
  });
});
