import { WorkerError } from '../api/errors.js';

/** A resolved process identity. */
export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups: every group in /etc/group that lists the user by name. */
  readonly additionalGids: readonly number[];
  readonly home: string;
}

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

function isNumeric(s: string): boolean {
  return /^\d+$/.test(s);
}

/** Reads a file of the container's root filesystem by absolute path; `''` when missing. */
export type RootFileReader = (path: string) => Promise<string>;

/** Parses /etc/passwd lines (`name:x:uid:gid:gecos:home:shell`); malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    const [name, , uid, gid, , home] = f;
    if (name === undefined || !isNumeric(uid ?? '') || !isNumeric(gid ?? '')) continue;
    out.push({ name, uid: Number(uid), gid: Number(gid), home: home ?? '/' });
  }
  return out;
}

/** Parses /etc/group lines (`name:x:gid:member,member`); malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || line.startsWith('#')) continue;
    const [name, , gid, members] = f;
    if (name === undefined || !isNumeric(gid ?? '')) continue;
    out.push({ name, gid: Number(gid), members: (members ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

/**
 * Resolves `user` (`name`, `name:group`, `uid`, `uid:gid`, or empty for root) against the rootfs'
 * /etc/passwd and /etc/group (read with `read`), as BuildKit does:
 * a numeric uid without an entry gets gid 0; a name that does not exist is `USER_NOT_FOUND`.
 */
export async function resolveUser(read: RootFileReader, user: string | undefined): Promise<ResolvedUser> {
  const spec = user ?? '';
  if (spec === '') return { uid: 0, gid: 0, additionalGids: [], home: '/root' };
  const colon = spec.indexOf(':');
  const u = colon < 0 ? spec : spec.slice(0, colon);
  const g = colon < 0 ? undefined : spec.slice(colon + 1);
  const passwd = parsePasswd(await read('/etc/passwd'));
  const needGroups = (g !== undefined && !isNumeric(g)) || !isNumeric(u) || colon < 0;
  const groups = needGroups ? parseGroup(await read('/etc/group')) : [];
  const entry = isNumeric(u) ? passwd.find((p) => p.uid === Number(u)) : passwd.find((p) => p.name === u);
  if (entry === undefined && !isNumeric(u)) {
    throw new WorkerError('USER_NOT_FOUND', `unable to find user ${u}: no matching entries in passwd file`, {
      hint: `create the user in an earlier step (e.g. RUN adduser -D ${u}, or useradd ${u}), or give a numeric uid[:gid] (e.g. USER 1000:1000)`,
    });
  }
  const uid = entry?.uid ?? Number(u);
  let gid = entry?.gid ?? 0;
  if (g !== undefined && g !== '') {
    if (isNumeric(g)) gid = Number(g);
    else {
      const ge = groups.find((x) => x.name === g);
      if (ge === undefined) {
        throw new WorkerError('USER_NOT_FOUND', `unable to find group ${g}: no matching entries in group file`, {
          hint: `create the group in an earlier step (e.g. RUN addgroup ${g}, or groupadd ${g}), or give a numeric gid (e.g. USER ${u}:1000)`,
        });
      }
      gid = ge.gid;
    }
  }
  // Supplementary groups only when no group was forced, as Docker and BuildKit do.
  const additionalGids =
    g === undefined && entry !== undefined
      ? [...new Set(groups.filter((x) => x.members.includes(entry.name) && x.gid !== gid).map((x) => x.gid))]
      : [];
  return { uid, gid, additionalGids, home: entry?.home ?? '/' };
}
