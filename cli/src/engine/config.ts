import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { suggest } from '@kiln/llb-core';
import type { RegistryHostOptions, RegistryKeyPair } from '@kiln/runtime/registry';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import { ConfigError, keyName, locate, locateKeys, type KeyLocations, type KeyPath } from './config-toml.js';
import type { DiskSpace, GcFileSettings, GcFileRule } from './gc-policy.js';
import { parseGoDuration, parseRecordFilters } from './prune-filter.js';
import { parseSize } from './session.js';

/** The environment variable naming the config file (`kiln --config FILE` sets it for the command). */
export const CONFIG_ENV = 'KILN_CONFIG';
/** The config file of root when none is named (as /etc/buildkit/buildkitd.toml is buildkitd's). */
export const SYSTEM_CONFIG = '/etc/kiln/kiln.toml';

/**
 * kiln's configuration file, read as buildkitd reads buildkitd.toml: the `[registry."HOST"]`
 * tables and `[worker.oci]`'s GC settings. Keys kiln does not use are listed in `ignored`.
 */
export interface KilnConfig {
  /** The file (absolute), or undefined when there is none. */
  readonly path: string | undefined;
  /**
   * sha256 of the file's bytes and of the CA, certificate and key files it names ('' without a
   * file): which config a daemon serves (an edited CA file is another config).
   */
  readonly digest: string;
  /** Per registry host: mirrors, http, insecure, and TLS material read from the named files. */
  readonly registry: Readonly<Record<string, RegistryHostOptions>>;
  /** `[worker.oci]` GC settings, when the file has any. */
  readonly gc: GcFileSettings | undefined;
  /** Keys kiln does not use (`grpc`, `worker.oci.platforms`, …), in file order. */
  readonly ignored: readonly string[];
  /** The key kiln uses that an ignored one is a near miss of (`registry.x.htpp` → `http`): likely a typo. */
  readonly near: Readonly<Record<string, string>>;
}

const NO_CONFIG: KilnConfig = { path: undefined, digest: '', registry: {}, gc: undefined, ignored: [], near: {} };

/** The keys kiln reads at each level of the file (a key near one of these is named as a likely typo). */
const KEYS = {
  top: ['registry', 'worker'],
  registry: ['mirrors', 'http', 'insecure', 'ca', 'keypair', 'tlsconfigdir'],
  worker: ['oci'],
  oci: ['gc', 'gckeepstorage', 'reservedSpace', 'maxUsedSpace', 'minFreeSpace', 'gcpolicy'],
  rule: ['all', 'filters', 'keepDuration', 'keepBytes', 'reservedSpace', 'maxUsedSpace', 'minFreeSpace'],
} as const;

/** The keys kiln does not use, in file order, each with the used key it is a near miss of. */
class Ignored {
  readonly names: string[] = [];
  readonly near: Record<string, string> = {};
  add(p: KeyPath, known: readonly string[], near?: string): void {
    const name = keyName(p);
    this.names.push(name);
    const key = p.at(-1);
    const close = near ?? (typeof key === 'string' ? suggest(key, known) : undefined);
    if (close !== undefined) this.near[name] = close;
  }
}

/** Which file a command reads: `KILN_CONFIG` (set by `--config`) must exist; the default may not. */
export interface ConfigLocation {
  readonly path: string;
  readonly explicit: boolean;
}

/**
 * The config file for a caller: `--config FILE` / `KILN_CONFIG` (relative to the caller's
 * directory), else /etc/kiln/kiln.toml for root, `$XDG_CONFIG_HOME/kiln/kiln.toml` (or
 * `~/.config/kiln/kiln.toml`) for other users, as buildkitd's rootless mode looks in ~/.config.
 */
export function configLocation(io: CliIo): ConfigLocation {
  const env = callerEnv(io);
  const named = env[CONFIG_ENV];
  if (named !== undefined && named !== '') return { path: callerPath(io, named), explicit: true };
  // Root on the host; rootless kiln is uid 0 of its own namespace (KILN_USERNS, cli/src/userns) and reads the user's file.
  if ((process.getuid?.() ?? 0) === 0 && (process.env['KILN_USERNS'] ?? '') === '') return { path: SYSTEM_CONFIG, explicit: false };
  const xdg = env['XDG_CONFIG_HOME'];
  return { path: join(xdg !== undefined && xdg !== '' ? xdg : join(env['HOME'] ?? homedir(), '.config'), 'kiln', 'kiln.toml'), explicit: false };
}

