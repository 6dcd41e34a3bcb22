/**
 * `RUN --mount` specs, as BuildKit's instructions/commands_runmount.go (parseMount), plus the
 * small Go parsers it relies on (CSV fields, strconv.ParseBool, go-units RAMInBytes).
 */
import { cleanPath, joinPath } from '@kiln/llb-core';
import { KilnError, suggest } from '../errors.js';

/** Go's path.Clean (llb-core's). */
export { cleanPath };

/** Mount types. */
export const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'] as const;
/** A mount type. */
export type MountType = (typeof MOUNT_TYPES)[number];
/** Cache sharing modes. */
export const SHARE_MODES = ['shared', 'private', 'locked'] as const;
/** A cache sharing mode. */
export type ShareMode = (typeof SHARE_MODES)[number];

const ALL_KEYS = [
  'type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid',
  'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env',
];

/**
 * A parsed `--mount` (BuildKit's instructions.Mount). Strings are `''` when not given; the
 * defaults BuildKit applies here are applied (type bind; read-only unless cache/tmpfs or ro/rw
 * given). Defaults applied by the converter (secret target `/run/secrets/<id>`, ssh target,
 * cache sharing `shared`, relative targets joined to WORKDIR) are not: see {@link resolveMountTarget}.
 */
export interface MountSpec {
  type: MountType;
  from: string;
  source: string;
  target: string;
  readOnly: boolean;
  /** tmpfs `size` in bytes, 0 = unlimited. */
  sizeLimit: number;
  /** `id` (cache id, secret id, ssh id). */
  cacheId: string;
  /** `''` when not given. */
  cacheSharing: ShareMode | '';
  required: boolean;
  /** secret `env=NAME`: expose the secret as an environment variable. */
  env: string | undefined;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  /** Option keys (lower case, as written) whose value the expander deferred. */
  deferred: string[];
}

/**
 * Expands one option value (the converter passes the shell lexer with the stage's environment).
 * Returning {@link DEFER} leaves the option for later: used to validate what can be validated
 * before variables are known.
 */
export type MountExpander = (value: string) => string | typeof DEFER;

/** Returned by a {@link MountExpander} to skip an option until expansion time. */
export const DEFER: unique symbol = Symbol('defer');

function mountError(code: 'KLN0411' | 'KLN0412' | 'KLN0413' | 'KLN0414' | 'KLN0415', msg: string, hint?: string): KilnError {
  return new KilnError(code, msg, { hint });
}

/**
 * Parse one `--mount` value. With no expander, like BuildKit at instruction-parse time, only the
 * shape and `from` (no variables allowed) are checked; the converter calls this again with an
 * expander for the final value. Throws KilnError KLN041x.
 */
export function parseMount(value: string, expander?: MountExpander): MountSpec {
  let fields: string[];
  try {
    fields = csvFields(value);
  } catch (e) {
    throw mountError('KLN0411', `failed to parse csv mounts: ${(e as Error).message}`, 'quote values that contain commas: "target=/a,b"');
  }
  const m: MountSpec = {
    type: 'bind', from: '', source: '', target: '', readOnly: false, sizeLimit: 0, cacheId: '', cacheSharing: '',
    required: false, env: undefined, mode: undefined, uid: undefined, gid: undefined, deferred: [],
  };
  let roAuto = true;
  const typeKnown = (): boolean => !m.deferred.includes('type');
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    let v = eq < 0 ? '' : field.slice(eq + 1);
    if (eq < 0) {
      if (expander === undefined) continue;
      switch (key) {
        case 'readonly':
        case 'ro':
          m.readOnly = true;
          roAuto = false;
          continue;
        case 'readwrite':
        case 'rw':
          m.readOnly = false;
          roAuto = false;
          continue;
        case 'required':
          if (m.type === 'secret' || m.type === 'ssh' || !typeKnown()) {
            m.required = true;
            continue;
          }
          throw mountError('KLN0413', `unexpected key '${key}' for mount type '${m.type}'`, 'required applies to secret and ssh mounts');
        default:
          throw mountError('KLN0411', `invalid field '${field}' must be a key=value pair`);
      }
    }
    if (expander !== undefined) {
      const x = expander(v);
      if (x === DEFER) {
        m.deferred.push(key);
        continue;
      }
      v = x;
    } else if (key === 'from') {
      const i = v.indexOf('$');
      if (i !== -1 && i !== v.length - 1) {
        throw mountError('KLN0415', `'${key}' doesn't support variable expansion, define alias stage instead`);
      }
    } else {
      continue;
    }
    switch (key) {
      case 'type': {
        const t = v.toLowerCase();
        if (!(MOUNT_TYPES as readonly string[]).includes(t)) {
          const s = suggest(v, MOUNT_TYPES);
          throw mountError('KLN0412', `unsupported mount type ${JSON.stringify(v)}${s === undefined ? '' : ` (did you mean ${JSON.stringify(s)}?)`}`,
            `use one of ${MOUNT_TYPES.join(', ')}`);
        }
        m.type = t as MountType;
        break;
      }
      case 'from':
        m.from = v;
        break;
      case 'source':
      case 'src':
        m.source = v;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = v;
        break;
      case 'readonly':
      case 'ro':
        m.readOnly = boolValue(key, v);
        roAuto = false;
        break;
      case 'readwrite':
      case 'rw':
        m.readOnly = !boolValue(key, v);
        roAuto = false;
        break;
      case 'required':
        if (m.type !== 'secret' && m.type !== 'ssh' && typeKnown()) {
          throw mountError('KLN0413', `unexpected key '${key}' for mount type '${m.type}'`, 'required applies to secret and ssh mounts');
        }
        m.required = boolValue(key, v);
        break;
      case 'size':
        if (m.type !== 'tmpfs' && typeKnown()) throw mountError('KLN0413', `unexpected key '${key}' for mount type '${m.type}'`, 'size applies to tmpfs mounts');
        try {
          m.sizeLimit = ramInBytes(v);
        } catch {
          throw mountError('KLN0415', `invalid value for ${key}: ${v}`, 'use a size such as 64m or 1g');
        }
        break;
      case 'id':
        m.cacheId = v;
        break;
      case 'sharing': {
        const s = v.toLowerCase();
        if (!(SHARE_MODES as readonly string[]).includes(s)) {
          const sg = suggest(v, SHARE_MODES);
          throw mountError('KLN0415', `unsupported sharing value ${JSON.stringify(v)}${sg === undefined ? '' : ` (did you mean ${JSON.stringify(sg)}?)`}`,
            `use one of ${SHARE_MODES.join(', ')}`);
        }
        m.cacheSharing = s as ShareMode;
        break;
      }
      case 'mode':
        m.mode = parseUint(v, 8, `invalid value ${v} for mode`);
        break;
      case 'uid':
        m.uid = parseUint(v, 10, `invalid value ${v} for uid`);
        break;
      case 'gid':
        m.gid = parseUint(v, 10, `invalid value ${v} for gid`);
        break;
      case 'env':
        m.env = v;
        break;
      default: {
        const s = suggest(key, ALL_KEYS);
        throw mountError('KLN0413', `unexpected key '${key}' in '${field}'${s === undefined ? '' : ` (did you mean ${s}?)`}`,
          `valid keys: ${ALL_KEYS.join(', ')}`);
      }
    }
  }
  const fileInfoAllowed = m.type === 'secret' || m.type === 'ssh' || m.type === 'cache';
  if (!fileInfoAllowed && typeKnown()) {
    for (const k of ['mode', 'uid', 'gid'] as const) {
      if (m[k] !== undefined) throw mountError('KLN0413', `${k} not allowed for ${JSON.stringify(m.type)} type mounts`);
    }
  }
  if (roAuto) m.readOnly = !(m.type === 'cache' || m.type === 'tmpfs');
  if (m.type === 'secret') {
    if (m.from !== '') throw mountError('KLN0413', 'secret mount should not have a from');
    if (m.cacheSharing !== '') throw mountError('KLN0413', 'secret mount should not define sharing');
    const named = ['source', 'src', 'target', 'dst', 'destination', 'id'].some((k) => m.deferred.includes(k));
    if (expander !== undefined && !named && m.source === '' && m.target === '' && m.cacheId === '') {
      throw mountError('KLN0414', 'invalid secret mount. one of source, target required', 'add id=NAME (the secret is then at /run/secrets/NAME)');
    }
    if (m.source !== '' && m.cacheId !== '') throw mountError('KLN0415', "both source and id can't be set");
  }
  if (m.cacheSharing !== '' && m.type !== 'cache' && typeKnown()) throw mountError('KLN0413', `invalid cache sharing set for ${m.type} mount`);
  return m;
}

