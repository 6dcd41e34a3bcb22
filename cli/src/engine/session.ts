import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isOciLayoutRef, onKilnGone, parseOciLayoutRef } from '@kiln/runtime';
import { EngineError } from './errors.js';

/** Parsed `--secret` values: id → bytes, held in memory only. */
export type SecretMap = Record<string, Uint8Array>;

/** BuildKit's secretsprovider.MaxSecretSize: buildx refuses a bigger secret file before the build. */
export const MAX_SECRET_SIZE = 500 * 1024;

/**
 * Parses buildx's `--secret` forms: `id=ID,src=FILE` (alias `source`), `id=ID,env=VAR`, with an
 * optional `type=file|env`. `type=env` without `env=` reads the variable named like `src=`; `env=`
 * wins over `src=` (which must still be a file of at most 500 KB); with neither (`type=env` too)
 * the variable `ID` if it is set, else the file `ID` (BuildKit's secretsprovider, in that order). Values are read now and never written
 * anywhere; a file above 500 KB is refused, as buildx refuses it.
 */
export async function parseSecrets(values: readonly string[], env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): Promise<SecretMap> {
  const out: SecretMap = {};
  for (const value of values) {
    const fields = new Map<string, string>();
    for (const f of value.split(',')) {
      const i = f.indexOf('=');
      if (i < 0) throw badFlag('--secret', value, `field "${f}" is not KEY=VALUE`);
      fields.set(f.slice(0, i).trim().toLowerCase(), f.slice(i + 1));
    }
    const id = fields.get('id');
    if (id === undefined || id === '') throw badFlag('--secret', value, 'id= is required');
    const type = fields.get('type');
    if (type !== undefined && type !== 'file' && type !== 'env') throw badFlag('--secret', value, `type must be file or env, not "${type}"`);
    for (const k of fields.keys()) {
      if (!['id', 'type', 'src', 'source', 'env'].includes(k)) throw badFlag('--secret', value, `unknown field "${k}"`);
    }
    let src = fields.get('src') ?? fields.get('source');
    let envName = fields.get('env');
    // buildx's parseSecret: type=env takes src= as the variable; with neither it is the id alone.
    if (type === 'env' && envName === undefined && src !== undefined) {
      envName = src;
      src = undefined;
    }
    const implicit = src === undefined && envName === undefined;
    if (implicit) {
      if (env[id] !== undefined) envName = id;
      else src = id;
    }
    // BuildKit's GetSecret reads env= first, whatever src= says; NewStore still stats src= (it
    // must exist and fit), so a build that passes here does not fail under buildx.
    if (envName !== undefined) {
      if (src !== undefined) await checkSecretFile(id, src, resolve(cwd, src), false);
      const v = env[envName];
      if (v === undefined) throw new EngineError('KLN0702', `--secret ${id}: environment variable ${envName} is not set`);
      out[id] = Buffer.from(v);
    } else if (src !== undefined) {
      out[id] = await readSecretFile(id, src, resolve(cwd, src), implicit);
    }
  }
  return out;
}

/** A `--secret` file, at most {@link MAX_SECRET_SIZE} bytes. `implicit`: named by the id alone. */
async function readSecretFile(id: string, given: string, path: string, implicit: boolean): Promise<Buffer> {
  await checkSecretFile(id, given, path, implicit);
  try {
    return await readFile(path);
  } catch (cause) {
    throw new EngineError('KLN0702', `--secret ${id}: cannot read ${given}`, { cause, hint: 'src= must be a readable file' });
  }
}

