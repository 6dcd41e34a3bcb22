import { lstat, readlink, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { splitCsvFields } from '@kiln/runtime';
import { BakeError } from './errors.js';
import { readCsvRecord } from '../engine/csv-record.js';

/**
 * What `kiln bake --allow` grants, as buildx's EntitlementConf (bake/entitlements.go, buildx ≥
 * v0.18; file-system checks by default since v0.20): `network.host`, `security.insecure`, `ssh`
 * (forwarding the default agent), and the paths a target may read (`fs.read=PATH`) or write
 * (`fs.write=PATH`; `fs=PATH` both; `*` any path). `image.push`/`image.load` are accepted and
 * not checked, as in buildx.
 */
export interface EntitlementConf {
  networkHost: boolean;
  securityInsecure: boolean;
  ssh: boolean;
  readonly fsRead: string[];
  readonly fsWrite: string[];
}

/** buildx's ParseEntitlements: an unknown key is an error. */
export function parseEntitlements(values: readonly string[]): EntitlementConf {
  const conf: EntitlementConf = { networkHost: false, securityInsecure: false, ssh: false, fsRead: [], fsWrite: [] };
  for (const e of values) {
    if (e === 'network.host') conf.networkHost = true;
    else if (e === 'security.insecure') conf.securityInsecure = true;
    else if (e === 'ssh') conf.ssh = true;
    else {
      const i = e.indexOf('=');
      const k = i < 0 ? e : e.slice(0, i);
      const v = i < 0 ? '' : e.slice(i + 1);
      if (k === 'fs.read' || k === 'fs') conf.fsRead.push(v);
      if (k === 'fs.write' || k === 'fs') conf.fsWrite.push(v);
      if (!['fs.read', 'fs.write', 'fs', 'image.push', 'image.load', 'image'].includes(k)) {
        throw new BakeError('KLN0854', `unknown entitlement key "${k}" in --allow ${e}`, {
          hint: 'use network.host, security.insecure, ssh, fs.read=PATH, fs.write=PATH or fs=PATH (PATH may be *)',
        });
      }
    }
  }
  return conf;
}

/** What one target's build would use of the machine it runs on (buildx's build.Options, as check reads them). */
export interface TargetAccess {
  readonly name: string;
  /** The target's `entitlements` (network = "host" added one already). */
  readonly entitlements: readonly string[];
  /** Absolute paths read: local contexts and Dockerfile, `type=local` cache sources, secret files, ssh keys or sockets. */
  readonly read: readonly string[];
  /** Absolute paths written: `local`, `tar`, `oci` and `docker` output destinations, `type=local` cache exports. */
  readonly write: readonly string[];
  /** An ssh id without paths: the caller's default agent is forwarded. */
  readonly sshAgent: boolean;
}

/** The values of a target's build flags that touch the machine (see {@link targetAccess}). */
export interface AccessFlags {
  readonly output: readonly string[];
  readonly cacheTo: readonly string[];
  readonly cacheFrom: readonly string[];
  readonly secret: readonly string[];
  readonly ssh: readonly string[];
  readonly allow: readonly string[];
}

const fieldsOf = (v: string): Map<string, string> => {
  try {
    return new Map(splitCsvFields(v).map(([k, x]) => [k.toLowerCase(), x]));
  } catch {
    // A malformed value is the build flag parser's to report (before anything runs).
    return new Map();
  }
};

/**
 * A `--cache-to`/`--cache-from` value's fields as the build reads them (encoding/csv, cache-spec.ts):
 * the lenient splitter above drops the quote of `"dest=x""/c"`, and the build writes to `x"/c`.
 */
const cacheFieldsOf = (v: string): Map<string, string> => {
  try {
    const pairs = readCsvRecord(v).flatMap((f): [string, string][] => {
      const i = f.indexOf('=');
      return i < 0 ? [] : [[f.slice(0, i).toLowerCase(), f.slice(i + 1)]];
    });
    return new Map(pairs);
  } catch {
    // A malformed value is the build flag parser's to report (before anything runs).
    return new Map();
  }
};

/**
 * The paths and privileges of one target, from its `kiln build` flags; `inputs` are its local
 * context, Dockerfile and named contexts (buildx's collectLocalPaths). Relative paths are the
 * caller's (`cwd`), as the build resolves them; `env` decides which secrets are files.
 */
export function targetAccess(name: string, inputs: readonly string[], flags: AccessFlags, cwd: string, env: Readonly<Record<string, string | undefined>>): TargetAccess {
  const read = [...inputs];
  const write: string[] = [];
  const abs = (p: string): string => resolve(cwd, p);
  for (const o of flags.output) {
    if (!o.includes('=')) {
      if (o !== '-' && o !== '') write.push(abs(o));
      continue;
    }
    const f = fieldsOf(o);
    const type = f.get('type');
    const dest = f.get('dest');
    // buildx's CreateExports: local is a directory, tar a file; oci and docker a file, or a directory with tar=false.
    if (dest !== undefined && dest !== '-' && dest !== '' && (type === 'local' || type === 'tar' || type === 'oci' || type === 'docker')) write.push(abs(dest));
  }
  for (const c of flags.cacheTo) {
    const f = cacheFieldsOf(c);
    const dest = f.get('dest');
    if (f.get('type') === 'local' && dest !== undefined) write.push(abs(dest));
  }
  for (const c of flags.cacheFrom) {
    const f = cacheFieldsOf(c);
    const src = f.get('src');
    if (f.get('type') === 'local' && src !== undefined) read.push(abs(src));
  }
  for (const s of flags.secret) {
    const file = secretFile(fieldsOf(s), env);
    if (file !== undefined) read.push(abs(file));
  }
  let sshAgent = false;
  for (const s of flags.ssh) {
    const i = s.indexOf('=');
    const paths = i < 0 ? [] : s.slice(i + 1).split(',').filter((p) => p !== '');
    if (paths.length === 0) sshAgent = true;
    for (const p of paths) read.push(abs(p));
  }
  return { name, entitlements: flags.allow, read, write, sshAgent };
}

/**
 * The file a `--secret` value reads, as kiln resolves it (session.ts parseSecrets): `src=`, or the
 * file named like the id when no variable of that name is set. buildx checks only `src=`; BuildKit
 * then reads the file named by the id all the same, so kiln counts it.
 */
function secretFile(f: ReadonlyMap<string, string>, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const id = f.get('id');
  const src = f.get('src') ?? f.get('source');
  if (f.has('env') || f.get('type') === 'env') return undefined;
  if (src !== undefined) return src;
  return id !== undefined && id !== '' && env[id] === undefined ? id : undefined;
}

/** One path nobody granted, with the targets that use it. */
export interface MissingPath {
  /** Absolute, its existing part with symlinks resolved (what buildx asks the grant for). */
  readonly path: string;
  readonly targets: readonly string[];
}

/** The privileges the targets use that the grants do not cover (buildx's Validate). */
export interface MissingEntitlements {
  readonly networkHost: readonly string[];
  readonly securityInsecure: readonly string[];
  readonly ssh: readonly string[];
  readonly fsRead: readonly MissingPath[];
  readonly fsWrite: readonly MissingPath[];
}

/**
 * buildx's check: `network.host` and `security.insecure` that a target asks for and `--allow` does
 * not grant; the paths it reads or writes outside the granted ones. The working directory `cwd` is
 * granted both ways. A path counts by its longest existing part, symlinks resolved (a link in the
 * working directory to /etc asks for /etc; an output directory that does not exist yet asks for
 * its parent); a granted path by its symlinks resolved too.
 */
export async function missingEntitlements(conf: EntitlementConf, targets: readonly TargetAccess[], cwd: string): Promise<MissingEntitlements> {
  const networkHost: string[] = [];
  const securityInsecure: string[] = [];
  const ssh: string[] = [];
  const reads = new Map<string, string[]>();
  const writes = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, p: string, t: string): void => {
    const l = m.get(p) ?? [];
    if (!l.includes(t)) l.push(t);
    m.set(p, l);
  };
  for (const t of targets) {
    if (t.entitlements.includes('network.host') && !conf.networkHost) networkHost.push(t.name);
    if (t.entitlements.includes('security.insecure') && !conf.securityInsecure) securityInsecure.push(t.name);
    if (t.sshAgent && !conf.ssh) ssh.push(t.name);
    for (const p of t.read) add(reads, p, t.name);
    for (const p of t.write) add(writes, p, t.name);
  }
  return {
    networkHost,
    securityInsecure,
    ssh,
    fsRead: await missingPaths([cwd, ...conf.fsRead], reads, cwd),
    fsWrite: await missingPaths([cwd, ...conf.fsWrite], writes, cwd),
  };
}

