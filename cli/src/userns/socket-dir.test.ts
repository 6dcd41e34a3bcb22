import { describe, expect, test } from 'vitest';
import type { UsernsState } from '@kiln/runtime';
import { rootlessSocketDir } from './socket-dir.js';

const ns: UsernsState = { mode: 'ranged', hostUid: 1000, hostGid: 1000, user: 'alice', ids: 65537 };
const dir = (uid: number) => ({ isDirectory: () => true, uid, dev: 2049, ino: 17 });
const vouched = { KILN_USERNS_ROOT_SOCKET_DIR: '2049:17' };

describe("kiln daemon's socket directory inside rootless kiln's namespace", () => {
  test("the directory the launcher saw owned by root (/tmp, 65534 inside) is root's", () => {
    expect(rootlessSocketDir('/tmp', dir(65534), vouched, ns)).toBe('root');
  });
  test("the user's own (uid 0 inside), or no namespace: the daemon's usual check", () => {
    expect(rootlessSocketDir('/run/user/1000', dir(0), {}, ns)).toBeUndefined();
    expect(rootlessSocketDir('/tmp', dir(65534), {}, undefined)).toBeUndefined();
  });
  test('another owner it cannot tell apart (not the vouched directory) is KLN0891, saying where to put the socket', () => {
    const e = rootlessSocketDir('/srv/shared', { ...dir(65534), ino: 99 }, vouched, ns);
    expect(e).toMatchObject({ code: 'KLN0891' });
    expect(e instanceof Error ? e.message : '').toBe(
      "cannot listen in /srv/shared: kiln runs rootless as alice, and /srv/shared belongs to another user (uid 65534 in kiln's user namespace, where owners it does not map show as 65534)",
    );
    expect(e instanceof Error ? (e as { hint?: string }).hint : '').toContain('--addr unix://$XDG_RUNTIME_DIR/kiln/kilnd.sock');
    expect(rootlessSocketDir('/tmp', { ...dir(65534), ino: 18 }, vouched, ns)).toMatchObject({ code: 'KLN0891' });
  });
});
