/**
 * The wire between `kiln` and `kiln daemon`: frames of one kind byte, a 4-byte big-endian
 * length and the payload, over a unix socket. Only Node built-ins here: the client loads this
 * before deciding whether it needs the rest of kiln at all.
 */

/** Frame kinds. Client → daemon: hello, stdin data, stdin end, signal. Daemon → client: the rest. */
export const Frame = {
  Hello: 0x68, // 'h' JSON Hello
  Stdin: 0x69, // 'i' bytes
  StdinEnd: 0x65, // 'e'
  Signal: 0x73, // 's' signal name
  Stdout: 0x6f, // 'o' bytes
  Stderr: 0x72, // 'r' bytes
  WantStdin: 0x77, // 'w' the command reads stdin: start sending it
  Exit: 0x78, // 'x' exit code as decimal text
  Decline: 0x6e, // 'n' not for this daemon (another root, a command it does not serve): run in-process
} as const;

/** Protocol version; a daemon declines a client of another version and the client runs in-process. */
export const PROTOCOL_VERSION = 1;

/** The first frame of a connection: what the client's own process would have run with. */
export interface Hello {
  readonly version: number;
  /** The client's pid, for the daemon's log. */
  readonly pid?: number;
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether the client's stdin is a terminal (`kiln load` refuses to read one); absent from older clients. */
  readonly stdin?: { readonly isTTY: boolean };
  readonly stdout: { readonly isTTY: boolean };
  readonly stderr: { readonly isTTY: boolean; readonly columns?: number; readonly rows?: number };
}

/** Commands the daemon serves (keep cli/bin/kiln-client.pl's list the same); the others always run in-process. */
export const DAEMON_COMMANDS: ReadonlySet<string> = new Set(['build', 'bake', 'solve', 'du', 'prune', 'images', 'push', 'save', 'rmi', 'load', 'pull', 'tag', 'llb', 'dump-llb', 'imagetools', 'rebase']);

/** Served commands that do not use the daemon's engine, so they are served for any `--root`. */
export const ROOTLESS_COMMANDS: ReadonlySet<string> = new Set(['llb', 'dump-llb']);

/** The command name of `argv` (process.argv shape): the first argument that is not an option (nor `--config`'s value). */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--config') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** `--config FILE` or `--config=FILE` from argv, if given (the last one wins, as in commander). */
export function configFlagOf(argv: readonly string[]): string | undefined {
  return flagOf(argv, '--config');
}

/** `--addr ADDRESS` or `--addr=ADDRESS` from argv (kiln daemon's), if given (the last one wins). */
export function addrFlagOf(argv: readonly string[]): string | undefined {
  return flagOf(argv, '--addr');
}

/** `--root DIR` or `--root=DIR` from argv, if given (the last one wins, as in commander). */
export function rootFlagOf(argv: readonly string[]): string | undefined {
  return flagOf(argv, '--root');
}

/** The value of `flag` (`FLAG VALUE` or `FLAG=VALUE`) in argv before any `--`; the last one wins. */
function flagOf(argv: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') break;
    if (a === flag) value = argv[++i];
    else if (a.startsWith(`${flag}=`)) value = a.slice(flag.length + 1);
  }
  return value;
}

/**
 * Whether a client may send its environment to the socket at `path`: a socket of this user, in a
 * directory of this user (or root) that others cannot write to, unless sticky like /tmp.
 */
export function trustedSocket(sock: { isSocket(): boolean; uid: number }, dir: { isDirectory(): boolean; uid: number; mode: number }, uid: number): boolean {
  const open = (dir.mode & 0o022) !== 0 && (dir.mode & 0o1000) === 0;
  return sock.isSocket() && sock.uid === uid && dir.isDirectory() && (dir.uid === uid || dir.uid === 0) && !open;
}

/**
 * The daemon's socket: `KILN_HOST=unix:///path` (like BUILDKIT_HOST), else `/run/kiln/kilnd.sock`
 * for root and `$XDG_RUNTIME_DIR/kiln/kilnd.sock` (or `/tmp/kiln-UID/kilnd.sock`) for other users.
 */
export function daemonSocketPath(env: Readonly<Record<string, string | undefined>>, uid: number | undefined, tmp: string): string {
  const host = env['KILN_HOST'];
  if (host !== undefined && host !== '') return host.startsWith('unix://') ? host.slice('unix://'.length) : host;
  if (uid === 0) return '/run/kiln/kilnd.sock';
  const runtime = env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && runtime !== '') return `${runtime}/kiln/kilnd.sock`;
  return `${tmp}/kiln-${uid ?? 'user'}/kilnd.sock`;
}

/** Encodes one frame. */
export function frame(kind: number, payload: Uint8Array | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = kind;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/** Splits a byte stream into frames; `push` calls `onFrame` for every complete one. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (kind: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const kind = buf[0] as number;
      const payload = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      this.onFrame(kind, payload);
    }
    this.#pending = buf;
  }
}
