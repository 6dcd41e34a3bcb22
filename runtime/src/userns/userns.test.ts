import { describe, expect, test } from 'vitest';
import { imagePath, unmappedOwnerError } from './errors.js';
import { rootlessProcessIds } from './exec.js';
import { idMapCovers, mappedIds, parseIdMap, parseUsernsEnv, type UsernsState } from './state.js';

const single: UsernsState = { mode: 'single', hostUid: 1000, hostGid: 1000, user: 'alice', ids: 1 };
const ranged: UsernsState = { mode: 'ranged', hostUid: 1000, hostGid: 1000, user: 'alice', ids: 65537 };

const chownError = (path?: string): NodeJS.ErrnoException =>
  Object.assign(new Error('EINVAL: invalid argument, lchown'), { code: 'EINVAL', syscall: 'lchown', errno: -22, ...(path === undefined ? {} : { path }) });

describe('userns state', () => {
  test('KILN_USERNS values', () => {
    expect(parseUsernsEnv('ranged:1000:100:alice')).toEqual({ mode: 'ranged', hostUid: 1000, hostGid: 100, user: 'alice' });
    expect(parseUsernsEnv('single:1000:100:')).toEqual({ mode: 'single', hostUid: 1000, hostGid: 100, user: '' });
    expect(parseUsernsEnv('1')).toBeUndefined();
    expect(parseUsernsEnv('other:1:1:x')).toBeUndefined();
    expect(parseUsernsEnv(undefined)).toBeUndefined();
  });
  test('ids a uid_map maps', () => {
    expect(mappedIds('         0       1000          1\n         1     200000      65536\n')).toBe(65537);
    expect(mappedIds('         0       1000          1\n')).toBe(1);
  });
});

describe('idMapCovers (may a root made under one mapping be used under another)', () => {
  const single = parseIdMap('         0       1000          1\n');
  const ranged = parseIdMap('         0       1000          1\n         1     200000      65536\n');
  test('parses uid_map lines', () => {
    expect(ranged).toEqual([
      { inside: 0, outside: 1000, count: 1 },
      { inside: 1, outside: 200000, count: 65536 },
    ]);
    expect(parseIdMap('x y z\n\n')).toEqual([]);
  });
  test('same map, or more ids with the old ones where they were: yes', () => {
    expect(idMapCovers(ranged, ranged)).toBe(true);
    expect(idMapCovers(ranged, single)).toBe(true);
    expect(idMapCovers(parseIdMap('0 1000 1\n1 200000 100000\n'), ranged)).toBe(true);
  });
  test('fewer ids, or the same ids elsewhere on the host: no', () => {
    expect(idMapCovers(single, ranged)).toBe(false);
    expect(idMapCovers(parseIdMap('0 1000 1\n1 300000 65536\n'), ranged)).toBe(false);
    expect(idMapCovers(parseIdMap('0 1000 1\n1 200000 1000\n'), ranged)).toBe(false);
    expect(idMapCovers(parseIdMap('0 1001 1\n'), single)).toBe(false);
  });
  test('a range split over two lines at the same offset still covers', () => {
    expect(idMapCovers(parseIdMap('0 1000 1\n1 200000 10\n11 200010 65526\n'), ranged)).toBe(true);
  });
});

describe('unmappedOwnerError', () => {
  test('names the file inside the snapshot or file-op mount and how to add subordinate ids', () => {
    const e = unmappedOwnerError(chownError('/home/alice/.local/share/kiln/snapshots/a00057dd/fs/home/app'), single);
    expect(e?.code).toBe('KLN0890');
    expect(e?.message).toContain('/home/app');
    expect(e?.message).not.toContain('snapshots');
    expect(e?.hint).toContain('usermod --add-subuids');
    expect(e?.hint).toContain('alice');
    expect(imagePath('/r/mounts/m-2030-TVzR8C/bin')).toBe('/bin');
  });
  test('a chown error a file op wrapped is found through its cause', () => {
    const wrapped = new Error('copy to "/bin/busybox": EINVAL', { cause: chownError('/r/mounts/m-1/bin') });
    expect(unmappedOwnerError(wrapped, single)?.message).toContain('/bin');
  });
  test('in a ranged namespace it asks for a larger range', () => {
    const e = unmappedOwnerError(chownError('/r/snapshots/x/fs/data'), ranged);
    expect(e?.message).toContain('65536 subordinate ids');
    expect(e?.hint).toContain('larger range');
  });
  test('other errors, and any error outside a namespace, are left alone', () => {
    expect(unmappedOwnerError(Object.assign(new Error('x'), { code: 'EPERM', syscall: 'lchown' }), single)).toBeUndefined();
    expect(unmappedOwnerError(Object.assign(new Error('x'), { code: 'EINVAL', syscall: 'open' }), single)).toBeUndefined();
    expect(unmappedOwnerError(chownError('/x'), undefined)).toBeUndefined();
    expect(unmappedOwnerError('EINVAL', single)).toBeUndefined();
  });
});

describe('rootlessProcessIds', () => {
  const root = { uid: 0, gid: 0, additionalGids: [0, 1, 2, 10], home: '/root' };
  test("root's unmapped supplementary groups are dropped; mapped ones stay", () => {
    expect(rootlessProcessIds(root, single, undefined)).toEqual({ ...root, additionalGids: [0] });
    expect(rootlessProcessIds(root, ranged, undefined)).toBe(root);
  });
  test('an unmapped user is a KLN0890 naming it', () => {
    const app = { uid: 1000, gid: 1000, additionalGids: [], home: '/home/app' };
    expect(() => rootlessProcessIds(app, single, 'app')).toThrow(/cannot run as user "app" \(uid 1000, gid 1000\): kiln runs rootless with only uid\/gid 0/);
    expect(() => rootlessProcessIds({ ...app, uid: 70000 }, ranged, '70000')).toThrow(/maps only ids 0-65536/);
    expect(rootlessProcessIds(app, ranged, 'app')).toBe(app);
  });
});
