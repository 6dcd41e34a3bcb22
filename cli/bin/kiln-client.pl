#!/usr/bin/perl
# The fast path of `kiln`: when a `kiln daemon` serves this command, talk to it directly. Perl
# (perl-base, Essential on Debian) starts in a few milliseconds where Node takes 60-150 ms, and
# the daemon already has kiln loaded, so `kiln build` costs about what the build costs.
# Otherwise, or when the daemon declines (another root, another protocol), exec Node with kiln.js.
# The wire format is cli/src/daemon/protocol.ts: [kind byte][u32 BE length][payload].
# Start-up is most of what this costs, and exec and module loads are slow on small machines
# (perl -e 1: 12 ms here; `use Socket` adds 13 ms, Cwd and Errno 3-4 ms each), so it loads no
# modules but strict: the Linux constants are written out (kiln runs on Linux only: runc,
# overlayfs) and the launcher (cli/bin/kiln) runs this file by its resolved path.
use strict;

use constant { AF_UNIX => 1, SOCK_STREAM => 1, EINTR => 4, EAGAIN => 11 };

my %SERVED = map { $_ => 1 } qw(build bake solve du prune images push save rmi load pull tag llb dump-llb imagetools rebase);    # DAEMON_COMMANDS in protocol.ts
(my $here = $0) =~ s{/[^/]*$}{};

