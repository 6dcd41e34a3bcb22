import { describe, expect, test } from 'vitest';
import { parseGroup, parsePasswd, resolveUser } from './user.js';

const files: Record<string, string> = {
  '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nbroken line\nnobody:x:65534:65534::/nonexistent:/bin/false\n',
  '/etc/group': 'root:x:0:\napp:x:1000:\nwheel:x:10:app,other\ndocker:x:999:app\nnogroup:x:65534:\n',
};
const read = async (p: string): Promise<string> => files[p] ?? '';

describe('resolveUser', () => {
  test.for([
    ['', { uid: 0, gid: 0, additionalGids: [] }],
    ['root', { uid: 0, gid: 0, additionalGids: [] }],
    ['app', { uid: 1000, gid: 1000, additionalGids: [10, 999] }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [10, 999] }],
    ['app:wheel', { uid: 1000, gid: 10, additionalGids: [] }],
    ['app:5', { uid: 1000, gid: 5, additionalGids: [] }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [] }],
    ['4242:7', { uid: 4242, gid: 7, additionalGids: [] }],
  ] as const)('%s', async ([user, expected]) => {
    expect(await resolveUser(read, user)).toMatchObject(expected);
  });

  test('unknown names are USER_NOT_FOUND', async () => {
    await expect(resolveUser(read, 'ghost')).rejects.toMatchObject({ code: 'USER_NOT_FOUND', hint: expect.stringContaining('adduser -D ghost') as unknown });
    await expect(resolveUser(read, 'app:ghosts')).rejects.toMatchObject({ code: 'USER_NOT_FOUND', hint: expect.stringContaining('addgroup ghosts') as unknown });
    await expect(resolveUser(async () => '', 'app')).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
  });

  test('parsers skip malformed lines', () => {
    expect(parsePasswd(files['/etc/passwd'] ?? '').map((p) => p.name)).toEqual(['root', 'app', 'nobody']);
    expect(parseGroup(files['/etc/group'] ?? '').find((g) => g.name === 'wheel')?.members).toEqual(['app', 'other']);
  });
});