/** What BuildKit's NewStore checks of a `--secret` file before the build: it exists and is at most {@link MAX_SECRET_SIZE} bytes. */
async function checkSecretFile(id: string, given: string, path: string, implicit: boolean): Promise<void> {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error && st.code === 'ENOENT' && implicit) {
    throw new EngineError('KLN0702', `--secret ${id}: no environment variable ${id} is set and there is no file ${given}`, { hint: `name the source: --secret id=${id},src=FILE or --secret id=${id},env=VAR` });
  }
  if (st instanceof Error) {
    throw new EngineError('KLN0702', `--secret ${id}: cannot read ${given}`, { cause: st, hint: 'src= must be a readable file (buildx checks it even when env= is the one read)' });
  }
  if (st.size > MAX_SECRET_SIZE) {
    throw new EngineError('KLN0702', `--secret ${id}: ${given} is ${st.size} bytes; a secret may be at most 500 KB (BuildKit's limit)`, { hint: 'pass a smaller file, e.g. a token or a config that points at the rest' });
  }
}

/** `--ssh` forwarding: agent sockets by id, plus agents kiln started for key files. */
export interface SshAgents {
  readonly sockets: Record<string, string>;
  /** Stops the agents kiln started (idempotent). */
  close(): Promise<void>;
}

/**
 * Parses buildx's `--ssh` forms: `default` (the `SSH_AUTH_SOCK` agent), `ID=SOCKET` and
 * `ID=KEYFILE[,KEYFILE…]`. For key files kiln starts a private `ssh-agent` (socket in a
 * private temp directory outside the kiln root), loads the keys with `ssh-add`, and stops it
 * with {@link SshAgents.close}.
 */
export async function parseSsh(values: readonly string[], env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): Promise<SshAgents> {
  const sockets: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const c of cleanups.splice(0)) await c().catch(() => undefined);
  };
  try {
    for (const value of values) {
      const i = value.indexOf('=');
      const id = i < 0 ? value : value.slice(0, i);
      const paths = i < 0 ? [] : value.slice(i + 1).split(',').filter((p) => p !== '');
      if (id === '') throw badFlag('--ssh', value, 'an id is required (e.g. default)');
      if (paths.length === 0) {
        const sock = env['SSH_AUTH_SOCK'];
        if (sock === undefined || sock === '') {
          throw new EngineError('KLN0702', `--ssh ${id}: SSH_AUTH_SOCK is not set`, { hint: 'start an agent (eval $(ssh-agent); ssh-add) or pass --ssh ID=/path/to/socket-or-key' });
        }
        // buildx stats it too: a stale SSH_AUTH_SOCK fails here, not as an agent error inside a RUN.
        if (!(await stat(sock).then((st) => st.isSocket(), () => false))) {
          throw new EngineError('KLN0702', `--ssh ${id}: SSH_AUTH_SOCK ${sock} is not a socket`, { hint: 'start an agent (eval $(ssh-agent); ssh-add) or pass --ssh ID=/path/to/socket-or-key' });
        }
        sockets[id] = sock;
        continue;
      }
      const given = paths[0] as string;
      const first = resolve(cwd, given);
      const st = await stat(first).catch(() => undefined);
      if (st === undefined) throw new EngineError('KLN0702', `--ssh ${id}: ${given} does not exist`);
      if (paths.length === 1 && st.isSocket()) {
        sockets[id] = first;
        continue;
      }
      const keys: KeyFile[] = [];
      for (const p of paths) keys.push(await readKeyFile(id, p, resolve(cwd, p)));
      const agent = await startAgent(keys);
      cleanups.push(agent.stop);
      sockets[id] = agent.socket;
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { sockets, close };
}

/** A private key file as given, read for `ssh-add -`. */
interface KeyFile {
  readonly id: string;
  readonly given: string;
  readonly data: Buffer;
}

/**
 * Reads a `--ssh ID=KEYFILE` key. The key goes to ssh-add on its stdin, as buildx reads key files
 * itself: ssh-add refuses a file others may read (a key written by a CI step is often 0644),
 * and said so only in a banner of `@` signs. A key with a passphrase is refused here by name.
 */
async function readKeyFile(id: string, given: string, path: string): Promise<KeyFile> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EISDIR' ? 'is a directory' : code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
    throw new EngineError('KLN0702', `--ssh ${id}: ${given} ${why}`, { hint: SSH_KEY_HINT });
  }
  if (isEncryptedKey(data.toString('latin1'))) {
    throw new EngineError('KLN0702', `--ssh ${id}: ${given} is protected by a passphrase, which kiln cannot ask for`, {
      hint: 'load it into your agent (ssh-add KEY) and pass --ssh ID (SSH_AUTH_SOCK) or --ssh ID=SOCKET',
    });
  }
  return { id, given, data };
}

