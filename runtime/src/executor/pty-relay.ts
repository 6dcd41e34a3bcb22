import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Writable } from 'node:stream';

/**
 * A pseudo-terminal for a runc started in the foreground with `process.terminal`. runc hands a
 * container's terminal master over a unix socket (SCM_RIGHTS), which Node cannot receive; but a
 * runc in the foreground receives it itself and copies between that terminal and its own one
 * (`initHostConsole`: one of its fds 0-2 must be a terminal), forwarding SIGWINCH as a resize.
 * Node cannot make a terminal either (no ioctl), so this perl (Essential on Debian, as the process
 * helper's) opens one: `/dev/ptmx`, unlocked, its slave as runc's fds 0-2 and controlling
 * terminal, and relays the master to its own fds 0/1 byte for byte (at most 64 KiB of output
 * pending: a paused reader stops the terminal being read). Lines `<rows> <cols>` on
 * fd 3 set the size and send runc SIGWINCH; the end of fd 3 (kiln stops the process, or kiln is
 * gone) SIGKILLs runc. It exits with runc's status (128+n for a signal), once runc's own children
 * are gone too: it is their child subreaper, so a runc killed (by it or anyone) leaves it what runc
 * had started, which it kills and reaps. A `runc exec` waits for the terminal from its last init
 * stage for ever if that stage died first (its container was killed while it started), without
 * reaping it, and the container's init waits for that reaping as the last process of its pid
 * namespace, and `runc run` for its init: killing runc and reaping the stage here undoes the knot.
 * The ioctl numbers are asm-generic's (x86-64, arm64, riscv64); prctl's number comes as an argument.
 */
const SCRIPT = String.raw`
use strict; use warnings; use POSIX ();
my ($TIOCSPTLCK, $TIOCGPTN, $TIOCSWINSZ, $TIOCSCTTY) = (0x40045431, 0x80045430, 0x5414, 0x540E);
my ($rows, $cols, $prctl) = (shift @ARGV, shift @ARGV, shift @ARGV);
# PR_SET_CHILD_SUBREAPER, before runc is forked (its children then come here, not to pid 1).
syscall($prctl, 36, 1, 0, 0, 0) if $prctl;
open(my $m, '+<', '/dev/ptmx') or die "kiln pty: /dev/ptmx: $!\n";
my $unlock = pack('i', 0);
ioctl($m, $TIOCSPTLCK, $unlock) or die "kiln pty: unlockpt: $!\n";
my $n = pack('I', 0);
ioctl($m, $TIOCGPTN, $n) or die "kiln pty: ptsname: $!\n";
my $pts = '/dev/pts/' . unpack('I', $n);
sub winsize { my $ws = pack('S4', $_[0], $_[1], 0, 0); ioctl($m, $TIOCSWINSZ, $ws); }
winsize($rows, $cols);
my $pid = fork() // die "kiln pty: fork: $!\n";
if ($pid == 0) {
  POSIX::setsid();
  open(my $s, '+<', $pts) or die "kiln pty: $pts: $!\n";
  ioctl($s, $TIOCSCTTY, 0);
  # Raw from the start: the container's own terminal does the line discipline. runc makes its
  # terminal raw too, but only once it runs: output copied before that got a second CR per line.
  my $t = POSIX::Termios->new;
  if ($t->getattr(fileno($s))) {
    $t->setiflag($t->getiflag & ~(POSIX::BRKINT() | POSIX::ICRNL() | POSIX::INPCK() | POSIX::ISTRIP() | POSIX::IXON()));
    $t->setoflag($t->getoflag & ~POSIX::OPOST());
    $t->setlflag($t->getlflag & ~(POSIX::ECHO() | POSIX::ICANON() | POSIX::ISIG() | POSIX::IEXTEN()));
    $t->setcflag(($t->getcflag & ~(POSIX::CSIZE() | POSIX::PARENB())) | POSIX::CS8());
    $t->setattr(fileno($s), POSIX::TCSANOW());
  }
  POSIX::dup2(fileno($s), $_) for (0, 1, 2);
  POSIX::close(3);
  exec { $ARGV[0] } @ARGV or do { print STDERR "kiln pty: exec $ARGV[0]: $!\n"; POSIX::_exit(127) };
}
open(my $ctl, '<&=', 3) or die "kiln pty: fd 3: $!\n";
$SIG{PIPE} = 'IGNORE';
# Output is written without blocking: while kiln's reader is paused (its consumer is slow) the
# relay keeps passing input and resizes, and reads the terminal only while under 64 KiB are
# pending, so the container's writes block on a full terminal, as on a pipe. The terminal is
# written without blocking too: a process that reads its input only after writing its output
# would otherwise wait on the relay reading that output while the relay waits on it to read.
for my $fh (\*STDOUT, $m) {
  my $fl = fcntl($fh, POSIX::F_GETFL(), 0) // 0;
  fcntl($fh, POSIX::F_SETFL(), $fl | POSIX::O_NONBLOCK());
}
my ($in, $ctlOpen, $pending, $ctlBuf, $open, $out, $outOpen) = (1, 1, '', '', 1, '', 1);
my $mfd = fileno($m);
while ($open || length $out) {
  my ($rin, $win) = ('', '');
  vec($rin, $mfd, 1) = 1 if $open && length($out) < 65536;
  vec($rin, 0, 1) = 1 if $in && length($pending) < 65536;
  vec($rin, 3, 1) = 1 if $ctlOpen;
  vec($win, $mfd, 1) = 1 if $open && length $pending;
  vec($win, 1, 1) = 1 if length $out;
  my $found = select(my $r = $rin, my $w = $win, undef, undef);
  next if $found <= 0;
  if (vec($r, $mfd, 1)) {
    my $got = sysread($m, my $buf, 65536);
    if ($got) { $out .= $buf if $outOpen } elsif (defined $got || $! != POSIX::EAGAIN()) { $open = 0 }
  }
  if (length($out) && vec($w, 1, 1)) {
    my $wr = syswrite(STDOUT, $out);
    if (defined $wr) { substr($out, 0, $wr) = '' } elsif ($! != POSIX::EAGAIN()) { ($out, $outOpen) = ('', 0) }
  }
  if (vec($r, 0, 1)) { my $got = sysread(STDIN, my $buf, 65536); if ($got) { $pending .= $buf } else { $in = 0 } }
  if (vec($r, 3, 1)) {
    my $got = sysread($ctl, my $buf, 4096);
    if ($got) {
      $ctlBuf .= $buf;
      while ($ctlBuf =~ s/^(\d+) (\d+)\n//) { winsize($1, $2); kill 'WINCH', $pid; }
    } else { $ctlOpen = 0; kill 'KILL', $pid; }
  }
  if ($open && length($pending) && vec($w, $mfd, 1)) {
    my $wr = syswrite($m, $pending);
    if (defined $wr) { substr($pending, 0, $wr) = '' } elsif ($! != POSIX::EAGAIN()) { $pending = '' }
  }
}
waitpid($pid, 0);
my $st = $?;
# What runc leaves here when it is killed: the container process it ran (killed), a last init
# stage dead before its exec (reaped).
sub kids { open(my $f, '<', "/proc/$$/task/$$/children") or return (); return split ' ', (<$f> // ''); }
while ((my $w = waitpid(-1, POSIX::WNOHANG())) >= 0) {
  next if $w > 0;
  kill 'KILL', kids();
  select(undef, undef, undef, 0.01);
}
exit(($st & 127) ? 128 + ($st & 127) : $st >> 8);
`;