/**
 * The absolute target of a mount the way BuildKit's converter computes it: secrets default to
 * `/run/secrets/<id or basename(source)>`; relative targets (and a missing target) are joined to
 * the WORKDIR; the result must not be `/`. `sshIndex` numbers ssh mounts without a target.
 */
export function resolveMountTarget(m: MountSpec, workdir: string, sshIndex = 0): string {
  let target = m.target;
  if (m.type === 'secret' && target === '') {
    const id = m.cacheId !== '' ? m.cacheId : m.source.split('/').pop() ?? '';
    target = `/run/secrets/${id}`;
  }
  if (m.type === 'ssh' && target === '') target = `/run/buildkit/ssh_agent.${sshIndex}`;
  if (!target.startsWith('/')) target = joinPath('/', workdir, target);
  target = cleanPath(target);
  if (target === '/') {
    throw mountError('KLN0414', `invalid mount target ${JSON.stringify(target)}`, 'set target=/some/absolute/path');
  }
  return target;
}

function boolValue(key: string, v: string): boolean {
  const b = parseGoBool(v);
  if (b === undefined) throw mountError('KLN0415', `invalid value for ${key}: ${v}`, 'use true or false');
  return b;
}

/** Go's strconv.ParseBool; undefined when invalid. */
export function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function parseUint(v: string, base: 8 | 10, msg: string): number {
  const re = base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  const n = re.test(v) ? Number.parseInt(v, base) : NaN;
  if (!Number.isFinite(n) || n > 0xffffffff) throw mountError('KLN0415', msg);
  return n;
}

/** go-units RAMInBytes: `64m`, `1.5GiB`, `1024` → bytes (binary multipliers). */
export function ramInBytes(s: string): number {
  const m = /^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (m === null) throw new Error(`invalid size: '${s}'`);
  const size = Number.parseFloat(m[1] ?? '');
  const mul: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(size * (mul[(m[3] ?? '').toLowerCase()] ?? 1));
}

/** One CSV record (Go encoding/csv rules, comma separated, `"` quoting with `""` escapes). */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let f = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error('extraneous or missing " in quoted-field');
        f += line.slice(i, q);
        i = q + 1;
        if (line[i] === '"') {
          f += '"';
          i++;
          continue;
        }
        if (i < line.length && line[i] !== ',') throw new Error('extraneous or missing " in quoted-field');
        break;
      }
      out.push(f);
    } else {
      const c = line.indexOf(',', i);
      const f = c < 0 ? line.slice(i) : line.slice(i, c);
      if (f.includes('"')) throw new Error('bare " in non-quoted-field');
      out.push(f);
      i = c < 0 ? line.length : c;
    }
    if (i >= line.length) break;
    i++; // the comma
    if (i === line.length) {
      out.push('');
      break;
    }
  }
  return out;
}
