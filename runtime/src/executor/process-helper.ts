import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';

/**
 * Starts processes from a small co-process instead of from Node. Node's spawn forks the whole
 * Node process first, synchronously on the main thread, and that cost grows with its memory:
 * 10 ms at 50 MB RSS, 40 ms at 200 MB (median, load ~6), once per container of a build. One
 * long-lived `perl` process (a few MB; perl-base is Essential on Debian) forks a small monitor
 * per request, which runs the program with piped stdout/stderr, forwards its output and reports
 * its exit over the helper's stdout. Callers fall back to `child_process.spawn` when it is
 * unavailable.
 */

// Requests: "<tag> <hex argv0> <hex argv1> …". Answers, one line each (atomic pipe writes, < 4 KiB):
// "p <tag> <pid>", "o|e <tag> <hex chunk>", "f <tag> <errno> <message>" (exec failed), "x <tag> c|s <n>".
const SCRIPT = String.raw`
use strict; use warnings; use IO::Select; use POSIX ();
$SIG{CHLD} = 'IGNORE';
sub out { my $s = shift; syswrite(STDOUT, $s); }
sub monitor {
  my ($tag, @argv) = @_;
  $SIG{CHLD} = 'DEFAULT';
  pipe(my $or, my $ow) or return out("f $tag " . ($!+0) . " pipe\n");
  pipe(my $er, my $ew) or return out("f $tag " . ($!+0) . " pipe\n");
  pipe(my $sr, my $sw) or return out("f $tag " . ($!+0) . " pipe\n");
  my $kid = fork();
  if (!defined $kid) { out("f $tag " . ($!+0) . " fork\n"); return; }
  if ($kid == 0) {
    close $or; close $er; close $sr;
    open(STDIN, '<', '/dev/null'); open(STDOUT, '>&', $ow); open(STDERR, '>&', $ew);
    exec { $argv[0] } @argv;
    syswrite($sw, ($!+0) . " $!");
    POSIX::_exit(127);
  }
  close $ow; close $ew; close $sw;
  my $failed = '';
  sysread($sr, $failed, 512);
  close $sr;
  if ($failed ne '') { waitpid($kid, 0); out("f $tag $failed\n"); return; }
  out("p $tag $kid\n");
  my $sel = IO::Select->new($or, $er);
  while ($sel->count) {
    for my $fh ($sel->can_read) {
      my $n = sysread($fh, my $buf, 1024);
      if (!$n) { $sel->remove($fh); close $fh; next; }
      out((fileno($fh) == fileno($or) ? 'o' : 'e') . " $tag " . unpack('H*', $buf) . "\n");
    }
  }
  waitpid($kid, 0);
  my $st = $?;
  out(($st & 127) ? "x $tag s " . ($st & 127) . "\n" : "x $tag c " . ($st >> 8) . "\n");
}
while (1) {
  my $line = <STDIN>;
  last if !defined $line;
  chomp $line;
  my ($tag, @hex) = split / /, $line;
  my @argv = map { pack('H*', $_) } @hex;
  my $pid = fork();
  if (!defined $pid) { out("f $tag " . ($!+0) . " fork\n"); next; }
  if ($pid == 0) { monitor($tag, @argv); POSIX::_exit(0); }
}
`;

/** A process started by the helper. */
export interface HelperProcess {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Its pid, once started; rejects like {@link HelperProcess.exit} when it could not start. */
  readonly pid: Promise<number>;
  /**
   * Resolves when it ended (exit code, or the terminating signal number); rejects with an error
   * carrying `code` (`ENOENT`, …) when it could not be started.
   */
  readonly exit: Promise<{ readonly code: number | null; readonly signal: number | null }>;
  /** Whether it has ended (or failed to start). */
  readonly done: boolean;
}

interface Running {
  readonly stdout: PassThrough;
  readonly stderr: PassThrough;
  readonly pid: { resolve: (n: number) => void; reject: (e: Error) => void };
  readonly exit: { resolve: (r: { code: number | null; signal: number | null }) => void; reject: (e: Error) => void };
  readonly proc: { done: boolean };
}

const ERRNO_CODES: Readonly<Record<number, string>> = { 2: 'ENOENT', 13: 'EACCES', 8: 'ENOEXEC', 20: 'ENOTDIR' };

