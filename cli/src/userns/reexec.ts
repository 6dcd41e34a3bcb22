import { spawn } from 'node:child_process';
import { closeSync, readFileSync, statSync, writeSync } from 'node:fs';
import { constants, userInfo } from 'node:os';
import { isatty } from 'node:tty';
import { commandOf } from '../daemon/protocol.js';
import { planUserns, unshareArgs, type UsernsPlan } from './subid.js';

/**
 * Rootless kiln's launcher. A non-root user's kiln re-executes itself under `unshare(1)` in a
 * user namespace whose root is the user (and 1…N its /etc/subuid range when it has one and
 * newuidmap is there) plus a private mount namespace: overlay snapshots, runc and chown then
 * work as for root, on files the user owns outside. As buildkitd runs under rootlesskit, except
 * that the network stays the host's (RUN's default network is the host's, as in BuildKit's
 * rootless mode). Node cannot unshare itself (it is threaded), hence the re-exec; a `kiln
 * daemon` started by the user runs inside, and the clients that talk to it stay outside.
 *
 * Built-ins only: this runs in cli/bin/kiln.js before the CLI loads (bundled with the daemon client).
 */

/** runtime's USERNS_ENV (runtime/src/userns/state.ts): `MODE:UID:GID:USER` for the process inside. */
export const USERNS_ENV = 'KILN_USERNS';
/** The fd the process inside writes one byte to once kiln runs there (the launcher's handshake). */
const READY_ENV = 'KILN_USERNS_READY';

/** Commands that never touch a root's snapshots: they run where they are, without a namespace. */
const HOST_COMMANDS: ReadonlySet<string> = new Set(['llb', 'dump-llb', 'check', 'imagetools']);

/** The `KILN_USERNS` value for `plan`. Pure. */
export function usernsEnvValue(plan: UsernsPlan, uid: number, gid: number, user: string): string {
  return `${plan.mode}:${uid}:${gid}:${user}`;
}

/**
 * Runs this kiln invocation in rootless kiln's namespace when it needs one (a non-root user, a
 * command that opens a kiln root): resolves to the exit code of kiln inside, or undefined when
 * the command runs in this process (root, already inside, or a command without a root).
 */
export async function runInUserNamespace(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  const inside = env[USERNS_ENV];
  if (inside !== undefined && inside !== '') {
    signalReady(env);
    return undefined;
  }
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0) return undefined;
  const command = commandOf(argv);
  if (command === undefined || HOST_COMMANDS.has(command)) return undefined;
  return await launch(argv, env, uid, process.getgid?.() ?? uid);
}

/** Inside: tells the launcher kiln started (so a failure before is the namespace's, not kiln's). */
function signalReady(env: NodeJS.ProcessEnv): void {
  const fd = Number(env[READY_ENV]);
  delete env[READY_ENV];
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeSync(fd, 'r');
    closeSync(fd);
  } catch {
    // the launcher went away: nothing to tell
  }
}

function fail(message: string, hint: string): number {
  process.stderr.write(`kiln: error KLN0890: ${message}\nhint: ${hint}\n`);
  return 1;
}

/** The first executable `name` on PATH. */
function findTool(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin').split(':')) {
    if (dir === '') continue;
    const p = `${dir}/${name}`;
    try {
      const st = statSync(p, { throwIfNoEntry: false });
      if (st !== undefined && st.isFile() && (st.mode & 0o111) !== 0) return p;
    } catch {
      // a PATH directory this user may not read (EACCES): as execvp, go on
    }
  }
  return undefined;
}

