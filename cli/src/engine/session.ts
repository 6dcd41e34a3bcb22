import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isOciLayoutRef, onKilnGone, parseOciLayoutRef } from '@kiln/runtime';
import { EngineError } from './errors.js';

/** Parsed `--secret` values: id → bytes, held in memory only. */
export type SecretMap = Record<string, Uint8Array>;

/**
 * Parses buildx's `--secret` forms: `id=ID,src=FILE` (alias `source`), `id=ID,env=VAR`, with an
 * optional `type=file|env`. `type=env` without `env=` reads the variable named like the id;
 * neither `src` nor `env` reads the file `ID` if it exists, else the variable `ID`. Values are
 * read now and never written anywhere.
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
    if (type === 'env' && envName === undefined) envName = src ?? id;
    if (type !== 'env' && src === undefined && envName === undefined) {
      src = (await stat(resolve(cwd, id)).then((s) => s.isFile(), () => false)) ? id : undefined;
      if (src === undefined) envName = id;
    }
    if (envName !== undefined && (type === 'env' || src === undefined)) {
      const v = env[envName];
      if (v === undefined) throw new EngineError('KLN0702', `--secret ${id}: environment variable ${envName} is not set`);
      out[id] = Buffer.from(v);
    } else if (src !== undefined) {
      try {
        out[id] = await readFile(resolve(cwd, src));
      } catch (cause) {
        throw new EngineError('KLN0702', `--secret ${id}: cannot read ${src}`, { cause, hint: 'src= must be a readable file' });
      }
    }
  }
  return out;
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
      const agent = await startAgent(paths.map((p) => resolve(cwd, p)));
      cleanups.push(agent.stop);
      sockets[id] = agent.socket;
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { sockets, close };
}

async function startAgent(keys: readonly string[]): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  // If this kiln is killed, the process helper stops the agent (it holds the key) and removes its dir.
  const drop = agent.pid === undefined ? undefined : onKilnGone(['sh', '-c', 'kill "$0"; rm -rf "$1"', String(agent.pid), dir]);
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
        const add = spawn('ssh-add', [key], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: socket, SSH_ASKPASS: '', DISPLAY: '' } });
        let err = '';
        add.stderr.on('data', (d: Buffer) => (err += d.toString()));
        add.once('error', rej);
        add.once('exit', (code) => (code === 0 ? res() : rej(new EngineError('KLN0702', `--ssh: ssh-add ${key} failed: ${err.trim().split('\n')[0] ?? ''}`, { hint: 'the key must be unencrypted' }))));
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
  | { readonly kind: 'oci-layout'; readonly name: string; readonly path: string; readonly ref: string | undefined };

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
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(v)) throw badFlag('--build-context', value, 'supported sources: a directory, docker-image://, oci-layout://');
  return { kind: 'local', name, path: v };
}

/**
 * {@link parseBuildContext} with the path of a local or OCI layout context resolved against
 * `cwd` and checked now: a missing directory was an empty context, and the build failed later
 * with a COPY's "not found" that did not say why.
 */
export async function resolveBuildContext(value: string, cwd: string): Promise<BuildContext> {
  const c = parseBuildContext(value);
  if (c.kind === 'image') return c;
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