/** A terminal size. */
export interface TerminalSize {
  readonly rows: number;
  readonly cols: number;
}

/** The size a terminal starts with until the caller resizes it (the VT100's). */
const DEFAULT_TERMINAL_SIZE: TerminalSize = { rows: 24, cols: 80 };

/** A command started on a terminal of its own: fd 0/1 of `child` are the terminal's input and output. */
export interface PtyProcess {
  readonly child: ChildProcessWithoutNullStreams;
  resize(size: TerminalSize): void;
  /** SIGKILLs the command (the relay's control pipe is closed, as when kiln is gone). */
  stop(): void;
}

/** prctl's syscall number where it is the same for every ABI of the architecture. */
const PRCTL: Partial<Record<string, number>> = { x64: 157, arm64: 167, riscv64: 167 };

/** Starts `command args` (a foreground runc) on a new terminal, see {@link SCRIPT}. */
export function spawnOnPty(command: string, args: readonly string[], size?: TerminalSize): PtyProcess {
  const start = startSize(size);
  const prctl = String(PRCTL[process.arch] ?? 0);
  const child = spawn('perl', ['-e', SCRIPT, String(start.rows), String(start.cols), prctl, command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    // Its own process group (as the executor's runc): kiln stops containers on Ctrl-C itself.
    detached: true,
  }) as ChildProcessWithoutNullStreams;
  const control = child.stdio[3] as Writable;
  control.on('error', () => undefined);
  return {
    child,
    resize(s) {
      if (!control.destroyed && !control.writableEnded) control.write(`${dim(s.rows)} ${dim(s.cols)}\n`);
    },
    stop() {
      control.destroy();
    },
  };
}

/** The size a terminal is made with: `size` as the kernel holds it, else the VT100's. */
export function startSize(size: TerminalSize = DEFAULT_TERMINAL_SIZE): TerminalSize {
  return { rows: dim(size.rows), cols: dim(size.cols) };
}

/** A terminal dimension: a whole number the kernel's 16-bit field holds. */
function dim(n: number): number {
  return Math.min(65535, Math.max(0, Math.trunc(Number.isFinite(n) ? n : 0)));
}
