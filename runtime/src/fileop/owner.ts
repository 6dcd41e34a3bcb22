import { readFile } from 'node:fs/promises';
import { errnoCode, FileOpError } from './errors.js';
import { resolveInRoot } from './resolve.js';
import type { ChownOpt, Owner, UserOpt } from './types.js';

interface DbEntry {
  readonly name: string;
  readonly id: number;
  readonly gid: number;
}

async function readDb(root: string, file: string): Promise<DbEntry[]> {
  let text: string;
  try {
    text = await readFile(await resolveInRoot(root, file), 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
  const out: DbEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] === undefined || !Number.isInteger(id)) continue;
    out.push({ name: f[0], id, gid: Number(f[3] ?? NaN) });
  }
  return out;
}

const isNumeric = (s: string): boolean => /^[0-9]+$/.test(s);

/**
 * Resolves a {@link ChownOpt} to numeric ids, reading names from /etc/passwd and /etc/group of
 * the name's own `root` or else `root` (BuildKit's readUser): a user by name brings its primary group, a user by id
 * brings gid = uid, a group overrides either. A numeric name that is not in the file is used as
 * the id, as libcontainer's user lookup does. Returns `undefined` when `owner` is undefined.
 */
export async function resolveOwner(owner: ChownOpt | undefined, root: string): Promise<Owner | undefined> {
  if (owner === undefined || (owner.user === undefined && owner.group === undefined)) return undefined;
  let uid = 0;
  let gid = 0;
  if (owner.user !== undefined) {
    const u = owner.user;
    if ('byID' in u) {
      uid = u.byID;
      gid = u.byID;
    } else {
      const e = (await readDb(u.root ?? root, '/etc/passwd')).find((x) => x.name === u.byName);
      if (e !== undefined && Number.isInteger(e.gid)) {
        uid = e.id;
        gid = e.gid;
      } else if (isNumeric(u.byName)) {
        uid = Number(u.byName);
        gid = uid;
      } else {
        throw new FileOpError('FILEOP_USER_NOT_FOUND', u.byName, `unable to find user "${u.byName}" in /etc/passwd`, {
          hint: 'create the user in the image first, or give a numeric uid',
        });
      }
    }
  }
  if (owner.group !== undefined) gid = await resolveGroup(owner.group, root);
  return { uid, gid };
}

async function resolveGroup(g: UserOpt, root: string): Promise<number> {
  if ('byID' in g) return g.byID;
  const e = (await readDb(g.root ?? root, '/etc/group')).find((x) => x.name === g.byName);
  if (e !== undefined) return e.id;
  if (isNumeric(g.byName)) return Number(g.byName);
  throw new FileOpError('FILEOP_GROUP_NOT_FOUND', g.byName, `unable to find group "${g.byName}" in /etc/group`, {
    hint: 'create the group in the image first, or give a numeric gid',
  });
}