sub in_process {
  $ENV{KILN_DAEMON} = '0';
  exec($ENV{KILN_NODE} // 'node', "$here/kiln.js", @ARGV) or die "kiln: cannot run node: $!\n";
}

in_process() if ($ENV{KILN_DAEMON} // '') eq '0';
my $command;    # the first argument that is not an option nor --config's value (commandOf in protocol.ts)
for (my $i = 0; $i < @ARGV; $i++) {
  if ($ARGV[$i] eq '--config') { $i++; next }
  if ($ARGV[$i] !~ /^-/) { $command = $ARGV[$i]; last }
}
in_process() unless defined $command && $SERVED{$command};

# Same rules as daemonSocketPath() in protocol.ts.
my $path;
if (defined $ENV{KILN_HOST} && $ENV{KILN_HOST} ne '') {
  ($path = $ENV{KILN_HOST}) =~ s{^unix://}{};
} elsif ($< == 0) {
  $path = '/run/kiln/kilnd.sock';
} elsif (defined $ENV{XDG_RUNTIME_DIR} && $ENV{XDG_RUNTIME_DIR} ne '') {
  $path = "$ENV{XDG_RUNTIME_DIR}/kiln/kilnd.sock";
} else {
  my $tmp = $ENV{TMPDIR} // '/tmp';
  $tmp =~ s{/+$}{} if length($tmp) > 1;
  $path = "$tmp/kiln-$</kilnd.sock";
}
# The hello carries our environment: only to our own socket, in a directory others cannot write
# to (or a sticky one like /tmp). Same rule as trustedSocket() in protocol.ts.
{
  my @s = lstat($path);
  in_process() unless @s;    # no daemon
  (my $dir = $path) =~ s{/[^/]*$}{};
  $dir = '/' if $dir eq '';
  my @d = lstat($dir);
  my $open = @d && ($d[2] & 022) && !($d[2] & 01000);
  if (!(@d && (($s[2] & 0170000) == 0140000) && $s[4] == $< && ($d[2] & 0170000) == 0040000 && ($d[4] == $< || $d[4] == 0) && !$open)) {
    print STDERR "kiln: warning: not using the daemon socket $path: it or its directory belongs to another user or others can write there\n";
    in_process();
  }
}
socket(my $sock, AF_UNIX, SOCK_STREAM, 0) or in_process();
# struct sockaddr_un: sa_family_t, then the NUL-terminated path.
connect($sock, pack('S Z*', AF_UNIX, $path)) or in_process();
binmode($sock);

sub json_str {
  my ($s) = @_;
  $s =~ s/(["\\])/\\$1/g;
  $s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord($1))/ge;
  return qq("$s");
}
sub frame { my ($kind, $payload) = @_; $payload //= ''; return pack('CN', ord($kind), length($payload)) . $payload }
sub put {
  my ($fh, $data) = @_;
  while (length $data) {
    my $n = syswrite($fh, $data);
    if (!defined $n) { next if $! == EINTR || $! == EAGAIN; return 0 }
    substr($data, 0, $n, '');
  }
  return 1;
}

my $err_tty = -t STDERR ? 1 : 0;
my $size = '';
if ($err_tty) {
  my $ws = "\0" x 8;
  # TIOCGWINSZ (0x5413 on Linux): rows and columns for the live progress display.
  if (ioctl(STDERR, 0x5413, $ws)) {
    my ($rows, $cols) = unpack('S2', $ws);
    $size = qq(,"columns":$cols,"rows":$rows) if $cols;
  }
}
my $env = join(',', map { json_str($_) . ':' . json_str($ENV{$_}) } sort keys %ENV);
my $argv = join(',', map { json_str($_) } ('kiln', 'kiln', @ARGV));
# The shell's $PWD when it is this directory (same device and inode), else Cwd (loaded only then).
my $cwd = $ENV{PWD};
{
  my @p = defined $cwd && $cwd =~ m{^/} ? stat($cwd) : ();
  my @d = stat('.');
  if (!@p || !@d || $p[0] != $d[0] || $p[1] != $d[1]) { require Cwd; $cwd = Cwd::getcwd() }
}
my $hello = sprintf('{"version":1,"pid":%d,"argv":[%s],"cwd":%s,"env":{%s},"stdin":{"isTTY":%s},"stdout":{"isTTY":%s},"stderr":{"isTTY":%s%s}}',
  $$, $argv, json_str($cwd // '/'), $env, (-t STDIN ? 'true' : 'false'), (-t STDOUT ? 'true' : 'false'), ($err_tty ? 'true' : 'false'), $size);
put($sock, frame('h', $hello)) or in_process();

$SIG{PIPE} = 'IGNORE';
my @pending_signals;
$SIG{INT} = sub { push @pending_signals, 'SIGINT' };
$SIG{TERM} = sub { push @pending_signals, 'SIGTERM' };

my $buf = '';
my $want_stdin = 0;
my $stdin_open = 1;
my $answered = 0;
binmode(STDOUT);
binmode(STDERR);
binmode(STDIN);
for (;;) {
  put($sock, frame('s', shift @pending_signals)) while @pending_signals;
  my $rin = '';
  vec($rin, fileno($sock), 1) = 1;
  vec($rin, fileno(STDIN), 1) = 1 if $want_stdin && $stdin_open;
  # A timeout, so a signal that lands between sending the queue and select() goes out promptly.
  my $ready = select(my $rout = $rin, undef, undef, 0.25);
  next if $ready <= 0;    # a signal or the timeout: send pending signals above
  if ($want_stdin && $stdin_open && vec($rout, fileno(STDIN), 1)) {
    my $n = sysread(STDIN, my $chunk, 65536);
    if (!defined $n) { next if $! == EINTR }
    if (!$n) { $stdin_open = 0; put($sock, frame('e')) } else { put($sock, frame('i', $chunk)) }
  }
  next unless vec($rout, fileno($sock), 1);
  my $n = sysread($sock, $buf, 65536, length $buf);
  if (!defined $n) { next if $! == EINTR; $n = 0 }
  if ($n == 0) {
    print STDERR "kiln: error KLN0709: the kiln daemon closed the connection before the command finished\n",
      "hint: the daemon stopped (killed, crashed or shut down): see its log, then run the command again (with no daemon it runs in its own process)\n";
    exit 1;
  }
  while (length($buf) >= 5) {
    my ($kind, $len) = unpack('CN', $buf);
    last if length($buf) < 5 + $len;
    my $payload = substr($buf, 5, $len);
    substr($buf, 0, 5 + $len, '');
    $kind = chr($kind);
    # A closed stdout (`kiln … | head`): end quietly, as kiln does in-process; leaving cancels the command.
    if ($kind eq 'o') { put(\*STDOUT, $payload) or $! != 32 or exit 0 }
    elsif ($kind eq 'r') { put(\*STDERR, $payload) }
    elsif ($kind eq 'w') { $want_stdin = 1 }
    elsif ($kind eq 'x') { exit(($payload =~ /^(\d+)$/) ? $1 : 1) }
    elsif ($kind eq 'n') { close($sock); in_process() }
  }
}
