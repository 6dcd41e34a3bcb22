import { statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RootlessError, idMapCovers, parseIdMap, usernsState, writeFileAtomic, type IdMapLine, type UsernsState } from '@kiln/runtime';
import { makeDirs } from './make-dirs.js';
import { EngineError } from './errors.js';

/**
 * Makes the kiln root directory (and its missing parents) before the stores open it, one level
 * at a time (see {@link makeDirs}): the stores' recursive mkdir never returns for a path under
 * /proc, and its EPERM/ENOTDIR named neither the root nor what to do. Fails with KLN0707.
 */
export async function ensureRootDir(root: string): Promise<void> {
  await makeDirs(root, (why, cause) =>
    new EngineError('KLN0707', `cannot use the kiln root ${root}: ${why}`, { hint: 'give a directory kiln can create and write: --root DIR or KILN_ROOT=DIR', ...(cause === undefined ? {} : { cause }) }),
  );
  checkRootlessRoot(root);
  const ns = usernsState();
  if (ns !== undefined) await checkIdMapping(root, ns);
}

/** `0:1000:1,1:200000:65536`: a map as one line, for messages and the root's record. */
function formatMap(map: readonly IdMapLine[]): string {
  return map.map((l) => `${l.inside}:${l.outside}:${l.count}`).join(',');
}

/**
 * A rootless root's snapshot files carry the host ids of the mapping they were made under, kept
 * in `<root>/engine/userns-map` (uid_map and gid_map). A later mapping that gives one of those
 * ids another host id, or none (the user's /etc/subuid range removed or changed), would read
 * them as other owners or nobody: RUN steps then fail on them (chmod: Operation not permitted
 * on busybox's /home/app) and copies cannot keep their owners. Refused (KLN0890). A
 * mapping that only adds ids (one id, then a range) is recorded and used.
 */
async function checkIdMapping(root: string, ns: UsernsState): Promise<void> {
  const now = {
    uid: parseIdMap(await readFile('/proc/self/uid_map', 'utf8')),
    gid: parseIdMap(await readFile('/proc/self/gid_map', 'utf8')),
  };
  const line = `uid ${formatMap(now.uid)} gid ${formatMap(now.gid)}\n`;
  const file = join(root, 'engine', 'userns-map');
  const saved = await readFile(file, 'utf8').catch(() => undefined);
  if (saved === line) return;
  const m = saved === undefined ? null : /^uid (\S*) gid (\S*)\n?$/.exec(saved);
  if (m !== null) {
    const before = { uid: parseIdMap((m[1] ?? '').replaceAll(',', '\n').replaceAll(':', ' ')), gid: parseIdMap((m[2] ?? '').replaceAll(',', '\n').replaceAll(':', ' ')) };
    if (!idMapCovers(now.uid, before.uid) || !idMapCovers(now.gid, before.gid)) {
      throw new RootlessError(
        `cannot use the kiln root ${root}: its snapshots were made with the uid map ${formatMap(before.uid)}, and kiln's user namespace now has ${formatMap(now.uid)} (inside:host:count): their files would change owners`,
        { hint: `give ${ns.user} that range again in /etc/subuid and /etc/subgid, or use another root (--root DIR); kiln prune --all with the old range empties this one` },
      );
    }
  }
  await mkdir(join(root, 'engine'), { recursive: true });
  await writeFileAtomic(file, Buffer.from(line));
}

/**
 * Rootless kiln (KLN0890) uses only a root its user owns: another user's files there are not
 * its to change, and inside its namespace they belong to nobody. Every command that resolves a
 * root checks (a missing root is made later, the user's).
 */
export function checkRootlessRoot(root: string): void {
  const ns = usernsState();
  if (ns === undefined) return;
  // Root inside is the user outside: any other owner is another user (unmapped: nobody).
  const st = statSync(root, { throwIfNoEntry: false });
  if (st !== undefined && st.uid !== 0) {
    throw new RootlessError(`cannot use the kiln root ${root}: it belongs to another user, and kiln runs rootless as ${ns.user}`, {
      hint: `use a root of your own (--root DIR, KILN_ROOT=DIR; default ~/.local/share/kiln), or run kiln as the root's owner`,
    });
  }
}
