import { describe, expect, test } from 'vitest';
import { insideEnv, namespaceHint, usernsDisabled } from './reexec.js';

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
  test('after unshare failed: AppArmor, then the ranges newuidmap refused, else the usual causes', () => {
    const ranged = { mode: 'ranged', uids: { start: 100000, count: 65536 }, gids: { start: 200000, count: 10 } } as const;
    expect(namespaceHint(ranged, sysctls({ '/proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' }))).toMatch(/^AppArmor restricts/);
    expect(namespaceHint(ranged, sysctls({}))).toBe(
      'newuidmap/newgidmap refused the ranges 100000+65536 (/etc/subuid) and 200000+10 (/etc/subgid): check that they are setuid root (uidmap package) and that the ranges belong to this user; mapping a range needs unshare from util-linux 2.38 or later (--map-users)',
    );
    expect(namespaceHint({ mode: 'single', why: '' }, sysctls({}))).toMatch(/^unprivileged user namespaces may be disabled/);
  });
});

describe('rootless launcher: the environment of kiln inside', () => {
  test("HOME from passwd when the caller has none (inside, homedir() would be uid 0's: /root)", () => {
    expect(insideEnv({ PATH: '/bin' }, 'single:1000:1000:alice', '/home/alice')).toEqual({ PATH: '/bin', HOME: '/home/alice', KILN_USERNS: 'single:1000:1000:alice', KILN_USERNS_READY: '3' });
    expect(insideEnv({ HOME: '' }, 'v', '/home/alice')['HOME']).toBe('/home/alice');
    // the caller's own HOME stays; no passwd entry: nothing to set
    expect(insideEnv({ HOME: '/srv/h' }, 'v', '/home/alice')['HOME']).toBe('/srv/h');
    expect(insideEnv({}, 'v', undefined)).toEqual({ KILN_USERNS: 'v', KILN_USERNS_READY: '3' });
  });
});
