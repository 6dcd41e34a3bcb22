import { describe, expect, test } from 'vitest';
import { parseUsernsEnv, USERNS_ENV as RUNTIME_USERNS_ENV } from '@kiln/runtime';
import { idMapArgs, mappableRanges, planUserns, subIdRanges, unshareArgs, type UsernsHost } from './subid.js';
import { USERNS_ENV, usernsEnvValue } from './reexec.js';

const SUBUID = ['# shadow-utils', 'root:1000000:65536', '', 'alice:100000:65536', 'bob:165536:65536', 'alice:300000:1000', '1001:400000:65536', 'broken:line', 'carol:0:65536', 'dave:5:0'].join('\n');

describe('subIdRanges (/etc/subuid lines)', () => {
  test('the ranges of a user by name, in file order', () => {
    expect(subIdRanges(SUBUID, 'alice', 1000)).toEqual([
      { start: 100000, count: 65536 },
      { start: 300000, count: 1000 },
    ]);
  });
  test('a line may name the user by uid (a user without a passwd entry too)', () => {
    expect(subIdRanges(SUBUID, undefined, 1001)).toEqual([{ start: 400000, count: 65536 }]);
    expect(subIdRanges(SUBUID, 'erin', 1001)).toEqual([{ start: 400000, count: 65536 }]);
  });
  test("another user's ranges, comments, malformed, empty and zero-based ranges are not the user's", () => {
    expect(subIdRanges(SUBUID, 'bo', 1002)).toEqual([]);
    expect(subIdRanges(SUBUID, 'broken', 1003)).toEqual([]);
    expect(subIdRanges(SUBUID, 'carol', 1004)).toEqual([]);
    expect(subIdRanges(SUBUID, 'dave', 1005)).toEqual([]);
    expect(subIdRanges('', 'alice', 1000)).toEqual([]);
  });
  test('a range that would run past the last 32-bit id is skipped', () => {
    expect(subIdRanges('alice:4294967000:65536\nalice:7:3\n', 'alice', 1000)).toEqual([{ start: 7, count: 3 }]);
  });
  test('CRLF and surrounding blanks are tolerated', () => {
    expect(subIdRanges('alice:100000:65536\r\n', 'alice', 1000)).toEqual([{ start: 100000, count: 65536 }]);
  });
});

describe('mappableRanges (what one id map can hold beside the user)', () => {
  test('all ranges, in file order', () => {
    expect(mappableRanges([{ start: 300000, count: 1000 }, { start: 100000, count: 65536 }], 1000)).toEqual([
      { start: 300000, count: 1000 },
      { start: 100000, count: 65536 },
    ]);
  });
  test('a range overlapping an earlier one (the same block by name and by uid) or the user itself is left out: the kernel refuses overlapping host ids', () => {
    expect(mappableRanges([{ start: 100000, count: 65536 }, { start: 100000, count: 65536 }, { start: 165535, count: 10 }, { start: 165536, count: 10 }], 1000)).toEqual([
      { start: 100000, count: 65536 },
      { start: 165536, count: 10 },
    ]);
    expect(mappableRanges([{ start: 500, count: 1000 }, { start: 2000, count: 5 }], 1000)).toEqual([{ start: 2000, count: 5 }]);
  });
  test("no more than the kernel's 340 map lines, the user's own among them", () => {
    const many = Array.from({ length: 400 }, (_, n) => ({ start: 100000 + n * 10, count: 10 }));
    expect(mappableRanges(many, 1000)).toHaveLength(339);
  });
});

const host = (over: Partial<UsernsHost>): UsernsHost => ({ uid: 1000, gid: 1000, user: 'alice', subuid: SUBUID, subgid: 'alice:200000:65536\n', idmapTools: true, ...over });

describe('planUserns', () => {
  test('every subuid and subgid range of the user, when newuidmap/newgidmap exist', () => {
    expect(planUserns(host({}))).toEqual({
      mode: 'ranged',
      uids: [
        { start: 100000, count: 65536 },
        { start: 300000, count: 1000 },
      ],
      gids: [{ start: 200000, count: 65536 }],
    });
  });
  test('subgid lines name the user (or its uid), not its group', () => {
    expect(planUserns(host({ subgid: '1000:250000:10\n' }))).toMatchObject({ mode: 'ranged', gids: [{ start: 250000, count: 10 }] });
  });
  test('no range or no tools: one mapping, saying why', () => {
    expect(planUserns(host({ subuid: undefined }))).toEqual({ mode: 'single', why: 'alice has no range in /etc/subuid' });
    expect(planUserns(host({ subgid: '' }))).toEqual({ mode: 'single', why: 'alice has no range in /etc/subgid' });
    expect(planUserns(host({ user: undefined, uid: 4242, subuid: '', subgid: '' }))).toEqual({ mode: 'single', why: '4242 has no range in /etc/subuid and /etc/subgid' });
    expect(planUserns(host({ idmapTools: false }))).toEqual({ mode: 'single', why: 'newuidmap/newgidmap (the uidmap package) are not installed' });
  });
});

describe('idMapArgs and unshareArgs', () => {
  test("newuidmap's triples: 0 is the user, the ranges one after the other from 1 (rootlesskit's map)", () => {
    expect(idMapArgs(1000, [{ start: 100000, count: 65536 }])).toEqual(['0', '1000', '1', '1', '100000', '65536']);
    expect(idMapArgs(1000, [{ start: 300000, count: 1000 }, { start: 100000, count: 65536 }])).toEqual(['0', '1000', '1', '1', '300000', '1000', '1001', '100000', '65536']);
  });
  test('a single mapping is unshare --map-root-user; ranges are mapped by the launcher, not unshare', () => {
    expect(unshareArgs(planUserns(host({})))).toEqual(['--user', '--mount', '--propagation', 'private']);
    expect(unshareArgs({ mode: 'single', why: '' })).toEqual(['--user', '--map-root-user', '--mount', '--propagation', 'private']);
  });
  test('the launcher variable is what the runtime parses', () => {
    expect(USERNS_ENV).toBe(RUNTIME_USERNS_ENV);
    expect(parseUsernsEnv(usernsEnvValue(planUserns(host({})), 1000, 1000, 'alice'))).toEqual({ mode: 'ranged', hostUid: 1000, hostGid: 1000, user: 'alice' });
    expect(parseUsernsEnv(usernsEnvValue({ mode: 'single', why: '' }, 1001, 100, '1001'))).toEqual({ mode: 'single', hostUid: 1001, hostGid: 100, user: '1001' });
  });
});
