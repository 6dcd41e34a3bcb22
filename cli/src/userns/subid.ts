/**
 * The id maps of rootless kiln's user namespace, from /etc/subuid and /etc/subgid (subuid(5)):
 * root inside is the user, and 1…N the user's first subordinate range, as rootlesskit maps
 * (and util-linux `unshare --map-auto` picks the first range). Pure: the launcher reads the files.
 */

/** A block of subordinate ids: `start` … `start + count - 1` on the host. */
export interface IdRange {
  readonly start: number;
  readonly count: number;
}

/**
 * The ranges `/etc/subuid`-format `text` gives the user named `name` or numbered `id`, in file
 * order. Lines are `NAME|ID:START:COUNT`; blank, `#` and malformed lines are skipped, as
 * shadow's own reader skips what it cannot parse.
 */
export function subIdRanges(text: string, name: string | undefined, id: number): IdRange[] {
  const out: IdRange[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([^:]+):(\d+):(\d+)$/.exec(line);
    if (m === null) continue;
    const owner = m[1] as string;
    if (owner !== name && owner !== String(id)) continue;
    const start = Number(m[2]);
    const count = Number(m[3]);
    // The mapped block sits at 1… inside: an id past 2^32-2 cannot be mapped.
    if (count < 1 || start < 1 || start + count > 0xffffffff) continue;
    out.push({ start, count });
  }
  return out;
}

/** How the launcher makes the namespace (see {@link planUserns}). */
export type UsernsPlan =
  | { readonly mode: 'ranged'; readonly uids: IdRange; readonly gids: IdRange }
  | { readonly mode: 'single'; readonly why: string };

/** What {@link planUserns} looks at. */
export interface UsernsHost {
  readonly uid: number;
  /** The user's login name (from passwd), if any: subuid lines may name it or its uid. */
  readonly user: string | undefined;
  /** /etc/subuid and /etc/subgid text; undefined when a file is missing. */
  readonly subuid: string | undefined;
  readonly subgid: string | undefined;
  /** newuidmap and newgidmap (setuid, the uidmap package) are installed. */
  readonly idmapTools: boolean;
}

/**
 * Ranged when the user has a subordinate uid and gid range and the tools to map them, else a
 * single mapping (uid/gid 0 only) and why, for the error a file of another owner gets.
 */
export function planUserns(h: UsernsHost): UsernsPlan {
  const uids = subIdRanges(h.subuid ?? '', h.user, h.uid)[0];
  // subgid(5) lines name the user too (its login or uid), not a group.
  const gids = subIdRanges(h.subgid ?? '', h.user, h.uid)[0];
  const who = h.user ?? String(h.uid);
  if (uids === undefined || gids === undefined) {
    const missing = [uids === undefined ? '/etc/subuid' : undefined, gids === undefined ? '/etc/subgid' : undefined].filter((f) => f !== undefined).join(' and ');
    return { mode: 'single', why: `${who} has no range in ${missing}` };
  }
  if (!h.idmapTools) return { mode: 'single', why: 'newuidmap/newgidmap (the uidmap package) are not installed' };
  return { mode: 'ranged', uids, gids };
}

/**
 * The `unshare(1)` options (util-linux ≥ 2.38) that make kiln's namespaces for `plan`: a user
 * namespace whose root is the user, and a private mount namespace (mounts stay inside and go
 * with the process). For a range, unshare forks a helper that runs newuidmap/newgidmap on the
 * waiting process: the parent/child handshake rootlesskit does.
 */
export function unshareArgs(plan: UsernsPlan): string[] {
  const args = ['--user', '--map-root-user', '--mount', '--propagation', 'private'];
  if (plan.mode === 'ranged') args.push(`--map-users=${plan.uids.start},1,${plan.uids.count}`, `--map-groups=${plan.gids.start},1,${plan.gids.count}`);
  return args;
}
