import { readFileSync } from 'node:fs';

/**
 * Rootless kiln: a non-root user's engine runs as uid 0 of a user namespace kiln made for it
 * (cli/src/userns re-executes kiln under `unshare`), as buildkitd runs under rootlesskit.
 * `ranged`: uids/gids 1… map to the user's /etc/subuid and /etc/subgid range, so image files of
 * any owner keep it. `single`: only 0 (the user) exists inside; other owners cannot be set.
 */
export type UsernsMode = 'ranged' | 'single';

/** The variable that tells the re-executed kiln it runs in its namespace: `MODE:UID:GID:USER`. */
export const USERNS_ENV = 'KILN_USERNS';

/** The namespace this process runs in, as the launcher described it. */
export interface UsernsState {
  readonly mode: UsernsMode;
  /** The user's ids outside, which root inside stands for. */
  readonly hostUid: number;
  readonly hostGid: number;
  /** The user's name (or uid when there is no passwd entry), for hints. */
  readonly user: string;
  /**
   * How many ids exist inside (0 … ids-1, uids and gids alike): 1 for `single`, 1 + the sizes of
   * the subordinate ranges for `ranged` (the smaller total when /etc/subuid and /etc/subgid differ).
   */
  readonly ids: number;
}

/** Parses {@link USERNS_ENV}'s value; undefined for anything else. Pure. */
export function parseUsernsEnv(value: string | undefined): Omit<UsernsState, 'ids'> | undefined {
  const m = /^(ranged|single):(\d+):(\d+):(.*)$/.exec(value ?? '');
  if (m === null) return undefined;
  return { mode: m[1] as UsernsMode, hostUid: Number(m[2]), hostGid: Number(m[3]), user: m[4] as string };
}

/** The number of uids a `/proc/self/uid_map` text maps. Pure. */
export function mappedIds(uidMap: string): number {
  let n = 0;
  for (const line of uidMap.split('\n')) {
    const count = Number(line.trim().split(/\s+/)[2]);
    if (Number.isFinite(count)) n += count;
  }
  return n;
}

let cached: { readonly state: UsernsState | undefined } | undefined;

/**
 * The user namespace kiln runs in, or undefined (root on the host, or a variable not set by
 * kiln's launcher: this process must be uid 0 and its uid 0 the user's uid outside).
 */
export function usernsState(): UsernsState | undefined {
  if (cached !== undefined) return cached.state;
  let state: UsernsState | undefined;
  const parsed = parseUsernsEnv(process.env[USERNS_ENV]);
  if (parsed !== undefined && process.getuid?.() === 0) {
    try {
      const map = readFileSync('/proc/self/uid_map', 'utf8');
      const first = map.trim().split('\n')[0]?.trim().split(/\s+/) ?? [];
      if (first[0] === '0' && Number(first[1]) === parsed.hostUid) state = { ...parsed, ids: Math.min(mappedIds(map), mappedIds(readFileSync('/proc/self/gid_map', 'utf8'))) };
    } catch {
      // no /proc: not kiln's namespace
    }
  }
  cached = { state };
  return state;
}

/**
 * The uid that decides per-user defaults (kiln root, config file, daemon socket): the user's
 * own outside, also inside kiln's namespace where this process is uid 0.
 */
export function callerUid(): number | undefined {
  return usernsState()?.hostUid ?? process.getuid?.();
}

/** One line of a `/proc/PID/uid_map`: `count` ids from `inside` are `outside` … on the host. */
export interface IdMapLine {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** This process's id maps (`/proc/self/uid_map`, `gid_map`) in kiln's user namespace; undefined outside one. */
export function usernsMaps(): { readonly uids: IdMapLine[]; readonly gids: IdMapLine[] } | undefined {
  if (usernsState() === undefined) return undefined;
  try {
    return { uids: parseIdMap(readFileSync('/proc/self/uid_map', 'utf8')), gids: parseIdMap(readFileSync('/proc/self/gid_map', 'utf8')) };
  } catch {
    return undefined;
  }
}

/** Parses `/proc/PID/uid_map` (or gid_map) text; malformed lines are skipped. Pure. */
export function parseIdMap(text: string): IdMapLine[] {
  const out: IdMapLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length === 3 && f.every((n) => Number.isInteger(n) && n >= 0)) out.push({ inside: f[0] as number, outside: f[1] as number, count: f[2] as number });
  }
  return out;
}

/**
 * Whether every id `before` maps is mapped to the same host id by `now`: files a kiln root's
 * snapshots got under `before` then keep their owners under `now` (one id → a range is fine;
 * a range → one id, or another range, is not). Pure.
 */
export function idMapCovers(now: readonly IdMapLine[], before: readonly IdMapLine[]): boolean {
  return before.every((b) => {
    for (let id = b.inside; id < b.inside + b.count; ) {
      const l = now.find((n) => id >= n.inside && id < n.inside + n.count);
      if (l === undefined || l.outside - l.inside !== b.outside - b.inside) return false;
      id = l.inside + l.count;
    }
    return true;
  });
}
