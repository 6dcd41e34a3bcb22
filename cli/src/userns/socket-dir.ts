import { RootlessError, usernsState, type UsernsState } from '@kiln/runtime';
import { ROOT_SOCKET_DIR_ENV } from './reexec.js';

/** What {@link rootlessSocketDir} looks at: the socket directory's lstat, as seen inside. */
export interface SocketDirStat {
  isDirectory(): boolean;
  readonly uid: number;
  readonly dev: number;
  readonly ino: number;
}

/**
 * `kiln daemon`'s socket directory in rootless kiln's user namespace, where uid 0 is the user and
 * any host owner the namespace does not map (root's /tmp, another user's directory) shows as
 * the overflow uid (65534): `root` when it is the directory the launcher saw owned by root
 * outside (reexec.ts rootSocketDir: /tmp), a KLN0891 when it belongs to someone else, else
 * undefined (not in a namespace, or the user's own: the daemon's usual check applies). `env`
 * and `ns` default to this process's.
 */
export function rootlessSocketDir(dir: string, st: SocketDirStat, env: NodeJS.ProcessEnv = process.env, ns: UsernsState | undefined = usernsState()): 'root' | RootlessError | undefined {
  if (ns === undefined || !st.isDirectory() || st.uid === 0) return undefined;
  if (env[ROOT_SOCKET_DIR_ENV] === `${st.dev}:${st.ino}`) return 'root';
  return new RootlessError(
    `cannot listen in ${dir}: kiln runs rootless as ${ns.user}, and ${dir} belongs to another user (uid ${st.uid} in kiln's user namespace, where owners it does not map show as 65534)`,
    { code: 'KLN0891', hint: `put the socket in a directory of your own: --addr unix://$XDG_RUNTIME_DIR/kiln/kilnd.sock, or a directory made with mkdir -m 700 first; a sticky directory of root's (/tmp) works too` },
  );
}
