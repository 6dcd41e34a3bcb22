import { spawn } from 'node:child_process';
import { closeSync, lstatSync, readFileSync, statSync, writeSync, type Stats } from 'node:fs';
import { Socket } from 'node:net';
import { constants, tmpdir, userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { isatty } from 'node:tty';
import { addrFlagOf, commandOf, daemonSocketPath } from '../daemon/protocol.js';
import { idMapArgs, planUserns, rangesText, unshareArgs, type IdRange, type UsernsPlan } from './subid.js';

/**
 * Rootless kiln's launcher. A non-root user's kiln re-executes itself under `unshare(1)` in a
 * user namespace whose root is the user (and 1…N its /etc/subuid ranges when it has some and
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
/** The launcher's pid: kiln inside stops (as for SIGTERM) once it is no longer its parent. */
const LAUNCHER_ENV = 'KILN_USERNS_LAUNCHER';
/**
 * `dev:ino` of the `kiln daemon` socket's directory when the launcher saw it owned by root (/tmp):
 * inside, a host owner the namespace does not map shows as the overflow uid (65534), whoever it
 * is, so the daemon takes the launcher's word for this one directory (socket-dir.ts).
 */
export const ROOT_SOCKET_DIR_ENV = 'KILN_USERNS_ROOT_SOCKET_DIR';
/** How often kiln inside looks for its launcher (a SIGKILLed launcher cannot say it is going). */
const LAUNCHER_POLL_MS = 500;
/**
 * Ranged: what runs first inside, unmapped: it says it is in the namespace (`u` on fd 3), waits
 * for the launcher's newuidmap/newgidmap (`m`), then executes kiln, which gets root's
 * capabilities in the namespace only by an exec made once uid 0 is mapped.
 */
const WAIT_FOR_MAPS = 'printf u >&3 && read -r go <&3 && [ "$go" = m ] && exec "$@"';

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
    watchLauncher(env);
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

/**
 * Inside: once the launcher is gone (SIGKILLed: it could forward nothing), this process stops as
 * a SIGTERM stops it: the build is cancelled, its containers killed, the cache store left
 * consistent, a daemon closed. Its parent is the launcher (unshare and sh execute, they do not
 * fork), so a parent that changed is a launcher that died. A poll: Node has no PR_SET_PDEATHSIG,
 * and a pipe kept open here would leak into every process kiln starts.
 */
function watchLauncher(env: NodeJS.ProcessEnv): void {
  const launcher = Number(env[LAUNCHER_ENV]);
  delete env[LAUNCHER_ENV];
  if (!Number.isInteger(launcher) || launcher <= 1) return;
  const timer = setInterval(() => {
    if (process.ppid === launcher) return;
    clearInterval(timer);
    try {
      writeSync(2, `kiln: the kiln that started this one in its user namespace (pid ${launcher}) is gone: stopping as for SIGTERM\n`);
    } catch {
      // no stderr left: stop all the same
    }
    process.kill(process.pid, 'SIGTERM');
  }, LAUNCHER_POLL_MS);
  timer.unref();
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
export function insideEnv(env: NodeJS.ProcessEnv, value: string, passwdHome: string | undefined, launcher: number): NodeJS.ProcessEnv {
  const home = env['HOME'] === undefined || env['HOME'] === '' ? passwdHome : undefined;
  return { ...env, ...(home === undefined || home === '' ? {} : { HOME: home }), [USERNS_ENV]: value, [READY_ENV]: '3', [LAUNCHER_ENV]: String(launcher) };
}

/**
 * For `kiln daemon`: the `dev:ino` of its socket's directory (`--addr`, `KILN_HOST`, the default;
 * relative to `cwd`) when root owns it here, outside, and it is sticky or closed to others: what
 * the daemon's own check would accept from root, which it cannot tell apart inside. Else undefined.
 */
export function rootSocketDir(argv: readonly string[], env: NodeJS.ProcessEnv, uid: number, cwd: string, stat: (p: string) => { isDirectory(): boolean; uid: number; mode: number; dev: number; ino: number } | undefined): string | undefined {
  if (commandOf(argv) !== 'daemon') return undefined;
  const addr = addrFlagOf(argv);
  const dir = dirname(resolve(cwd, daemonSocketPath(addr === undefined ? env : { ...env, KILN_HOST: addr }, uid, tmpdir())));
  const st = stat(dir);
  if (st === undefined || !st.isDirectory() || st.uid !== 0) return undefined;
  const open = (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0;
  return open ? undefined : `${st.dev}:${st.ino}`;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * Ranged: writes the id maps of the waiting process `pid` with newuidmap and newgidmap (both at
 * once). Resolves to undefined, or to what they said when one refused.
 */
async function mapIds(pid: number, tools: { readonly uid: string; readonly gid: string }, own: { readonly uid: number; readonly gid: number }, plan: { readonly uids: readonly IdRange[]; readonly gids: readonly IdRange[] }): Promise<string | undefined> {
  const run = (tool: string, args: readonly string[]): Promise<string | undefined> =>
    new Promise((done) => {
      const p = spawn(tool, [String(pid), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => void (err += d.toString()));
      p.once('error', (e) => done(`${tool}: ${e.message}`));
      p.once('close', (code) => done(code === 0 ? undefined : err.trim() || `${tool} exited with status ${code ?? 'unknown'}`));
    });
  const [u, g] = await Promise.all([run(tools.uid, idMapArgs(own.uid, plan.uids)), run(tools.gid, idMapArgs(own.gid, plan.gids))]);
  return u ?? g;
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
  const newuidmap = findTool('newuidmap', env['PATH']);
  const newgidmap = findTool('newgidmap', env['PATH']);
  const plan = planUserns({ uid, gid, user, subuid: readSmall('/etc/subuid'), subgid: readSmall('/etc/subgid'), idmapTools: newuidmap !== undefined && newgidmap !== undefined });
  const kiln = [process.execPath, ...process.execArgv, ...argv.slice(1)];
  const inner = plan.mode === 'ranged' ? ['/bin/sh', '-c', WAIT_FOR_MAPS, 'kiln', ...kiln] : kiln;
  const socketDir = rootSocketDir(argv, env, uid, process.cwd(), lstatOrUndefined);
  const child = spawn(unshare, [...unshareArgs(plan), '--', ...inner], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
    env: { ...insideEnv(env, usernsEnvValue(plan, uid, gid, who), pw?.homedir, process.pid), ...(socketDir === undefined ? {} : { [ROOT_SOCKET_DIR_ENV]: socketDir }) },
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
  let mapFailure: string | undefined;
  const readyPipe = child.stdio[3];
  readyPipe?.on('data', (d: Buffer) => {
    if (d.includes('r')) ready = true;
    if (d.includes('u') && plan.mode === 'ranged' && newuidmap !== undefined && newgidmap !== undefined) {
      void mapIds(child.pid ?? 0, { uid: newuidmap, gid: newgidmap }, { uid, gid }, plan).then((failure) => {
        if (failure === undefined && readyPipe instanceof Socket) readyPipe.write('m\n');
        else {
          mapFailure = failure ?? 'no pipe to the waiting process';
          child.kill('SIGKILL');
        }
      });
    }
  });
  readyPipe?.on('error', () => undefined);
  return await new Promise<number>((resolve) => {
    child.once('error', (e) => {
      for (const s of signals) process.off(s, forward);
      resolve(fail(`${rootless}, and ${unshare} did not start: ${e.message}`, 'check that unshare(1) from util-linux runs for this user'));
    });
    // 'close', not 'exit': the ready byte has been read by then.
    child.once('close', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      if (mapFailure !== undefined && plan.mode === 'ranged') {
        resolve(fail(`${rootless}, and newuidmap/newgidmap refused to map the ranges ${rangesText(plan.uids)} (/etc/subuid) and ${rangesText(plan.gids)} (/etc/subgid): ${mapFailure}`, mapHint()));
        return;
      }
      if (ready || signal !== null) {
        resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
        return;
      }
      resolve(fail(`${rootless}, and unshare could not make it (exit status ${code ?? 'unknown'}; its message is above)`, namespaceHint()));
    });
  });
}

/** What to check when newuidmap/newgidmap refused the ranges. */
function mapHint(): string {
  return 'check that newuidmap/newgidmap are setuid root (reinstall the uidmap package) and that /etc/subuid and /etc/subgid give these ranges to this user';
}

/** What to check when unshare failed. */
export function namespaceHint(read: SmallFileReader = readSmall): string {
  if (read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns')?.trim() === '1') {
    return 'AppArmor restricts unprivileged user namespaces here (kernel.apparmor_restrict_unprivileged_userns = 1): allow them for unshare with an AppArmor profile, or run kiln as root';
  }
  return 'unprivileged user namespaces may be disabled (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone) or blocked by a seccomp profile of this container; or run kiln as root';
}
