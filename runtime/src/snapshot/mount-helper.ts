import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { holdHelper } from '../api/helper-ref.js';

/**
 * mount(2) and umount2(2) without a process per call. Node cannot make these system calls, and
 * spawning `mount`/`umount` costs 15–70 ms each (a fork of the Node process plus util-linux's
 * start-up), several times per file op. One long-lived `perl` co-process (perl-base is Essential
 * on Debian) makes the calls with `syscall()` and answers over a pipe: about 1 ms per call.
 * Requests are answered in order. Callers fall back to the binaries when this is unavailable
 * (no perl, an unknown architecture, or the helper died).
 */

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
} as const;

/** umount2(2) MNT_DETACH. */
export const MNT_DETACH = 2;

/** Syscall numbers of mount, umount2, llistxattr and lgetxattr per architecture. */
const SYSCALLS: Readonly<Record<string, readonly [number, number, number, number]>> = {
  x64: [165, 166, 195, 192],
  arm64: [40, 39, 12, 9],
};

// Fields arrive hex-encoded (any byte in a path is safe); "-" stands for a NULL pointer.
// Answers: "0" (or "0 <data>") or "<errno> <message>".
// "x <path>…": which paths may have extended attributes, as "0 <i>,<j>,…" (0-based): llistxattr
// with a zero-size buffer returns the list's length (0: none). ENOENT and ENOTSUP (95) mean none;
// any other failure counts as "may have" so the caller looks with getfattr.
// "g <path>…": the extended attributes themselves (llistxattr, then lgetxattr per name; symlinks not
// followed), as "0 <i>:<name>=<value>,… <j>:…" (hex; only paths that have any). ENOENT/ENOTSUP
// mean none, ENODATA (61) a name removed meanwhile, ERANGE (34) a list or value that grew: asked
// again. Any other failure answers the whole request with that errno.
const SCRIPT = `
$| = 1;
my ($SYS_MOUNT, $SYS_UMOUNT2, $SYS_LLISTXATTR, $SYS_LGETXATTR) = @ARGV;
sub getx {
  my $p = shift;
  my ($n, $list);
  for (;;) {
    $n = syscall($SYS_LLISTXATTR, $p, 0, 0);
    return () if $n < 0 && ($! == 2 || $! == 95);
    die $! + 0 if $n < 0;
    return () if $n == 0;
    $list = "\\0" x $n;
    $n = syscall($SYS_LLISTXATTR, $p, $list, $n);
    last if $n >= 0;
    die $! + 0 if $! != 34;
  }
  my @pairs;
  for my $name (split /\\0/, substr($list, 0, $n)) {
    next if $name eq '';
    my ($m, $val);
    for (;;) {
      $m = syscall($SYS_LGETXATTR, $p, $name, 0, 0);
      last if $m <= 0;
      $val = "\\0" x $m;
      $m = syscall($SYS_LGETXATTR, $p, $name, $val, $m);
      last if $m >= 0 || $! != 34;
    }
    if ($m < 0) { next if $! == 61; die $! + 0; }
    push @pairs, unpack('H*', $name) . '=' . ($m > 0 ? unpack('H*', substr($val, 0, $m)) : '');
  }
  return @pairs;
}
sub arg { my $h = shift; return $h eq '-' ? 0 : pack('H*', $h); }
while (my $line = <STDIN>) {
  chomp $line;
  my @f = split / /, $line;
  my $r;
  if ($f[0] eq 'm') {
    my ($src, $tgt, $type, $data) = (arg($f[1]), arg($f[2]), arg($f[3]), arg($f[5]));
    $r = syscall($SYS_MOUNT, $src, $tgt, $type, $f[4] + 0, $data);
  } elsif ($f[0] eq 'u') {
    my $tgt = arg($f[1]);
    $r = syscall($SYS_UMOUNT2, $tgt, $f[2] + 0);
  } elsif ($f[0] eq 'x') {
    my @hits;
    for my $i (1 .. $#f) {
      my $n = syscall($SYS_LLISTXATTR, arg($f[$i]), 0, 0);
      push @hits, $i - 1 if $n > 0 || ($n < 0 && $! != 2 && $! != 95);
    }
    print "0 ", join(',', @hits), "\n";
    next;
  } elsif ($f[0] eq 'g') {
    my @items;
    my $ok = eval {
      for my $i (1 .. $#f) {
        my @pairs = getx(arg($f[$i]));
        push @items, ($i - 1) . ':' . join(',', @pairs) if @pairs;
      }
      1;
    };
    if ($ok) { print "0 ", join(' ', @items), "\n"; next; }
    $r = -1; $! = $@ + 0;
  } else {
    $r = -1; $! = 22;
  }
  if ($r == 0) { print "0\\n"; } else { printf "%d %s\\n", $! + 0, "$!"; }
}
`;

/** A failed system call: `errno` and the C library's message. */
export class SyscallError extends Error {
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.name = 'SyscallError';
    this.errno = errno;
  }
}

/** errno values the callers look at. */
export const ERRNO = { ENOENT: 2, EBUSY: 16, EINVAL: 22 } as const;

interface Pending {
  readonly resolve: (data: string) => void;
  readonly reject: (e: Error) => void;
}

/** The co-process; one per Node process, started on first use, never keeps the process alive while idle. */
class MountHelper {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending: Pending[] = [];
  #buf = '';
  #dead: Error | undefined;

