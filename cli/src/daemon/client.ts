import { lstatSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { isatty } from 'node:tty';
// Rootless kiln's launcher rides in the same small bundle: kiln.js asks it right after the daemon.
export { runInUserNamespace } from '../userns/reexec.js';
import { commandOf, DAEMON_COMMANDS, daemonSocketPath, Frame, FrameReader, frame, PROTOCOL_VERSION, trustedSocket, type Hello } from './protocol.js';

/** What the user can do when the daemon went away mid-command (the Perl client prints the same line). */
const DAEMON_GONE_HINT = 'hint: the daemon stopped (killed, crashed or shut down): see its log, then run the command again (with no daemon it runs in its own process)';

/**
 * Runs this `kiln` invocation on a running `kiln daemon`, if there is one for it: the daemon
 * already has kiln loaded, its engine open and its code warm, so a build costs what the build
 * costs rather than a Node start-up and module load each time. Resolves to the exit code, or
 * `undefined` when the command must run in this process (no daemon, `KILN_DAEMON=0`, another
 * root, a command the daemon does not serve). Only Node built-ins are loaded on this path.
 */
export async function runViaDaemon(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  if (env['KILN_DAEMON'] === '0') return undefined;
  const command = commandOf(argv);
  if (command === undefined || !DAEMON_COMMANDS.has(command)) return undefined;
  const path = daemonSocketPath(env, process.getuid?.(), tmpdir());
  if (!trusted(path)) return undefined;
  const socket = await tryConnect(path);
  if (socket === undefined) return undefined;
  return session(socket, {
    version: PROTOCOL_VERSION,
    pid: process.pid,
    argv,
    cwd: process.cwd(),
    env,
    // isatty, not process.stdin: that getter opens a stream on fd 0 the client may never read.
    stdin: { isTTY: isatty(0) },
    stdout: { isTTY: process.stdout.isTTY === true },
    stderr: {
      isTTY: process.stderr.isTTY === true,
      ...(process.stderr.columns === undefined ? {} : { columns: process.stderr.columns }),
      ...(process.stderr.rows === undefined ? {} : { rows: process.stderr.rows }),
    },
  });
}

/**
 * The hello carries this process's environment: it goes only to a socket of this user in a
 * directory others cannot write to. A socket that is there but not trusted is reported once.
 */
function trusted(path: string): boolean {
  let sock;
  let dir;
  try {
    sock = lstatSync(path);
    dir = lstatSync(dirname(path));
  } catch {
    return false; // no daemon
  }
  if (trustedSocket(sock, dir, process.getuid?.() ?? 0)) return true;
  process.stderr.write(`kiln: warning: not using the daemon socket ${path}: it or its directory belongs to another user or others can write there\n`);
  return false;
}

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    // No daemon (ENOENT), a stale socket (ECONNREFUSED) or another user's (EACCES): run in-process.
    socket.once('error', () => resolve(undefined));
  });
}

function session(socket: Socket, hello: Hello): Promise<number | undefined> {
  return new Promise((resolve) => {
    let done = false;
    let stdinStarted = false;
    const finish = (code: number | undefined): void => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (stdinStarted) process.stdin.destroy();
      socket.end();
      resolve(code);
    };
    const onSignal = (sig: NodeJS.Signals): void => void socket.write(frame(Frame.Signal, sig));
    // A closed stdout (`kiln … | head`): end quietly, as kiln does in-process, instead of dying on
    // an unhandled EPIPE with a stack trace. Leaving cancels the command on the daemon.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') process.stderr.write(`kiln: error: cannot write to standard output: ${e.message}\n`);
      finish(e.code === 'EPIPE' ? 0 : 1);
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const reader = new FrameReader((kind, payload) => {
      switch (kind) {
        case Frame.Stdout:
          process.stdout.write(payload);
          break;
        case Frame.Stderr:
          process.stderr.write(payload);
          break;
        case Frame.WantStdin:
          if (stdinStarted) break;
          stdinStarted = true;
          // Read no faster than the daemon takes it (it stops reading past a few MB): a 2 GB
          // `docker save | kiln load` must not end up in this process's memory either.
          process.stdin.on('data', (chunk: Buffer) => {
            if (socket.write(frame(Frame.Stdin, chunk))) return;
            process.stdin.pause();
            socket.once('drain', () => process.stdin.resume());
          });
          process.stdin.once('end', () => socket.write(frame(Frame.StdinEnd)));
          break;
        case Frame.Exit:
          finish(Number(payload.toString('utf8')) || 0);
          break;
        case Frame.Decline:
          finish(undefined);
          break;
      }
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      if (done) return;
      process.stderr.write(`kiln: error KLN0709: the kiln daemon closed the connection before the command finished\n${DAEMON_GONE_HINT}\n`);
      finish(1);
    });
    socket.write(frame(Frame.Hello, JSON.stringify(hello)));
  });
}