const SSH_KEY_HINT = 'pass an unencrypted private key file (OpenSSH or PEM) or an ssh-agent socket';

/** Whether a private key needs a passphrase: PEM's ENCRYPTED headers, or an OpenSSH key whose cipher is not "none". */
function isEncryptedKey(text: string): boolean {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) return true;
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (m === null) return false;
  // "openssh-key-v1\0", then the cipher name as a uint32-length-prefixed string
  const raw = Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0'.length;
  if (raw.length < magic + 4) return false;
  const len = raw.readUInt32BE(magic);
  return raw.subarray(magic + 4, magic + 4 + len).toString('latin1') !== 'none';
}

/**
 * What stops the ssh-agent `pid` serving from `dir` when kiln is gone: kills it only while that
 * pid's argv still names `dir` (a process that took the pid over is left alone), then removes `dir`.
 */
export function agentStopCommand(pid: number, dir: string): string[] {
  return ['sh', '-c', 'grep -qF -- "$1" "/proc/$0/cmdline" 2>/dev/null && kill "$0"; rm -rf "$1"', String(pid), dir];
}

async function startAgent(keys: readonly KeyFile[]): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  // If this kiln is killed, the process helper stops the agent (it holds the key) and removes its
  // dir: only while that pid is still this agent (its argv names the dir), never a process that
  // took the pid over after the agent died. An agent that ends drops the registration at once.
  const drop = agent.pid === undefined ? undefined : onKilnGone(agentStopCommand(agent.pid, dir));
  agent.once('exit', () => drop?.());
  const stop = async (): Promise<void> => {
    drop?.();
    if (agent.exitCode === null) agent.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((res, rej) => {
      agent.once('error', (e) => rej(new EngineError('KLN0703', 'cannot start ssh-agent', { cause: e, hint: 'apt-get install -y openssh-client' })));
      const t0 = Date.now();
      const poll = (): void => {
        stat(socket).then(
          () => res(),
          () => (Date.now() - t0 > 5000 ? rej(new EngineError('KLN0703', 'ssh-agent did not start')) : setTimeout(poll, 10)),
        );
      };
      poll();
    });
    for (const key of keys) {
      await new Promise<void>((res, rej) => {
        const add = spawn('ssh-add', ['-'], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: socket, SSH_ASKPASS: '', DISPLAY: '' } });
        let err = '';
        add.stderr.on('data', (d: Buffer) => (err += d.toString()));
        add.stdin.on('error', () => undefined); // ssh-add may exit before reading it all: its status says why
        add.stdin.end(key.data);
        add.once('error', rej);
        add.once('exit', (code) => {
          if (code === 0) return res();
          // ssh-add names the key "(stdin)": "Error loading key "(stdin)": error in libcrypto"
          const why = err.trim().split('\n')[0]?.replace('"(stdin)"', key.given) ?? '';
          rej(new EngineError('KLN0702', `--ssh ${key.id}: ${key.given} is not a private key ssh-add can load${why === '' ? '' : ` (${why})`}`, { hint: SSH_KEY_HINT }));
        });
      });
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { socket, stop };
}

/** A named context (`--build-context NAME=…`); an OCI layout's image by `ref`, its digest if given, else its tag. */
export type BuildContext =
  | { readonly kind: 'local'; readonly name: string; readonly path: string }
  | { readonly kind: 'image'; readonly name: string; readonly ref: string }
  | { readonly kind: 'oci-layout'; readonly name: string; readonly path: string; readonly ref: string | undefined }
  /** A git repository (`https://…/R.git#REF:DIR`, `git://…`, `git@HOST:…`) or a URL to download, read by the frontend. */
  | { readonly kind: 'url'; readonly name: string; readonly url: string };