function readSmall(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads a small file, undefined when it is not there (the launcher's: {@link readSmall}). */
export type SmallFileReader = (path: string) => string | undefined;

/** Why this kernel refuses an unprivileged user namespace, if its settings (read by `read`) say so. */
export function usernsDisabled(read: SmallFileReader = readSmall): string | undefined {
  if (read('/proc/sys/user/max_user_namespaces')?.trim() === '0') return 'user namespaces are off (user.max_user_namespaces = 0): sudo sysctl -w user.max_user_namespaces=28633';
  if (read('/proc/sys/kernel/unprivileged_userns_clone')?.trim() === '0') return 'unprivileged user namespaces are off (kernel.unprivileged_userns_clone = 0): sudo sysctl -w kernel.unprivileged_userns_clone=1';
  return undefined;
}

function passwdEntry(): { readonly username: string; readonly homedir: string } | undefined {
  try {
    return userInfo();
  } catch {
    return undefined; // no passwd entry (a container's arbitrary uid): subuid lines may name the uid
  }
}

/**
 * The environment of kiln inside: the caller's, its namespace described, and HOME set from the
 * user's passwd entry when the caller has none (cron, `env -i`, systemd): inside, Node's homedir()
 * falls back to uid 0's entry, so the default root and config file were looked for under /root.
 */
export function insideEnv(env: NodeJS.ProcessEnv, value: string, passwdHome: string | undefined): NodeJS.ProcessEnv {
  const home = env['HOME'] === undefined || env['HOME'] === '' ? passwdHome : undefined;
  return { ...env, ...(home === undefined || home === '' ? {} : { HOME: home }), [USERNS_ENV]: value, [READY_ENV]: '3' };
}

async function launch(argv: readonly string[], env: NodeJS.ProcessEnv, uid: number, gid: number): Promise<number> {
  const pw = passwdEntry();
  const user = pw?.username;
  const who = user ?? String(uid);
  const rootless = `kiln runs rootless for ${who} (uid ${uid}): it needs a user namespace of its own`;
  const disabled = usernsDisabled();
  if (disabled !== undefined) return fail(`${rootless}, and this kernel allows none`, `${disabled}, or run kiln as root`);
  const unshare = findTool('unshare', env['PATH']);
  if (unshare === undefined) return fail(`${rootless}, made with unshare(1), which is not on PATH`, 'install util-linux (Debian: sudo apt-get install util-linux), or run kiln as root');
  const plan = planUserns({
    uid,
    user,
    subuid: readSmall('/etc/subuid'),
    subgid: readSmall('/etc/subgid'),
    idmapTools: findTool('newuidmap', env['PATH']) !== undefined && findTool('newgidmap', env['PATH']) !== undefined,
  });
  const child = spawn(unshare, [...unshareArgs(plan), '--', process.execPath, ...process.execArgv, ...argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
    env: insideEnv(env, usernsEnvValue(plan, uid, gid, who), pw?.homedir),
  });
  // Ctrl-C on a terminal reaches kiln inside too (same process group): forwarding it would be a
  // second one (kiln's "stop now"). Without a terminal, a SIGINT can only be meant for this pid.
  const tty = isatty(0) || isatty(1) || isatty(2);
  const forward = (sig: NodeJS.Signals): void => {
    if (sig !== 'SIGINT' || !tty) child.kill(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, forward);
  let ready = false;
  const readyPipe = child.stdio[3];
  readyPipe?.on('data', () => void (ready = true));
  readyPipe?.on('error', () => undefined);
  return await new Promise<number>((resolve) => {
    child.once('error', (e) => {
      for (const s of signals) process.off(s, forward);
      resolve(fail(`${rootless}, and ${unshare} did not start: ${e.message}`, 'check that unshare(1) from util-linux runs for this user'));
    });
    // 'close', not 'exit': the ready byte has been read by then.
    child.once('close', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      if (ready || signal !== null) {
        resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
        return;
      }
      resolve(fail(`${rootless}, and unshare could not make it (exit status ${code ?? 'unknown'}; its message is above)`, namespaceHint(plan)));
    });
  });
}

/** What to check when unshare failed for `plan`. */
export function namespaceHint(plan: UsernsPlan, read: SmallFileReader = readSmall): string {
  if (read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns')?.trim() === '1') {
    return 'AppArmor restricts unprivileged user namespaces here (kernel.apparmor_restrict_unprivileged_userns = 1): allow them for unshare with an AppArmor profile, or run kiln as root';
  }
  if (plan.mode === 'ranged') {
    return `newuidmap/newgidmap refused the ranges ${plan.uids.start}+${plan.uids.count} (/etc/subuid) and ${plan.gids.start}+${plan.gids.count} (/etc/subgid): check that they are setuid root (uidmap package) and that the ranges belong to this user; mapping a range needs unshare from util-linux 2.38 or later (--map-users)`;
  }
  return 'unprivileged user namespaces may be disabled (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone) or blocked by a seccomp profile of this container; or run kiln as root';
}