/**
 * The {@link KilnConfig.digest} of the config at `loc`, for a daemon's comparison: '' when a
 * default file does not exist, 'missing' for a named one, 'invalid' when it does not load (no
 * daemon serves such a config: its client runs the command itself and reports the error).
 */
export function configDigest(loc: ConfigLocation): string {
  try {
    return loadConfig(loc).digest;
  } catch {
    return statSync(loc.path, { throwIfNoEntry: false }) === undefined ? 'missing' : 'invalid';
  }
}

/** A file or directory a config read, as it was then (see {@link statKey}). */
interface ConfigDep {
  readonly path: string;
  readonly stat: string;
}

/** What identifies a version of a file: a rewrite changes its mtime (ns on Linux), size or inode. */
function statKey(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false, bigint: true });
  return st === undefined ? 'missing' : `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The last config read, kept while neither its file nor a file it names changed. */
let cached: { key: string; config: KilnConfig; deps: readonly ConfigDep[] } | undefined;
const warned = new WeakMap<object, Set<string>>();

/**
 * The config of the command `io` runs (see {@link configLocation}), read once per file version
 * in a process. The first time a command's stderr sees a file, the keys kiln ignores are listed
 * there in one warning line. Throws {@link ConfigError} for a missing named file, bad TOML or a
 * bad value of a key kiln uses.
 */
export function commandConfig(io: CliIo): KilnConfig {
  const config = loadConfig(configLocation(io));
  warnIgnored(config, (line) => void io.stderr.write(line), io.stderr);
  return config;
}

/** Writes the ignored-keys warning of `config` once per `sink` (a command's stderr, the daemon's log). */
export function warnIgnored(config: KilnConfig, write: (line: string) => void, sink: object): void {
  if (config.ignored.length === 0 || config.path === undefined) return;
  let seen = warned.get(sink);
  if (seen === undefined) warned.set(sink, (seen = new Set()));
  if (seen.has(config.digest)) return;
  seen.add(config.digest);
  const named = config.ignored.map((k) => (config.near[k] === undefined ? k : `${k} (did you mean ${config.near[k]}?)`));
  write(`WARNING: ${config.path}: ignoring keys kiln does not use: ${named.join(', ')}\n`);
}

/** Reads and checks the config at `loc` (the last one read is kept while its file is unchanged). */
export function loadConfig(loc: ConfigLocation): KilnConfig {
  let st;
  try {
    st = statSync(loc.path);
  } catch (e) {
    if (!loc.explicit && (e as { code?: unknown }).code === 'ENOENT') return NO_CONFIG;
    throw new ConfigError('KLN0940', `cannot read the config file ${loc.path}: ${(e as Error).message}`, { hint: `check --config / ${CONFIG_ENV}` });
  }
  const key = `${loc.path}\0${statKey(loc.path)}`;
  if (cached?.key === key && cached.deps.every((d) => statKey(d.path) === d.stat)) return cached.config;
  let bytes: Buffer;
  try {
    bytes = readFileSync(loc.path);
  } catch (e) {
    throw new ConfigError('KLN0940', `cannot read the config file ${loc.path}: ${(e as Error).message}`, { hint: `check --config / ${CONFIG_ENV}` });
  }
  const { config, deps } = parseWithDeps(bytes.toString('utf8'), loc.path);
  cached = { key, config, deps };
  return config;
}

/** Parses config text (`file` names it in errors and anchors relative paths). */
export function parseConfig(text: string, file: string): KilnConfig {
  return parseWithDeps(text, file).config;
}

function parseWithDeps(text: string, file: string): { config: KilnConfig; deps: readonly ConfigDep[] } {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    const why = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
    throw new ConfigError('KLN0940', `${file}:${e.line}:${e.column}: not valid TOML: ${why}`, { hint: 'fix the syntax (https://toml.io)' });
  }
  const r = new Reader(file, locateKeys(text));
  const ignored = new Ignored();
  let registry: Record<string, RegistryHostOptions> = {};
  let gc: GcFileSettings | undefined;
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'registry') registry = readRegistries(r, v, ignored);
    else if (k === 'worker') gc = readWorker(r, v, ignored);
    else ignored.add([k], KEYS.top);
  }
  // The digest: the text, then each file it named (by content: the same files elsewhere are the same config).
  const hash = createHash('sha256').update(text);
  for (const t of r.read) hash.update('\0').update(t);
  return { config: { path: file, digest: hash.digest('hex'), registry, gc, ignored: ignored.names, near: ignored.near }, deps: r.deps };
}

function readRegistries(r: Reader, v: unknown, ignored: Ignored): Record<string, RegistryHostOptions> {
  const out: Record<string, RegistryHostOptions> = {};
  for (const [host, t] of Object.entries(r.table(['registry'], v))) {
    const at: KeyPath = ['registry', host];
    // buildkitd looks a registry up by its host[:port]: a URL as the key matches no registry, so
    // its settings were silently unused (in buildkitd too); listed with the key to write
    const scheme = /^[a-z][a-z0-9+.-]*:\/\/([^/]+)\/?$/i.exec(host);
    if (scheme !== null) {
      ignored.add(at, [], keyName(['registry', scheme[1] ?? host]));
      continue;
    }
    const opts: { -readonly [K in keyof RegistryHostOptions]: RegistryHostOptions[K] } = {};
    const ca: string[] = [];
    const keypairs: RegistryKeyPair[] = [];
    for (const [k, val] of Object.entries(r.table(at, t))) {
      const p = [...at, k];
      switch (k) {
        case 'mirrors':
          opts.mirrors = r.strings(p, val).map((m, i) => r.mirror([...p, i], m));
          break;
        case 'http':
          opts.plainHttp = r.bool(p, val);
          break;
        case 'insecure':
          opts.insecure = r.bool(p, val);
          break;
        case 'ca':
          ca.push(...r.strings(p, val).map((f) => r.pem(p, f, 'CERTIFICATE')));
          break;
        case 'keypair':
          keypairs.push(...r.tables(p, val).map((kp, i) => r.keypair([...p, i], kp)));
          break;
        case 'tlsconfigdir':
          for (const d of r.strings(p, val)) r.certsDir(p, d, ca, keypairs);
          break;
        default:
          ignored.add(p, KEYS.registry);
      }
    }
    if (ca.length > 0) opts.ca = ca;
    if (keypairs.length > 0) opts.keypairs = keypairs;
    out[host] = opts;
  }
  return out;
}

function readWorker(r: Reader, v: unknown, ignored: Ignored): GcFileSettings | undefined {
  let gc: GcFileSettings | undefined;
  for (const [w, t] of Object.entries(r.table(['worker'], v))) {
    if (w !== 'oci') {
      ignored.add(['worker', w], KEYS.worker);
      continue;
    }
    const at: KeyPath = ['worker', 'oci'];
    const s: { -readonly [K in keyof GcFileSettings]: GcFileSettings[K] } = {};
    for (const [k, val] of Object.entries(r.table(at, t))) {
      const p = [...at, k];
      if (k === 'gc') s.enabled = r.bool(p, val);
      else if (k === 'gckeepstorage') s.keepStorage = r.diskSpace(p, val);
      else if (k === 'reservedSpace' || k === 'maxUsedSpace' || k === 'minFreeSpace') s[k] = r.diskSpace(p, val);
      else if (k === 'gcpolicy') s.policy = r.tables(p, val).map((rule, i) => readRule(r, [...p, i], rule, ignored));
      else ignored.add(p, KEYS.oci);
    }
    if (Object.keys(s).length > 0) gc = s;
  }
  return gc;
}

function readRule(r: Reader, at: KeyPath, t: Record<string, unknown>, ignored: Ignored): GcFileRule {
  const rule: { -readonly [K in keyof GcFileRule]: GcFileRule[K] } = {};
  for (const [k, val] of Object.entries(t)) {
    const p = [...at, k];
    if (k === 'all') rule.all = r.bool(p, val);
    else if (k === 'filters') rule.filters = r.filters(p, val);
    else if (k === 'keepDuration') rule.keepDuration = r.duration(p, val);
    else if (k === 'keepBytes' || k === 'reservedSpace' || k === 'maxUsedSpace' || k === 'minFreeSpace') rule[k] = r.diskSpace(p, val);
    else ignored.add(p, KEYS.rule);
  }
  return rule;
}

/** Typed reads of the parsed document; every failure names the file, line, column and key. */
class Reader {
  /** The files and directories read (for the cache), and the texts of the files in reading order (for the digest). */
  readonly deps: ConfigDep[] = [];
  readonly read: string[] = [];

  constructor(
    private readonly file: string,
    private readonly locations: KeyLocations,
  ) {}

  fail(path: KeyPath, problem: string, hint: string, code: 'KLN0941' | 'KLN0942' = 'KLN0941', cause?: unknown): ConfigError {
    const at = locate(this.locations, path);
    return new ConfigError(code, `${this.file}${at === undefined ? '' : `:${at.line}:${at.col}`}: ${keyName(path)}: ${problem}`, { hint, cause });
  }

  table(path: KeyPath, v: unknown): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) throw this.fail(path, `expected a table, got ${kind(v)}`, `write it as [${keyName(path)}]`);
    return v as Record<string, unknown>;
  }

  tables(path: KeyPath, v: unknown): Record<string, unknown>[] {
    if (!Array.isArray(v)) throw this.fail(path, `expected an array of tables, got ${kind(v)}`, `write each entry as [[${keyName(path)}]]`);
    return v.map((t, i) => this.table([...path, i], t));
  }

  bool(path: KeyPath, v: unknown): boolean {
    if (typeof v !== 'boolean') throw this.fail(path, `expected true or false, got ${kind(v)}`, `write ${keyName(path.slice(-1))} = true`);
    return v;
  }

  strings(path: KeyPath, v: unknown): string[] {
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw this.fail(path, `expected an array of strings, got ${kind(v)}`, `write ${keyName(path.slice(-1))} = ["…"]`);
    return v as string[];
  }

  /** GC filters, as `kiln prune --filter` takes them (`type==source.local`, `until=24h`, …). */
  filters(path: KeyPath, v: unknown): string[] {
    const list = this.strings(path, v);
    try {
      parseRecordFilters(list);
    } catch (e) {
      throw this.fail(path, (e as Error).message.replace(/^invalid --filter/, 'invalid filter'), (e as { hint?: string }).hint ?? 'e.g. "type==exec.cachemount", "until=24h"');
    }
    return list;
  }

  mirror(path: KeyPath, m: string): string {
    // host[:port][/path] after an optional scheme; user:password@ is dropped as BuildKit's
    // url.Parse-based extractMirrorHostAndPath drops it, and never repeated in a message.
    const parts = /^(?:https?:\/\/)?(?:[^/@\s]*@)?([^/\s]*)(\/\S*)?$/.exec(m);
    const host = parts?.[1] ?? '';
    if (parts === null || !/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?$/.test(host)) {
      throw this.fail(path, `invalid mirror "${m.replace(/^((?:https?:\/\/)?)[^/@\s]*@/, '$1…@')}"`, 'a mirror is host[:port], optionally with a path: mirror.local:5000 or harbor.local/proxy');
    }
    return m.replace(/^((?:https?:\/\/)?)[^/@\s]*@/, '$1');
  }

  /** BuildKit's DiskSpace: bytes (an integer, or a size with a unit: 512MB, 1GiB) or a percentage of the disk ("10%"). */
  diskSpace(path: KeyPath, v: unknown): DiskSpace {
    const hint = 'use bytes (512000000), a size ("512MB", "10GB") or a share of the disk ("10%")';
    if (typeof v === 'bigint') v = Number(v);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw this.fail(path, `invalid size ${v}`, hint);
      return { bytes: v };
    }
    if (typeof v !== 'string') throw this.fail(path, `expected a size, got ${kind(v)}`, hint);
    const pct = /^\s*(\d+)\s*%\s*$/.exec(v);
    if (pct !== null) return { percent: Number(pct[1]) };
    try {
      return { bytes: parseSize(v) };
    } catch {
      throw this.fail(path, `invalid size "${v}"`, hint);
    }
  }

  /** BuildKit's Duration: seconds (an integer) or a Go duration string ("48h"); milliseconds. */
  duration(path: KeyPath, v: unknown): number {
    const hint = 'use seconds (172800) or a Go duration ("48h", "90m")';
    if (typeof v === 'bigint') v = Number(v);
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v * 1000;
    if (typeof v === 'string') {
      if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
      try {
        return parseGoDuration(v, keyName(path));
      } catch {
        throw this.fail(path, `invalid duration "${v}"`, hint);
      }
    }
    throw this.fail(path, `expected a duration, got ${kind(v)}`, hint);
  }

  /**
   * A PEM file's text (`what`: CERTIFICATE or PRIVATE KEY); relative paths are the config file's.
   * The value is a path, but a key (or a certificate) pasted in its place must not reach a
   * message: PEM text is refused unquoted, and a key file that cannot be read is not named (its
   * line and column say which).
   */
  pem(path: KeyPath, file: string, what: 'CERTIFICATE' | 'PRIVATE KEY'): string {
    const hint = 'give the path of a PEM file kiln can read (relative paths are the config file\'s)';
    if (/-----BEGIN|[\r\n]/.test(file)) throw this.fail(path, 'expected the path of a PEM file, got PEM text (not shown)', `${hint}, not its contents`);
    const abs = isAbsolute(file) ? file : resolve(dirname(this.file), file);
    let text: string;
    // Stat before reading: a file changed meanwhile fails the cache check later, never the reverse.
    this.deps.push({ path: abs, stat: statKey(abs) });
    try {
      text = readFileSync(abs, 'utf8');
    } catch (e) {
      // Node's message repeats the path: only its errno part ("ENOENT: no such file or directory").
      const why = (e as Error).message.replace(/, \w+ '[\s\S]*$/, '');
      throw this.fail(path, what === 'PRIVATE KEY' ? `cannot read the key file it names: ${why}` : `cannot read ${abs}: ${why}`, hint, 'KLN0942');
    }
    if (!new RegExp(`-----BEGIN [A-Z ]*${what}-----`).test(text)) throw this.fail(path, `${abs} holds no PEM ${what.toLowerCase()}`, `give a PEM file (-----BEGIN ${what}-----)`, 'KLN0942');
    this.read.push(text);
    return text;
  }

  keypair(path: KeyPath, t: Record<string, unknown>): RegistryKeyPair {
    const file = (k: 'key' | 'cert'): string => {
      const v = t[k];
      if (typeof v !== 'string') throw this.fail([...path, k], v === undefined ? 'missing' : `expected a file path, got ${kind(v)}`, 'each [[…keypair]] needs key = "/path/key.pem" and cert = "/path/cert.pem"');
      return v;
    };
    return { cert: this.pem([...path, 'cert'], file('cert'), 'CERTIFICATE'), key: this.pem([...path, 'key'], file('key'), 'PRIVATE KEY') };
  }

  /** BuildKit's tlsconfigdir: `*.crt` are CAs, `NAME.cert` with `NAME.key` a client keypair (docker's certs.d layout); a missing directory is skipped. */
  certsDir(path: KeyPath, dir: string, ca: string[], keypairs: RegistryKeyPair[]): void {
    const abs = isAbsolute(dir) ? dir : resolve(dirname(this.file), dir);
    let names: string[];
    this.deps.push({ path: abs, stat: statKey(abs) });
    try {
      names = readdirSync(abs).sort();
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM') return;
      throw this.fail(path, `cannot read ${abs}: ${(e as Error).message}`, 'give a directory kiln can read', 'KLN0942');
    }
    for (const n of names) {
      if (n.endsWith('.crt')) ca.push(this.pem(path, join(abs, n), 'CERTIFICATE'));
      if (n.endsWith('.cert')) keypairs.push({ cert: this.pem(path, join(abs, n), 'CERTIFICATE'), key: this.pem(path, join(abs, `${n.slice(0, -'.cert'.length)}.key`), 'PRIVATE KEY') });
    }
  }
}

function kind(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'object') return 'a table';
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`;
}
