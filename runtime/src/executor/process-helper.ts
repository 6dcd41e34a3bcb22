import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { holdHelper } from '../api/helper-ref.js';

/**
 * Starts processes from a small co-process instead of from Node. Node's spawn forks the whole
 * Node process first, synchronously on the main thread, and that cost grows with its memory:
 * 10 ms at 50 MB RSS, 40 ms at 200 MB (median, load ~6), once per container of a build. One
 * long-lived `perl` process (a few MB; perl-base is Essential on Debian) forks and execs each
 * program itself, relays its piped stdout/stderr and reports its exit, all from one select loop:
 * no process per request besides the program (a monitor process per request cost two more
 * process wake-ups per run, 5-10 ms under load). Callers fall back to `child_process.spawn` when
 * it is unavailable.
 */

// Requests: "<tag> <hex argv0> <hex argv1> …". Answers, one line each: "p <tag> <pid>" (forked;
// sent without waiting for the exec), "x <tag> c|s <n>" (exited, after all its output), or instead
// of "x" "f <tag> <errno> <message>" (could not start; may follow "p"). Output comes in binary
// frames: a line "O|E <tag> <n>" (stdout|stderr) followed by the n bytes as the program wrote them
// (any bytes, newlines and NULs included; one frame per read, in the order read). Output used to
// be hex text lines: twice the bytes on the pipe, an encode here and a decode in kiln.
// The program is looked up in PATH before forking, so a missing one fails without a fork.
// "m <tag> <hex path>" makes a FIFO (mode 0600; Node has no mkfifo), answered "k <tag> <errno>" (0: made).
// "c <tag> <hex program> <memfd_create syscall number>" keeps a sealed in-memory copy of an ELF
// program and execs that copy from then on (see sealViaHelper), answered "k <tag> <errno>" (0: kept).
// A tag starting with "w" starts a waiting process (a pre-started runc that waits for its config):
// killed if kiln's side goes away (stdin EOF, or EPIPE writing to it) before "h <tag>" says it has
// work, since nobody would feed it.
// "<tag> <hex argv0> … - <hex argv0> …": the program after "-" is started if kiln's side goes away
// while process <tag> runs (`runc kill ID KILL` for a `runc run`: killing runc would leave its
// container running, and nobody would take its result); started again while it fails and <tag>
// runs, for a while (10 s). One line: the helper acts on whole lines only, so a kiln killed while
// writing never leaves a process started without it. "d <tag> <hex argv0> …" names it for a
// process already started (the same, in a line of its own).
// "r <tag> <hex argv0> …" registers such a program for something the helper did not start (a
// long-lived container), "u <tag>" drops it. A process without one is killed when kiln goes.
/** The helper's program (exported for its protocol tests). */
export const PROCESS_HELPER_SCRIPT = String.raw`
use strict; use warnings; use POSIX ();
# A handler (not IGNORE): children are reaped here, and SIGCHLD interrupts select().
$SIG{CHLD} = sub { };
$SIG{PIPE} = 'IGNORE';
# Processes by a serial of the helper's own, not by pid: one reaped while its output is still open
# (a background child holds the pipe) keeps its entry, and its pid may be a new process's by then.
# %live maps the pids not reaped yet, which no other process can have.
my (%kids, %live, %fds);
my $serial = 0;
my $in = '';
my $stdin_open = 1;
my $backoff = 0;
my @q;
# Heavy output: a read of $HEAVY bytes or more. Its pipe is made $PIPE_SIZE large, and the next round
# waits a moment ($heavy) so that the program fills it meanwhile (see the main loop).
my ($HEAVY, $PIPE_SIZE, $heavy) = (8192, 1 << 20, 0);
# Kiln's side is gone (since $gone, in /proc/uptime seconds): a process waiting for input from it
# (a pre-started runc) would wait forever, and a running one works for nobody. Its "d" program stops
# it, and each registered one runs: again while it fails (runc kill fails until runc has made the
# container; a registered container's runc runs from kiln), for up to $GIVE_UP seconds. Once all
# kiln sent is read, a process without one is killed, and one still running $STUCK seconds on (a
# runc whose config nobody will write: no container of its own to kill) then. Nothing is reported
# once kiln's pipe is closed too, but the helper stays until that is done.
my ($gone, $mute, $STUCK, $GIVE_UP) = (undef, 0, 3, 10);
my %registered;
# Programs run because kiln is gone: { argv, kid (the process it stops) or reg (its "r" tag), pid (while it runs), at, delay, done }.
my (@cleanups, %cleaning);
sub now { open(my $f, '<', '/proc/uptime') or return time; my $l = <$f> // ''; return (split ' ', $l)[0] // time; }
sub run_detached {
  my @argv = @_;
  my $prog = find_prog($argv[0]) // return;
  my $pid = fork();
  return unless defined $pid;
  if ($pid == 0) {
    $SIG{CHLD} = 'DEFAULT'; $SIG{PIPE} = 'DEFAULT';
    open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null'); { exec { $prog } @argv; } POSIX::_exit(127);
  }
  return $pid;
}
sub kiln_gone {
  return if defined $gone;
  $gone = now();
  for my $k (values %kids) { push @cleanups, { argv => $k->{orphan}, kid => $k } if $k->{orphan} && !$k->{waiting} && !defined $k->{status}; }
  push @cleanups, { argv => $registered{$_}, reg => $_ } for keys %registered;
}
sub clean_up {
  my $t = now();
  for my $c (@cleanups) {
    next if $c->{pid} || $c->{done};
    if (($c->{kid} && defined $c->{kid}{status}) || $t - $gone > $GIVE_UP) { $c->{done} = 1; next; }
    # Again after 0.1 s, 0.2 s, 0.4 s … 2 s: a container being made is there within a second or two.
    next if defined $c->{at} && $t - $c->{at} < $c->{delay};
    $c->{delay} = defined $c->{at} ? ($c->{delay} < 1 ? $c->{delay} * 2 : 2) : 0.1;
    $c->{at} = $t;
    my $pid = run_detached(@{ $c->{argv} });
    if (defined $pid) { $c->{pid} = $pid; $cleaning{$pid} = $c; } else { $c->{done} = 1; }
  }
  # A program that hangs does not keep the helper for good.
  kill 'KILL', keys %cleaning if $t - $gone > $GIVE_UP;
  @cleanups = grep { !$_->{done} || $_->{pid} } @cleanups;
  return if $stdin_open && !$mute;
  # Not yet reaped only: a reaped one's pid may name another process by now.
  kill 'KILL', map { $_->{pid} } grep { !defined $_->{status} && ($_->{waiting} || !$_->{orphan} || $t - $gone > $STUCK) } values %kids;
}
sub flush_out {
  @q = () if $mute;
  while (@q) {
    my $s = shift @q;
    while (@q && length($s) + length($q[0]) <= 65536) { $s .= shift @q; }
    # Partial writes (a signal during a blocking write): write the rest.
    while (length $s) {
      my $w = syswrite(STDOUT, $s);
      # EPIPE: kiln's side is gone.
      if (!defined $w) { next if $!{EINTR}; ($mute, @q) = (1); kiln_gone(); return; }
      substr($s, 0, $w) = '';
    }
  }
}
sub find_prog {
  my $p = shift;
  return $p if index($p, '/') >= 0;
  for my $d (split /:/, ($ENV{PATH} // '/usr/bin:/bin')) {
    my $f = ($d eq '' ? '.' : $d) . "/$p";
    return $f if -f $f && -x _;
  }
  return undef;
}
# Sealed copies by program path: { fh, fd, id (the file they were copied from), nr }.
my %sealed;
sub ident { my @s = stat($_[0]); return @s ? "$s[0]:$s[1]:$s[7]:$s[9]" : ''; }
sub seal {
  my ($prog, $nr) = @_;
  my $path = find_prog($prog);
  return 2 unless defined $path;
  open(my $in, '<:raw', $path) or return $!+0;
  my $id = ident($in);
  return 0 if $sealed{$path} && $sealed{$path}{id} eq $id;
  # Only ELF binaries: a script cannot be executed through a close-on-exec descriptor.
  my $magic = '';
  return 8 unless (sysread($in, $magic, 4) // 0) == 4 && $magic eq "\x7fELF" && sysseek($in, 0, 0);
  my $name = 'kiln-sealed';
  # MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_EXEC; kernels before 6.3 refuse MFD_EXEC (and need none).
  my $fd = syscall($nr, $name, 0x13);
  $fd = syscall($nr, $name, 0x3) if $fd < 0 && $!{EINVAL};
  return $!+0 if $fd < 0;
  my $m;
  if (!open($m, '+<&=', $fd)) { my $e = $!+0; POSIX::close($fd); return $e; }
  while (1) {
    my $r = sysread($in, my $buf, 1 << 20);
    return $!+0 unless defined $r;
    last unless $r;
    for (my $o = 0; $o < $r;) { my $w = syswrite($m, $buf, $r - $o, $o); return $!+0 unless defined $w; $o += $w; }
  }
  # F_ADD_SEALS: seal, shrink, grow, write. Nothing can change the copy any more.
  fcntl($m, 1033, 15) or return $!+0;
  $sealed{$path} = { fh => $m, fd => $fd, id => $id, nr => $nr };
  return 0;
}
# What to exec for a program path: its sealed copy while the path still names the file copied.
sub exe_of {
  my $prog = shift;
  my $s = $sealed{$prog};
  return $prog unless $s;
  if (ident($prog) ne $s->{id}) {
    # Replaced (an upgrade): copy the new file.
    delete $sealed{$prog};
    seal($prog, $s->{nr});
    $s = $sealed{$prog};
    return $prog unless $s;
  }
  return "/proc/self/fd/$s->{fd}";
}
sub start {
  my ($tag, $argv, $orphan) = @_;
  my @argv = @$argv;
  my $prog = find_prog($argv[0]);
  if (!defined $prog || !-e $prog) { push @q, "f $tag 2 No such file or directory\n"; return; }
  my $exe = exe_of($prog);
  my ($or, $ow, $er, $ew, $sr, $sw);
  if (!pipe($or, $ow) || !pipe($er, $ew) || !pipe($sr, $sw)) { push @q, "f $tag " . ($!+0) . " pipe\n"; return; }
  my $pid = fork();
  if (!defined $pid) { push @q, "f $tag " . ($!+0) . " fork\n"; return; }
  if ($pid == 0) {
    $SIG{CHLD} = 'DEFAULT'; $SIG{PIPE} = 'DEFAULT';
    open(STDIN, '<', '/dev/null'); open(STDOUT, '>&', $ow); open(STDERR, '>&', $ew);
    { exec { $exe } @argv; }
    # A copy the system will not execute (noexec policies): the file itself.
    if ($exe ne $prog) { exec { $prog } @argv; }
    syswrite($sw, ($!+0) . " $!");
    POSIX::_exit(127);
  }
  close $ow; close $ew; close $sw;
  my $k = { tag => $tag, pid => $pid, open => 3, waiting => ($tag =~ /^w/ ? 1 : 0) };
  $k->{orphan} = $orphan if $orphan && @$orphan;
  $kids{++$serial} = $k;
  $live{$pid} = $k;
  $fds{fileno($or)} = [$k, 'o', $or];
  $fds{fileno($er)} = [$k, 'e', $er];
  # Closed by the exec (close-on-exec), or carries "<errno> <message>" when it failed.
  $fds{fileno($sr)} = [$k, 's', $sr];
  push @q, "p $tag $pid\n";
}
while ($stdin_open || %kids || @cleanups) {
  my $rin = '';
  vec($rin, 0, 1) = 1 if $stdin_open;
  vec($rin, $_, 1) = 1 for keys %fds;
  # An exited child whose pipes are closed but who is not reaped yet: poll until SIGCHLD comes.
  my $pending = grep { $_->{open} == 0 } values %kids;
  $backoff = $pending ? ($backoff ? ($backoff < 0.1 ? $backoff * 2 : $backoff) : 0.001) : 0;
  my $wait = $pending ? $backoff : undef;
  # Kiln gone: cleanups to retry, processes to kill when they stay too long.
  $wait = 0.2 if defined $gone && (!defined $wait || $wait > 0.2);
  # A round that read heavy output: 1 ms before the next, so that a program writing fast (runc
  # copies in 32 KiB writes) fills its pipe meanwhile and one read takes it all. One wake-up of the
  # helper and of kiln a millisecond instead of one a write: a RUN printing 200 MB took 3.5-4.5 s
  # without, 3.3-3.5 s with (5 alternated runs). Less output (a progress line, a compiler's
  # messages) goes at once, and so does a pipe that may have been full: with 64 KiB pipes, pausing
  # after every heavy read held the same RUN to 64 KB a millisecond (5 s).
  if ($heavy) { $heavy = 0; select(undef, undef, undef, 0.001); }
  my $n = select(my $rout = $rin, undef, undef, $wait);
  if ($n > 0) {
    if ($stdin_open && vec($rout, 0, 1)) {
      my $r = sysread(STDIN, my $buf, 65536);
      if (!$r) { $stdin_open = 0; kiln_gone(); }
      else {
        $in .= $buf;
        while ((my $i = index($in, "\n")) >= 0) {
          # -1: a trailing empty field is an empty last argument (split drops it otherwise)
          my ($tag, @hex) = split / /, substr($in, 0, $i), -1;
          substr($in, 0, $i + 1) = '';
          if ($tag eq 'm') { my ($t, $p) = @hex; push @q, "k $t " . (POSIX::mkfifo(pack('H*', $p), 0600) ? 0 : $!+0) . "\n"; next; }
          if ($tag eq 'c') { my ($t, $p, $nr) = @hex; push @q, "k $t " . seal(pack('H*', $p), hex($nr)) . "\n"; next; }
          if ($tag eq 'h') { my ($t) = @hex; $_->{waiting} = 0 for grep { $_->{tag} eq $t } values %kids; next; }
          if ($tag eq 'd') {
            my ($t, @a) = @hex;
            my @argv = map { pack('H*', $_) } @a;
            for my $k (grep { $_->{tag} eq $t } values %kids) {
              $k->{orphan} = \@argv;
              push @cleanups, { argv => \@argv, kid => $k } if defined $gone && !defined $k->{status};
            }
            next;
          }
          if ($tag eq 'r') {
            my ($t, @a) = @hex;
            $registered{$t} = [map { pack('H*', $_) } @a];
            push @cleanups, { argv => $registered{$t}, reg => $t } if defined $gone;
            next;
          }
          if ($tag eq 'u') { delete $registered{$hex[0]}; $_->{done} = 1 for grep { ($_->{reg} // '') eq $hex[0] } @cleanups; next; }
          # Read after kiln went: nobody would take its output.
          next if defined $gone;
          my ($cut) = grep { $hex[$_] eq '-' } 0 .. $#hex;
          my @argv = map { pack('H*', $_) } (defined $cut ? @hex[0 .. $cut - 1] : @hex);
          start($tag, \@argv, defined $cut ? [map { pack('H*', $_) } @hex[$cut + 1 .. $#hex]] : undef);
        }
      }
    }
    for my $fd (keys %fds) {
      next unless vec($rout, $fd, 1);
      my ($k, $what, $fh, $size) = @{ $fds{$fd} };
      my $r = sysread($fh, my $buf, $size // 65536);
      # Interrupted (SIGCHLD): not the end of the stream, read again on the next round.
      next if !defined $r && $!{EINTR};
      if (!$r) { delete $fds{$fd}; close $fh; $k->{open}--; next; }
      if ($what eq 's') { $k->{failed} = ($k->{failed} // '') . $buf; next; }
      # One frame per read: its header line, then the bytes as read.
      push @q, ($what eq 'o' ? 'O' : 'E') . " $k->{tag} $r\n" . $buf;
      next if $r < $HEAVY;
      # F_SETPIPE_SZ (F_GETPIPE_SZ if refused: an unprivileged user's pipes count against
      # fs.pipe-user-pages-soft), once heavy: a program writing faster than kiln takes its output
      # fills 1 MiB, not 64 KiB, before it waits, and a read here takes up to that much.
      $size = $fds{$fd}[3] //= fcntl($fh, 1031, $PIPE_SIZE) || fcntl($fh, 1032, 0) || 65536;
      # A read of half the pipe or more: it may have been full (the program waiting), so no pause.
      $heavy = 1 if $r < $size / 2;
    }
  }
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    if (my $k = delete $live{$pid}) { $k->{status} = $?; }
    if (my $c = delete $cleaning{$pid}) { $c->{pid} = undef; $c->{done} = 1 if $? == 0; }
  }
  for my $id (keys %kids) {
    my $k = $kids{$id};
    next unless defined $k->{status} && $k->{open} == 0;
    my $st = $k->{status};
    if (defined $k->{failed}) { push @q, "f $k->{tag} $k->{failed}\n"; }
    else { push @q, ($st & 127) ? "x $k->{tag} s " . ($st & 127) . "\n" : "x $k->{tag} c " . ($st >> 8) . "\n"; }
    delete $kids{$id};
  }
  clean_up() if defined $gone;
  flush_out();
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
  /** Makes a process started with `held: false` keep the event loop alive from now on. */
  hold(): void;
}

/** Options of {@link spawnViaHelper}. */
export interface HelperStartOptions {
  /**
   * Whether the process keeps kiln's event loop alive while it runs (default true). A process
   * that only waits for input kiln may never send (a pre-started runc) is started unheld, so a
   * finished kiln process never waits for it, and held once it has work. The helper kills an
   * unheld process when kiln's side of it closes (kiln exited).
   */
  readonly held?: boolean;
  /**
   * A program (`[file, ...args]`) the helper starts if kiln's side goes away (kiln killed) while
   * this process runs: what stops its work, since killing it alone may not (a `runc run`'s
   * container outlives runc).
   */
  readonly onOrphan?: readonly string[];
}

interface Running {
  readonly stdout: PassThrough;
  readonly stderr: PassThrough;
  readonly pid: { resolve: (n: number) => void; reject: (e: Error) => void };
  readonly exit: { resolve: (r: { code: number | null; signal: number | null }) => void; reject: (e: Error) => void };
  readonly proc: { done: boolean; held: boolean };
}

const NEWLINE = 0x0a;

/**
 * Reads the helper's answers (exported for its protocol tests): each line goes to `onLine` (read
 * as latin1, without its newline), and the n bytes after an "O|E <tag> <n>" line, as they arrive,
 * to what `onFrame` returned for it (undefined: dropped). Output is never decoded or copied: the
 * bytes given are views of the chunks pushed.
 */
export class HelperAnswerReader {
  readonly #onLine: (line: string) => void;
  readonly #onFrame: (stream: 'O' | 'E', tag: string) => ((data: Buffer) => void) | undefined;
  /** The start of a line cut by a read. */
  #partial: Buffer | undefined;
  /** Bytes of the current frame still to come, and where they go. */
  #left = 0;
  #to: ((data: Buffer) => void) | undefined;

  constructor(onLine: (line: string) => void, onFrame: (stream: 'O' | 'E', tag: string) => ((data: Buffer) => void) | undefined) {
    this.#onLine = onLine;
    this.#onFrame = onFrame;
  }

  /** Takes the next bytes the helper wrote, cut anywhere. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.#left > 0) {
        const end = Math.min(chunk.length, off + this.#left);
        this.#to?.(chunk.subarray(off, end));
        this.#left -= end - off;
        off = end;
        continue;
      }
      const nl = chunk.indexOf(NEWLINE, off);
      if (nl < 0) {
        // Kept (copied: it is short) until its newline comes.
        this.#partial = this.#partial === undefined ? Buffer.from(chunk.subarray(off)) : Buffer.concat([this.#partial, chunk.subarray(off)]);
        return;
      }
      const line = this.#partial === undefined ? chunk.toString('latin1', off, nl) : Buffer.concat([this.#partial, chunk.subarray(off, nl)]).toString('latin1');
      this.#partial = undefined;
      off = nl + 1;
      const frame = /^([OE]) (\S+) (\d+)$/.exec(line);
      if (frame === null) this.#onLine(line);
      else {
        // Its bytes follow, whether anyone still takes them or not.
        this.#left = Number(frame[3]);
        this.#to = this.#left > 0 ? this.#onFrame(frame[1] === 'O' ? 'O' : 'E', frame[2] ?? '') : undefined;
      }
    }
  }
}

const ERRNO_CODES: Readonly<Record<number, string>> = { 2: 'ENOENT', 13: 'EACCES', 8: 'ENOEXEC', 20: 'ENOTDIR' };

class ProcessHelper {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #running = new Map<string, Running>();
  readonly #requests = new Map<string, { what: string; resolve: () => void; reject: (e: Error) => void }>();
  /** Held processes plus pending requests: the helper is ref-ed while this is above 0. */
  #held = 0;
  readonly #answers = new HelperAnswerReader(
    (line) => this.#onLine(line),
    (stream, tag) => this.#frameTo(stream, tag),
  );
  #next = 0;
  #dead = false;
  #ran = false;
  readonly #onDeath: () => void;

  /** `onDeath` runs once it has died (exited, killed, or could not start). */
  constructor(onDeath: () => void) {
    this.#onDeath = onDeath;
    // Its own process group: a terminal's Ctrl-C goes to kiln's group, and kiln, not the signal,
    // decides what happens to the containers (it stops them; runc would forward the SIGINT to a
    // container's pid 1, which ignores it, and a helper killed by it could not stop them any more).
    this.#child = spawn('perl', ['-e', PROCESS_HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.#child.once('spawn', () => (this.#ran = true));
    this.#child.on('error', () => this.#die());
    this.#child.on('exit', () => this.#die());
    this.#child.stdin.on('error', () => this.#die());
    this.#child.stdout.on('data', (chunk: Buffer) => this.#answers.push(chunk));
    this.#child.stderr.resume();
    holdHelper(this.#child, false);
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Whether it was started (perl ran), whatever happened since. */
  get ran(): boolean {
    return this.#ran;
  }

  start(file: string, args: readonly string[], opts: HelperStartOptions = {}): HelperProcess {
    const tag = `${opts.held === false ? 'w' : ''}${this.#next++}`;
    let pidRes!: Running['pid'];
    let exitRes!: Running['exit'];
    const pid = new Promise<number>((resolve, reject) => (pidRes = { resolve, reject }));
    const exit = new Promise<{ code: number | null; signal: number | null }>((resolve, reject) => (exitRes = { resolve, reject }));
    pid.catch(() => undefined);
    // Callers that saw `pid` reject (a missing program) drop the process: its exit, rejected
    // alike, must not become an unhandled rejection (it ended kiln on a missing runc).
    exit.catch(() => undefined);
    const proc = { done: false, held: false };
    const r: Running = { stdout: new PassThrough(), stderr: new PassThrough(), pid: pidRes, exit: exitRes, proc };
    this.#running.set(tag, r);
    const hold = (): void => {
      if (proc.held || proc.done) return;
      proc.held = true;
      this.#ref(1);
      if (opts.held === false) this.#child.stdin.write(`h ${tag}\n`);
    };
    if (opts.held !== false) hold();
    // One line with its cleanup program: as two, a kiln killed between them left the process
    // (a `runc run`) without it, killed alone, its container running on.
    const orphan = opts.onOrphan !== undefined && opts.onOrphan.length > 0 ? ` - ${hexArgv(opts.onOrphan)}` : '';
    this.#child.stdin.write(`${tag} ${hexArgv([file, ...args])}${orphan}\n`);
    return {
      stdout: r.stdout,
      stderr: r.stderr,
      pid,
      exit,
      get done() {
        return proc.done;
      },
      hold,
    };
  }

  /** Has the helper run `argv` if kiln's side goes away before the returned function is called. */
  onKilnGone(argv: readonly string[]): () => void {
    const tag = String(this.#next++);
    this.#child.stdin.write(`r ${tag} ${hexArgv(argv)}\n`);
    let dropped = false;
    return () => {
      if (dropped || this.#dead) return;
      dropped = true;
      this.#child.stdin.write(`u ${tag}\n`);
    };
  }

  /** Makes a FIFO at `path` (mode 0600). */
  mkfifo(path: string): Promise<void> {
    return this.#request('mkfifo', 'm', Buffer.from(path).toString('hex'));
  }

  /** Keeps a sealed copy of the ELF program `file` (a name or path) and runs it from there on. */
  seal(file: string, memfdCreate: number): Promise<void> {
    return this.#request('sealing', 'c', `${Buffer.from(file).toString('hex')} ${memfdCreate.toString(16)}`);
  }

  /** Sends a request answered by "k <tag> <errno>". */
  #request(what: string, kind: string, args: string): Promise<void> {
    const tag = String(this.#next++);
    return new Promise<void>((resolve, reject) => {
      this.#requests.set(tag, { what, resolve, reject });
      this.#ref(1);
      this.#child.stdin.write(`${kind} ${tag} ${args}\n`);
    });
  }

  #ref(delta: number): void {
    const before = this.#held;
    this.#held += delta;
    if ((before === 0) !== (this.#held === 0)) holdHelper(this.#child, this.#held > 0);
  }

  /** Where the bytes of an output frame of process `tag` go (none: it is gone, they are dropped). */
  #frameTo(stream: 'O' | 'E', tag: string): ((data: Buffer) => void) | undefined {
    const r = this.#running.get(tag);
    if (r === undefined) return undefined;
    const to = stream === 'O' ? r.stdout : r.stderr;
    return (data) => to.write(data);
  }

  #onLine(line: string): void {
    const [kind, tag, a, ...rest] = line.split(' ');
    if (kind === 'k') {
      const f = this.#requests.get(tag ?? '');
      if (f === undefined) return;
      this.#requests.delete(tag ?? '');
      this.#ref(-1);
      const errno = Number(a);
      if (errno === 0) f.resolve();
      else f.reject(Object.assign(new Error(`${f.what} failed (errno ${errno})`), { code: ERRNO_CODES[errno] ?? `E${errno}`, errno }));
      return;
    }
    const r = this.#running.get(tag ?? '');
    if (r === undefined) return;
    switch (kind) {
      case 'p':
        r.pid.resolve(Number(a));
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

  #finish(tag: string, r: Running, result: Error | { code: number | null; signal: number | null }): void {
    this.#running.delete(tag);
    if (r.proc.held) this.#ref(-1);
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
    for (const [tag, f] of [...this.#requests]) {
      this.#requests.delete(tag);
      this.#ref(-1);
      f.reject(Object.assign(new Error('process helper exited'), { code: 'EHELPER' }));
    }
    this.#onDeath();
  }

}

function hexArgv(argv: readonly string[]): string {
  return argv.map((a) => Buffer.from(a).toString('hex')).join(' ');
}

let helper: ProcessHelper | undefined;
/** Helpers started after one that had run died (killed alone: the OOM killer, a `pkill perl`). */
let respawns = 0;
const MAX_RESPAWNS = 3;

/**
 * What runs if kiln goes away ({@link onKilnGone}), by registration: registered again with a
 * helper started after one died, which took its registrations along.
 */
const registrations = new Map<number, { readonly argv: readonly string[]; drop: (() => void) | undefined }>();
let nextRegistration = 0;

/** A helper that dies while registrations stand is replaced at once: they would be unguarded till the next start. */
function helperDied(): void {
  if (registrations.size > 0) setImmediate(() => liveHelper());
}

/**
 * Starts `file` with `args` through the helper (stdin /dev/null, stdout and stderr piped).
 * Returns undefined when the helper is not usable; the caller then spawns from Node.
 */
export function spawnViaHelper(file: string, args: readonly string[], opts: HelperStartOptions = {}): HelperProcess | undefined {
  return liveHelper()?.start(file, args, opts);
}

/**
 * Has the helper start `argv` if this kiln process dies (is killed) before the returned function
 * is called: what stops work nobody will take once kiln is gone (`runc kill ID KILL` for a
 * container kiln started itself). Undefined when the helper is not usable.
 */
export function onKilnGone(argv: readonly string[]): (() => void) | undefined {
  const h = liveHelper();
  if (h === undefined) return undefined;
  const id = nextRegistration++;
  const entry = { argv, drop: h.onKilnGone(argv) };
  registrations.set(id, entry);
  return () => {
    if (registrations.delete(id)) entry.drop?.();
  };
}

/** Makes a FIFO (mode 0600) through the helper; undefined when the helper is not usable. */
export function mkfifoViaHelper(path: string): Promise<void> | undefined {
  return liveHelper()?.mkfifo(path);
}

/** memfd_create's number where it is the same for every ABI of the architecture. */
const MEMFD_CREATE: Partial<Record<string, number>> = { x64: 319, arm64: 279, riscv64: 279 };

/**
 * Makes the helper exec `file` (an ELF program; a name is looked up in PATH) from a sealed
 * in-memory copy from now on, while the path names the file copied (a replaced file is copied
 * again). For runc this saves what it does on every start otherwise: runc 1.1 re-executes itself
 * from such a copy (so that a container cannot overwrite the host's binary through
 * /proc/self/exe) unless it already runs from one: an 8.7 MB copy and one more exec, 3-4 ms and
 * as much CPU per container here. Undefined when the helper is not usable or the architecture
 * is not known; rejects when no copy is kept (the file runs as before).
 */
export function sealViaHelper(file: string): Promise<void> | undefined {
  const nr = MEMFD_CREATE[process.arch];
  return nr === undefined ? undefined : liveHelper()?.seal(file, nr);
}

/**
 * The helper, started if there is none yet. One that died is replaced only if it had run (no perl:
 * callers spawn from Node instead), and not more than {@link MAX_RESPAWNS} times (something keeps
 * killing it). A replacement takes the standing registrations.
 */
function liveHelper(): ProcessHelper | undefined {
  if (helper !== undefined && !helper.dead) return helper;
  if (helper !== undefined) {
    if (!helper.ran || respawns >= MAX_RESPAWNS) return undefined;
    respawns += 1;
  }
  const h = new ProcessHelper(helperDied);
  helper = h;
  for (const r of registrations.values()) r.drop = h.onKilnGone(r.argv);
  return h;
}

/** Starts the helper now so the first container does not wait for it. */
export function warmProcessHelper(): void {
  if (helper === undefined) liveHelper();
}