/** buildx's findMissingPaths: the requested paths (deduplicated by their parents) that no granted path holds. */
async function missingPaths(granted: readonly string[], requested: ReadonlyMap<string, readonly string[]>, cwd: string): Promise<MissingPath[]> {
  if (granted.includes('*') || requested.size === 0) return [];
  const allowed: string[] = [];
  for (const g of granted) {
    const { existing, rest } = await existingPath(resolve(cwd, g));
    allowed.push(rest === '' ? existing : join(existing, rest));
  }
  const byPath = new Map<string, string[]>();
  for (const [p, targets] of requested) {
    const { existing } = await existingPath(p);
    byPath.set(existing, [...new Set([...(byPath.get(existing) ?? []), ...targets])]);
  }
  // A path under another requested one needs no grant of its own (buildx's dedupPaths).
  const sorted = [...byPath.keys()].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const p of sorted) {
    const parent = kept.find((k) => isUnder(p, k));
    if (parent === undefined) kept.push(p);
    else byPath.set(parent, [...new Set([...(byPath.get(parent) ?? []), ...(byPath.get(p) ?? [])])]);
  }
  return kept
    .filter((p) => !allowed.some((a) => isUnder(p, a)))
    .sort()
    .map((path) => ({ path, targets: byPath.get(path) ?? [] }));
}