class ProcessHelper {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #running = new Map<string, Running>();
  #buf = '';
  #next = 0;
  #dead = false;

  constructor() {
    this.#child = spawn('perl', ['-e', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.on('error', () => this.#die());
    this.#child.on('exit', () => this.#die());
    this.#child.stdin.on('error', () => this.#die());
    this.#child.stdout.setEncoding('latin1');
    this.#child.stdout.on('data', (chunk: string) => this.#onData(chunk));
    this.#child.stderr.resume();
    this.#idle();
  }

  get dead(): boolean {
    return this.#dead;
  }

  start(file: string, args: readonly string[]): HelperProcess {
    const tag = String(this.#next++);
    let pidRes!: Running['pid'];
    let exitRes!: Running['exit'];
    const pid = new Promise<number>((resolve, reject) => (pidRes = { resolve, reject }));
    const exit = new Promise<{ code: number | null; signal: number | null }>((resolve, reject) => (exitRes = { resolve, reject }));
    pid.catch(() => undefined);
    const proc = { done: false };
    const r: Running = { stdout: new PassThrough(), stderr: new PassThrough(), pid: pidRes, exit: exitRes, proc };
    if (this.#running.size === 0) this.#busy();
    this.#running.set(tag, r);
    this.#child.stdin.write(`${tag} ${[file, ...args].map((a) => Buffer.from(a).toString('hex')).join(' ')}\n`);
    return {
      stdout: r.stdout,
      stderr: r.stderr,
      pid,
      exit,
      get done() {
        return proc.done;
      },
    };
  }

  #onData(chunk: string): void {
    this.#buf += chunk;
    for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      const [kind, tag, a, ...rest] = line.split(' ');
      const r = this.#running.get(tag ?? '');
      if (r === undefined) continue;
      switch (kind) {
        case 'p':
          r.pid.resolve(Number(a));
          break;
        case 'o':
          r.stdout.write(Buffer.from(a ?? '', 'hex'));
          break;
        case 'e':
          r.stderr.write(Buffer.from(a ?? '', 'hex'));
          break;
        case 'f': {
          const errno = Number(a);
          const err = Object.assign(new Error(`spawn failed: ${rest.join(' ')}`), { code: ERRNO_CODES[errno] ?? `E${errno}`, errno });
          this.#finish(tag ?? '', r, err);
          break;
        }
        case 'x':
          this.#finish(tag ?? '', r, a === 's' ? { code: null, signal: Number(rest[0]) } : { code: Number(rest[0]), signal: null });
          break;
        default:
          break;
      }
    }
  }

  #finish(tag: string, r: Running, result: Error | { code: number | null; signal: number | null }): void {
    this.#running.delete(tag);
    if (this.#running.size === 0) this.#idle();
    r.proc.done = true;
    r.stdout.end();
    r.stderr.end();
    if (result instanceof Error) {
      r.pid.reject(result);
      r.exit.reject(result);
    } else r.exit.resolve(result);
  }

  #die(): void {
    if (this.#dead) return;
    this.#dead = true;
    for (const [tag, r] of [...this.#running]) this.#finish(tag, r, Object.assign(new Error('process helper exited'), { code: 'EHELPER' }));
  }

  // Keep the event loop alive only while a process runs.
  #busy(): void {
    this.#child.ref();
    (this.#child.stdout as Socket).ref();
  }

  #idle(): void {
    this.#child.unref();
    for (const s of [this.#child.stdout, this.#child.stdin, this.#child.stderr]) (s as Socket).unref();
  }
}

let helper: ProcessHelper | undefined;

/**
 * Starts `file` with `args` through the helper (stdin /dev/null, stdout and stderr piped).
 * Returns undefined when the helper is not usable; the caller then spawns from Node.
 */
export function spawnViaHelper(file: string, args: readonly string[]): HelperProcess | undefined {
  if (helper === undefined || helper.dead) {
    if (helper?.dead === true) return undefined; // it died once: do not keep respawning it
    helper = new ProcessHelper();
  }
  return helper.start(file, args);
}

/** Starts the helper now so the first container does not wait for it. */
export function warmProcessHelper(): void {
  if (helper === undefined) helper = new ProcessHelper();
}