  constructor(sys: readonly [number, number, number, number]) {
    // Its own process group, as the process helper's: a terminal's Ctrl-C must not end it while
    // kiln still unmounts through it.
    this.#child = spawn('perl', ['-e', SCRIPT, ...sys.map(String)], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.#child.on('error', (e) => this.#die(e));
    this.#child.on('exit', () => this.#die(new Error('mount helper exited')));
    this.#child.stdin.on('error', (e) => this.#die(e));
    this.#child.stdout.setEncoding('utf8');
    this.#child.stdout.on('data', (chunk: string) => this.#onData(chunk));
    this.#child.stderr.resume();
    holdHelper(this.#child, false);
  }

  get dead(): boolean {
    return this.#dead !== undefined;
  }

  /** One request; resolves with what follows the success code (usually ''). */
  call(fields: readonly string[]): Promise<string> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) holdHelper(this.#child, true);
      this.#pending.push({ resolve, reject });
      this.#child.stdin.write(`${fields.join(' ')}\n`);
    });
  }

  #onData(chunk: string): void {
    this.#buf += chunk;
    for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      const p = this.#pending.shift();
      if (this.#pending.length === 0) holdHelper(this.#child, false);
      if (p === undefined) continue;
      if (line === '0' || line.startsWith('0 ')) p.resolve(line.slice(2));
      else {
        const sp = line.indexOf(' ');
        p.reject(new SyscallError(Number(line.slice(0, sp)), line.slice(sp + 1)));
      }
    }
  }

  #die(e: Error): void {
    if (this.#dead !== undefined) return;
    this.#dead = e;
    for (const p of this.#pending.splice(0)) p.reject(e);
  }

}

let helper: MountHelper | undefined;
let unavailable = false;

function hex(s: string | undefined): string {
  return s === undefined ? '-' : Buffer.from(s).toString('hex');
}

function get(): MountHelper | undefined {
  if (unavailable) return undefined;
  if (helper === undefined || helper.dead) {
    const sys = SYSCALLS[process.arch];
    if (sys === undefined) {
      unavailable = true;
      return undefined;
    }
    helper = new MountHelper(sys);
  }
  return helper;
}

/** Starts the helper process (if available) without waiting for it; later calls find it running. */
export function warmMountHelper(): void {
  get();
}

/** Whether a helper call failed because the helper itself is missing or broken (not the syscall). */
function helperBroken(e: unknown): boolean {
  return !(e instanceof SyscallError);
}

/**
 * mount(2) through the helper. Resolves `false` when the helper is unavailable (the caller uses
 * the `mount` binary), rejects with a {@link SyscallError} when the call fails.
 */
export function sysMount(source: string, target: string, fstype: string | undefined, flags: number, data: string | undefined): Promise<boolean> {
  return viaHelper(['m', hex(source), hex(target), hex(fstype), String(flags), hex(data === '' ? undefined : data)]);
}

/** umount2(2) through the helper; like {@link sysMount}, `false` means "use the binary". */
export function sysUmount(target: string, flags: number): Promise<boolean> {
  return viaHelper(['u', hex(target), String(flags)]);
}

/**
 * Which of `paths` may have extended attributes (indexes into `paths`), asked with llistxattr(2)
 * (symlinks not followed) through the helper: a few microseconds per path instead of a getfattr
 * process. Undefined when the helper cannot be used.
 */
export async function pathsWithXattrs(paths: readonly string[]): Promise<number[] | undefined> {
  const h = get();
  if (h === undefined) return undefined;
  try {
    const out = await h.call(['x', ...paths.map((p) => hex(p))]);
    return out === '' ? [] : out.split(',').map(Number);
  } catch (e) {
    if (helperBroken(e)) unavailable = true;
    return undefined;
  }
}

/**
 * The extended attributes of each of `paths` (symlinks not followed), read with llistxattr(2) and
 * lgetxattr(2) through the helper in one request: no process per file. An entry is `undefined`
 * for a path without any (or gone, or on a filesystem without xattrs). The whole result is
 * `undefined` when the helper cannot be used; rejects with a {@link SyscallError} when a read fails.
 */
export async function readXattrs(paths: readonly string[]): Promise<(Map<string, Buffer> | undefined)[] | undefined> {
  const h = get();
  if (h === undefined) return undefined;
  let out: string;
  try {
    out = await h.call(['g', ...paths.map((p) => hex(p))]);
  } catch (e) {
    if (!helperBroken(e)) throw e;
    unavailable = true;
    return undefined;
  }
  const result: (Map<string, Buffer> | undefined)[] = new Array<Map<string, Buffer> | undefined>(paths.length).fill(undefined);
  if (out === '') return result;
  for (const item of out.split(' ')) {
    const colon = item.indexOf(':');
    const attrs = new Map<string, Buffer>();
    for (const pair of item.slice(colon + 1).split(',')) {
      const eq = pair.indexOf('=');
      attrs.set(Buffer.from(pair.slice(0, eq), 'hex').toString('utf8'), Buffer.from(pair.slice(eq + 1), 'hex'));
    }
    result[Number(item.slice(0, colon))] = attrs;
  }
  return result;
}

/** One call through the helper: `true` when done, `false` when the helper cannot be used. */
async function viaHelper(args: string[]): Promise<boolean> {
  const h = get();
  if (h === undefined) return false;
  try {
    await h.call(args);
    return true;
  } catch (e) {
    if (helperBroken(e)) {
      unavailable = true;
      return false;
    }
    throw e;
  }
}
