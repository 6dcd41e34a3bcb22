/**
 * The id maps of rootless kiln's user namespace, from /etc/subuid and /etc/subgid (subuid(5)):
 * root inside is the user, and 1…N all of the user's subordinate ranges one after the other, in
 * file order, as rootlesskit maps them (parent.go newugidmapArgsFromSubIDRanges). Pure: the
 * launcher reads the files.
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

/** Lines a uid_map may have (the kernel's UID_GID_MAP_MAX_EXTENTS since Linux 4.15): one is 0 → the user. */
const MAX_MAP_LINES = 340;

/**
 * The ranges of `ranges` (file order) that can go into one id map beside `own` (the user's id,
 * root inside): the kernel refuses a map whose host ids overlap, so a range that overlaps the
 * user's id or an earlier range (a user listed by name and by uid with the same block) is left
 * out rather than failing the whole namespace; so are ranges past the kernel's 340 lines, or past
 * the last 32-bit id inside. Pure.
 */
export function mappableRanges(ranges: readonly IdRange[], own: number): IdRange[] {
  const out: IdRange[] = [];
  let inside = 1;
  const overlaps = (a: IdRange, b: IdRange): boolean => a.start < b.start + b.count && b.start < a.start + a.count;
  for (const r of ranges) {
    if (out.length === MAX_MAP_LINES - 1) break;
    if (overlaps(r, { start: own, count: 1 }) || out.some((o) => overlaps(o, r))) continue;
    if (inside + r.count > 0xffffffff) continue;
    out.push(r);
    inside += r.count;
  }
  return out;
}

/** How the launcher makes the namespace (see {@link planUserns}). */
export type UsernsPlan =
  | { readonly mode: 'ranged'; readonly uids: readonly IdRange[]; readonly gids: readonly IdRange[] }
  | { readonly mode: 'single'; readonly why: string };

/** What {@link planUserns} looks at. */
export interface UsernsHost {
  readonly uid: number;
  readonly gid: number;
  /** The user's login name (from passwd), if any: subuid lines may name it or its uid. */
  readonly user: string | undefined;
  /** /etc/subuid and /etc/subgid text; undefined when a file is missing. */
  readonly subuid: string | undefined;
  readonly subgid: string | undefined;
  /** newuidmap and newgidmap (setuid, the uidmap package) are installed. */
  readonly idmapTools: boolean;
}

/**
 * Ranged when the user has subordinate uids and gids and the tools to map them (every range, see
 * {@link mappableRanges}), else a single mapping (uid/gid 0 only) and why, for the error a file
 * of another owner gets.
 */
export function planUserns(h: UsernsHost): UsernsPlan {
  const uids = mappableRanges(subIdRanges(h.subuid ?? '', h.user, h.uid), h.uid);
  // subgid(5) lines name the user too (its login or uid), not a group.
  const gids = mappableRanges(subIdRanges(h.subgid ?? '', h.user, h.uid), h.gid);
  const who = h.user ?? String(h.uid);
  if (uids.length === 0 || gids.length === 0) {
    const missing = [uids.length === 0 ? '/etc/subuid' : undefined, gids.length === 0 ? '/etc/subgid' : undefined].filter((f) => f !== undefined).join(' and ');
    return { mode: 'single', why: `${who} has no range in ${missing}` };
  }
  if (!h.idmapTools) return { mode: 'single', why: 'newuidmap/newgidmap (the uidmap package) are not installed' };
  return { mode: 'ranged', uids, gids };
}

/**
 * newuidmap/newgidmap's arguments after the pid: `0 OWN 1`, then each range at the next free id
 * inside (`1 START COUNT`, `1+COUNT START2 COUNT2` …), as rootlesskit passes them. Pure.
 */
export function idMapArgs(own: number, ranges: readonly IdRange[]): string[] {
  const args = ['0', String(own), '1'];
  let inside = 1;
  for (const r of ranges) {
    args.push(String(inside), String(r.start), String(r.count));
    inside += r.count;
  }
  return args;
}

/** `ranges` as `START+COUNT` items, for messages. */
export function rangesText(ranges: readonly IdRange[]): string {
  return ranges.map((r) => `${r.start}+${r.count}`).join(', ');
}

/**
 * The `unshare(1)` options that make kiln's namespaces for `plan`: a user namespace and a private
 * mount namespace (mounts stay inside and go with the process). A single mapping is unshare's
 * own `--map-root-user`. A range is mapped by the launcher with newuidmap/newgidmap while the
 * process inside waits (the parent/child handshake rootlesskit does): unshare ≤ 2.39 maps one
 * range only (`--map-users` once).
 */
export function unshareArgs(plan: UsernsPlan): string[] {
  return ['--user', ...(plan.mode === 'single' ? ['--map-root-user'] : []), '--mount', '--propagation', 'private'];
}