/**
 * Parses `NAME=path`, `NAME=docker-image://REF`, `NAME=oci-layout://PATH[:TAG][@DIGEST]` (the
 * runtime's parser, as imagetools: a `:` or `@` in the path stays in it).
 */
export function parseBuildContext(value: string): BuildContext {
  const i = value.indexOf('=');
  if (i <= 0) throw badFlag('--build-context', value, 'expected NAME=VALUE');
  const name = value.slice(0, i);
  const v = value.slice(i + 1);
  if (v.startsWith('docker-image://')) return { kind: 'image', name, ref: v.slice('docker-image://'.length) };
  if (isOciLayoutRef(v)) {
    try {
      const l = parseOciLayoutRef(v);
      return { kind: 'oci-layout', name, path: l.path, ref: l.digest ?? l.tag };
    } catch (e) {
      // The parser's message starts with the reference, which the flag's message already shows.
      const { message, hint } = e as { message: string; hint?: string };
      throw new EngineError('KLN0702', `invalid --build-context "${value}": ${message.startsWith(`${v}: `) ? message.slice(v.length + 2) : message}`, { hint, cause: e });
    }
  }
  // As buildx: the frontend resolves a git or http(s) source itself (BuildKit's named contexts).
  if (/^(https?|git|ssh):\/\//.test(v) || /^git@[^:/]+:/.test(v)) return { kind: 'url', name, url: v };
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(v)) throw badFlag('--build-context', value, 'supported sources: a directory, docker-image://, oci-layout://, a git URL (https://…/REPO.git#REF, git://…, ssh://…, git@HOST:…) or an https:// URL');
  return { kind: 'local', name, path: v };
}

/**
 * {@link parseBuildContext} with the path of a local or OCI layout context resolved against
 * `cwd` and checked now: a missing directory was an empty context, and the build failed later
 * with a COPY's "not found" that did not say why.
 */
export async function resolveBuildContext(value: string, cwd: string): Promise<BuildContext> {
  const c = parseBuildContext(value);
  if (c.kind === 'image' || c.kind === 'url') return c;
  const path = resolve(cwd, c.path);
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
  const what = c.kind === 'local' ? 'directory' : 'OCI layout directory';
  if (st instanceof Error || !st.isDirectory()) {
    const why = !(st instanceof Error) ? 'not a directory' : st.code === 'ENOENT' ? `no such ${what}` : st.message;
    throw new EngineError('KLN0702', `--build-context ${c.name}: cannot use ${c.path}: ${why}`, {
      hint: c.kind === 'local' ? `give a directory (NAME=PATH), docker-image://REF or oci-layout://DIR` : 'give a directory with oci-layout, index.json and blobs/ (a tarball must be extracted first)',
    });
  }
  return { ...c, path };
}

/** Parses `K=V` (or `K`, taking V from the environment, as buildx). */
export function parseBuildArg(value: string, env: Readonly<Record<string, string | undefined>>): [string, string] | undefined {
  const i = value.indexOf('=');
  if (i === 0) throw badFlag('--build-arg', value, 'expected KEY=VALUE');
  if (i < 0) {
    const v = env[value];
    return v === undefined ? undefined : [value, v];
  }
  return [value.slice(0, i), value.slice(i + 1)];
}

/** Parses sizes like `512MB`, `10GiB`, `1.5g`, `1000` (bytes) with docker's RAMInBytes rules (1 KB = 1024 B), as buildx prune `--keep-storage`. */
export function parseSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(value);
  if (m === null) throw new EngineError('KLN0707', `invalid size "${value}"`, { hint: 'e.g. 500MB, 10GB, 1.5GiB or a number of bytes' });
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const pow = ['', 'k', 'm', 'g', 't', 'p'].indexOf(unit);
  return Math.round(n * 1024 ** pow);
}

function badFlag(flag: string, value: string, why: string): EngineError {
  return new EngineError('KLN0702', `invalid ${flag} "${value}": ${why}`);
}