/** buildx's isParentOrEqualPath. */
export function isUnder(p: string, parent: string): boolean {
  if (p === parent || parent === '/') return true;
  return p.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * buildx's evaluateToExistingPath: `p` (absolute) walked one component at a time with symlinks
 * resolved, up to the first component that does not exist; `rest` is what did not exist.
 */
export async function existingPath(p: string): Promise<{ existing: string; rest: string }> {
  let pending = p.split('/').filter((c) => c !== '' && c !== '.');
  let cur = '/';
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === '..') {
      cur = dirname(cur);
      continue;
    }
    const next = join(cur, c);
    const st = await lstat(next).catch(() => undefined);
    if (st === undefined) return { existing: cur, rest: [c, ...pending].join('/') };
    if (!st.isSymbolicLink()) {
      cur = next;
      continue;
    }
    if (++links > 255) throw new BakeError('KLN0853', `too many levels of symbolic links in ${p}`);
    const target = await readlink(next);
    pending = [...target.split('/').filter((x) => x !== '' && x !== '.'), ...pending];
    if (isAbsolute(target)) cur = '/';
  }
  // The walk resolved every link; realpath only normalises what the walk cannot see (bind mounts keep their names).
  return { existing: await realpath(cur).catch(() => cur), rest: '' };
}

/** `p` as the error shows it: relative to the working directory when at most one `..` up, as buildx's toRelativePaths. */
function shown(p: string, cwd: string): string {
  const rel = relative(cwd, p);
  if (rel === '') return '.';
  return rel.startsWith(`..${sep}..`) || isAbsolute(rel) ? p : rel;
}

/**
 * Whether `BUILDX_BAKE_ENTITLEMENTS_FS` / `BAKE_ALLOW_REMOTE_FS_ACCESS` turn the file-system
 * (and ssh) checks off, as buildx's Prompt reads them: on by default; a remote definition's off
 * with `BAKE_ALLOW_REMOTE_FS_ACCESS=1`; `BUILDX_BAKE_ENTITLEMENTS_FS` decides over both.
 */
