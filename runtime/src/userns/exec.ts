import { RootlessError, subidHint } from './errors.js';
import type { UsernsState } from './state.js';

/** The ids of a container process (runtime/src/executor/user.ts ResolvedUser's). */
export interface ProcessIds {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: readonly number[];
}

/**
 * A RUN's process ids in kiln's user namespace, where only ids 0 … `ids - 1` exist. An unmapped
 * uid or primary gid is a {@link RootlessError} naming the user (runc would fail with setresuid's
 * "invalid argument"); unmapped supplementary groups (root's `wheel`, `adm`… from the image's
 * /etc/group) are left out, since no process inside can be in them. Pure.
 */
export function rootlessProcessIds<T extends ProcessIds>(user: T, state: UsernsState, asked: string | undefined): T {
  if (user.uid >= state.ids || user.gid >= state.ids) {
    const who = `${asked === undefined || asked === '' ? 'the image user' : `user "${asked}"`} (uid ${user.uid}, gid ${user.gid})`;
    const hint =
      state.mode === 'single'
        ? subidHint(state.user)
        : `give ${state.user} a larger range (65536 ids cover the usual images): sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${state.user}`;
    const why = state.mode === 'single' ? 'kiln runs rootless with only uid/gid 0' : `kiln's user namespace maps only ids 0-${state.ids - 1}`;
    throw new RootlessError(`cannot run as ${who}: ${why}`, { hint });
  }
  const additionalGids = user.additionalGids.filter((g) => g < state.ids);
  return additionalGids.length === user.additionalGids.length ? user : { ...user, additionalGids };
}