export function fsChecksEnabled(env: Readonly<Record<string, string | undefined>>, remote: boolean): boolean {
  const bool = (name: string): boolean | undefined => {
    const v = env[name];
    if (v === undefined) return undefined;
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
    throw new BakeError('KLN0854', `invalid ${name} value "${v}"`, { hint: `use ${name}=1 or ${name}=0` });
  };
  const fs = bool('BUILDX_BAKE_ENTITLEMENTS_FS');
  if (fs !== undefined) return fs;
  return !(remote && bool('BAKE_ALLOW_REMOTE_FS_ACCESS') === true);
}

/**
 * The KLN0858 error for what is missing (undefined when nothing is), with the exact `--allow` flags
 * in buildx's order: network.host, security.insecure, ssh, then fs= (read and write), fs.read=,
 * fs.write=. Paths are shown relative to the working directory where buildx shows them so.
 */
export function entitlementsError(m: MissingEntitlements, cwd: string, fsChecks: boolean): BakeError | undefined {
  const items: string[] = [];
  const flags: string[] = [];
  const who = (targets: readonly string[]): string => `target${targets.length > 1 ? 's' : ''} ${targets.map((t) => `"${t}"`).join(', ')}`;
  if (m.networkHost.length > 0) {
    items.push(`host network access (${who(m.networkHost)})`);
    flags.push('network.host');
  }
  if (m.securityInsecure.length > 0) {
    items.push(`privileged containers that can change the host (${who(m.securityInsecure)})`);
    flags.push('security.insecure');
  }
  if (fsChecks) {
    if (m.ssh.length > 0) {
      items.push(`your default ssh agent (${who(m.ssh)})`);
      flags.push('ssh');
    }
    const writes = new Map(m.fsWrite.map((w) => [w.path, w.targets]));
    for (const r of m.fsRead) {
      const w = writes.get(r.path);
      if (w === undefined) continue;
      items.push(`read and write access to ${shown(r.path, cwd)} (${who([...new Set([...r.targets, ...w])])})`);
      flags.push(`fs=${shown(r.path, cwd)}`);
    }
    for (const r of m.fsRead) {
      if (writes.has(r.path)) continue;
      items.push(`read access to ${shown(r.path, cwd)} (${who(r.targets)})`);
      flags.push(`fs.read=${shown(r.path, cwd)}`);
    }
    const reads = new Set(m.fsRead.map((r) => r.path));
    for (const w of m.fsWrite) {
      if (reads.has(w.path)) continue;
      items.push(`write access to ${shown(w.path, cwd)} (${who(w.targets)})`);
      flags.push(`fs.write=${shown(w.path, cwd)}`);
    }
  }
  if (flags.length === 0) return undefined;
  const allow = flags.map((f) => `--allow=${f}`).join(' ');
  return new BakeError('KLN0858', `the bake definition asks for privileges you have not granted: ${items.join('; ')}`, {
    hint: `pass ${allow} to grant them${fsChecks && (m.fsRead.length > 0 || m.fsWrite.length > 0 || m.ssh.length > 0) ? ' (BUILDX_BAKE_ENTITLEMENTS_FS=0 turns the file-system and ssh checks off)' : ''}`,
  });
}

/**
 * The grants a `--set` value makes, as buildx's AddOverrides records them: a value you type is
 * yours to allow (`output` destinations may be written, `cache-to` local destinations written,
 * `cache-from` local sources, secret files and ssh paths read; `entitlements` network.host and
 * security.insecure granted). `key` is the canonical key (after the target pattern).
 */
export function setGrants(key: string, value: string, conf: EntitlementConf, cwd: string, env: Readonly<Record<string, string | undefined>>): void {
  const head = key.split('.', 1)[0] ?? '';
  const a = targetAccess('', [], {
    output: head === 'output' ? [value] : [],
    cacheTo: head === 'cache-to' ? [value] : [],
    cacheFrom: head === 'cache-from' ? [value] : [],
    secret: head === 'secrets' ? [value] : [],
    ssh: head === 'ssh' ? [value] : [],
    allow: [],
  }, cwd, env);
  conf.fsRead.push(...a.read);
  conf.fsWrite.push(...a.write);
  if (head === 'entitlements') {
    if (value === 'network.host') conf.networkHost = true;
    if (value === 'security.insecure') conf.securityInsecure = true;
  }
}
