/**
 * The `buildctl debug dump-llb` JSON view (BuildKit v0.11.6): Go `encoding/json` applied
 * to the gogo-generated structs. That means proto field names as JSON keys (mixed case:
 * `inputs`, `Architecture`, `proxy_env`), oneof wrappers under the Go field name (`Op`,
 * `Action`, `User`), `omitempty` on everything except gogo non-nullable fields (input
 * and output indexes, `caps`), enums as numbers, `bytes` as base64, map keys sorted, and
 * `<`, `>`, `&` escaped as `\u003c` and friends.
 */
import { digestOf, type Digest } from './digest.js';
import type {
  ChownOpt,
  Definition,
  ExecOp,
  FileOpAction,
  Meta,
  Mount,
  Op,
  OpMetadata,
  PbPlatform,
  Source,
  UserOpt,
} from './op.js';
import { decodeOp } from './pb/op-codec.js';
import { encodedOp } from './encoded-ops.js';
import { sortedKeys } from './pb/writer.js';

/** What {@link goJsonString} escapes, or checks (surrogates), and so must scan for. */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\<>&\u2028-\uffff]/;

/** Quotes a string the way Go's encoding/json does (HTML-safe, U+2028/9 escaped). */
export function goJsonString(s: string): string {
  // a regex test rather than a loop over the characters: it runs as compiled code even in a
  // short-lived process, where a loop stays in the interpreter (most strings are plain)
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  let out = '"';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) {
      switch (c) {
        case 0x22: esc = '\\"'; break;
        case 0x5c: esc = '\\\\'; break;
        case 0x0a: esc = '\\n'; break;
        case 0x0d: esc = '\\r'; break;
        case 0x09: esc = '\\t'; break;
        default: esc = `\\u${c.toString(16).padStart(4, '0')}`;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // Lone surrogates cannot come from valid UTF-8; Go writes U+FFFD for invalid bytes.
      const hi = c <= 0xdbff && i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && hi >= 0xdc00 && hi <= 0xdfff) {
        i++;
        continue;
      }
      esc = '\ufffd';
    }
    if (esc !== undefined) {
      out += s.slice(last, i) + esc;
      last = i + 1;
    }
  }
  return out + s.slice(last) + '"';
}

/**
 * A tiny ordered JSON object builder following Go's omitempty rules. Keys are this module's
 * constant field names (plain ASCII, nothing to escape); the text is built by concatenation.
 */
class Obj {
  private s = '';
  raw(key: string, json: string): this {
    this.s += this.s === '' ? `"${key}":${json}` : `,"${key}":${json}`;
    return this;
  }
  str(key: string, v: string | undefined): this {
    return v ? this.raw(key, goJsonString(v)) : this;
  }
  num(key: string, v: number | bigint | undefined): this {
    return v ? this.raw(key, String(v)) : this;
  }
  /** A non-nullable (no omitempty) number. */
  num0(key: string, v: number | undefined): this {
    return this.raw(key, String(v ?? 0));
  }
  bool(key: string, v: boolean | undefined): this {
    return v ? this.raw(key, 'true') : this;
  }
  strs(key: string, v: readonly string[] | undefined): this {
    if (!v || v.length === 0) return this;
    let a = goJsonString(v[0] as string);
    for (let i = 1; i < v.length; i++) a += `,${goJsonString(v[i] as string)}`;
    return this.raw(key, `[${a}]`);
  }
  nums(key: string, v: readonly number[] | undefined): this {
    return v && v.length > 0 ? this.raw(key, `[${v.join(',')}]`) : this;
  }
  bytes(key: string, v: Uint8Array | undefined): this {
    return v && v.length > 0 ? this.raw(key, goJsonString(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'))) : this;
  }
  obj<T>(key: string, v: T | undefined, f: (v: T) => string): this {
    return v !== undefined ? this.raw(key, f(v)) : this;
  }
  list<T>(key: string, v: readonly T[] | undefined, f: (v: T) => string): this {
    if (!v || v.length === 0) return this;
    let a = f(v[0] as T);
    for (let i = 1; i < v.length; i++) a += `,${f(v[i] as T)}`;
    return this.raw(key, `[${a}]`);
  }
  map<T>(key: string, v: ReadonlyMap<string, T> | undefined, f: (v: T) => string, omitEmpty = true): this {
    if (!v || v.size === 0) return omitEmpty ? this : this.raw(key, 'null');
    const keys = sortedKeys(v);
    let a = '';
    for (const k of keys) a += `${a === '' ? '' : ','}${goJsonString(k)}:${f(v.get(k) as T)}`;
    return this.raw(key, `{${a}}`);
  }
  toString(): string {
    return `{${this.s}}`;
  }
}

const jPlatform = (p: PbPlatform): string =>
  new Obj()
    .str('Architecture', p.architecture)
    .str('OS', p.os)
    .str('Variant', p.variant)
    .str('OSVersion', p.osVersion)
    .strs('OSFeatures', p.osFeatures)
    .toString();

const jMeta = (m: Meta): string =>
  new Obj()
    .strs('args', m.args)
    .strs('env', m.env)
    .str('cwd', m.cwd)
    .str('user', m.user)
    .obj('proxy_env', m.proxyEnv, (p) =>
      new Obj()
        .str('http_proxy', p.httpProxy)
        .str('https_proxy', p.httpsProxy)
        .str('ftp_proxy', p.ftpProxy)
        .str('no_proxy', p.noProxy)
        .str('all_proxy', p.allProxy)
        .toString(),
    )
    .list('extraHosts', m.extraHosts, (h) => new Obj().str('Host', h.host).str('IP', h.ip).toString())
    .str('hostname', m.hostname)
    .list('ulimit', m.ulimit, (u) => new Obj().str('Name', u.name).num('Soft', u.soft).num('Hard', u.hard).toString())
    .str('cgroupParent', m.cgroupParent)
    .bool('removeMountStubsRecursive', m.removeMountStubsRecursive)
    .nums('validExitCodes', m.validExitCodes)
    .toString();

const jSecretOpt = (s: { id?: string; uid?: number; gid?: number; mode?: number; optional?: boolean }): string =>
  new Obj().str('ID', s.id).num('uid', s.uid).num('gid', s.gid).num('mode', s.mode).bool('optional', s.optional).toString();

const jMount = (m: Mount): string =>
  new Obj()
    .num0('input', m.input)
    .str('selector', m.selector)
    .str('dest', m.dest)
    .num0('output', m.output)
    .bool('readonly', m.readonly)
    .num('mountType', m.mountType)
    .obj('TmpfsOpt', m.tmpfsOpt, (t) => new Obj().num('size', t.size).toString())
    .obj('cacheOpt', m.cacheOpt, (c) => new Obj().str('ID', c.id).num('sharing', c.sharing).toString())
    .obj('secretOpt', m.secretOpt, jSecretOpt)
    .obj('SSHOpt', m.sshOpt, jSecretOpt)
    .str('resultID', m.resultId)
    .num('contentCache', m.contentCache)
    .toString();

const jExec = (e: ExecOp): string =>
  new Obj()
    .obj('meta', e.meta, jMeta)
    .list('mounts', e.mounts, jMount)
    .num('network', e.network)
    .num('security', e.security)
    .list('secretenv', e.secretenv, (s) => new Obj().str('ID', s.id).str('name', s.name).bool('optional', s.optional).toString())
    .list('cdiDevices', e.cdiDevices, (d) => new Obj().str('name', d.name).bool('optional', d.optional).toString())
    .toString();

const jUser = (u: UserOpt): string => {
  let inner: string;
  switch (u.kind) {
    case 'byName':
      inner = `{"byName":${new Obj().str('name', u.byName.name).num0('input', u.byName.input).toString()}}`;
      break;
    case 'byId':
      inner = new Obj().num('byID', u.byId).toString();
      break;
    case 'none':
      inner = 'null';
  }
  return `{"User":${inner}}`;
};
const jChown = (c: ChownOpt): string => new Obj().obj('user', c.user, jUser).obj('group', c.group, jUser).toString();

const jAction = (a: FileOpAction): string => {
  const o = new Obj().num0('input', a.input).num0('secondaryInput', a.secondaryInput).num0('output', a.output);
  const act = a.action;
  switch (act.kind) {
    case 'copy': {
      const c = act.copy;
      return o
        .raw(
          'Action',
          `{"copy":${new Obj()
            .str('src', c.src)
            .str('dest', c.dest)
            .obj('owner', c.owner, jChown)
            .num('mode', c.mode)
            .bool('followSymlink', c.followSymlink)
            .bool('dirCopyContents', c.dirCopyContents)
            .bool('attemptUnpackDockerCompatibility', c.attemptUnpackDockerCompatibility)
            .bool('createDestPath', c.createDestPath)
            .bool('allowWildcard', c.allowWildcard)
            .bool('allowEmptyWildcard', c.allowEmptyWildcard)
            .num('timestamp', c.timestamp)
            .strs('include_patterns', c.includePatterns)
            .strs('exclude_patterns', c.excludePatterns)
            .bool('alwaysReplaceExistingDestPaths', c.alwaysReplaceExistingDestPaths)
            .str('modeStr', c.modeStr)
            .strs('required_paths', c.requiredPaths)
            .toString()}}`,
        )
        .toString();
    }
    case 'mkfile': {
      const m = act.mkfile;
      return o
        .raw(
          'Action',
          `{"mkfile":${new Obj()
            .str('path', m.path)
            .num('mode', m.mode)
            .bytes('data', m.data)
            .obj('owner', m.owner, jChown)
            .num('timestamp', m.timestamp)
            .toString()}}`,
        )
        .toString();
    }
    case 'mkdir': {
      const m = act.mkdir;
      return o
        .raw(
          'Action',
          `{"mkdir":${new Obj()
            .str('path', m.path)
            .num('mode', m.mode)
            .bool('makeParents', m.makeParents)
            .obj('owner', m.owner, jChown)
            .num('timestamp', m.timestamp)
            .toString()}}`,
        )
        .toString();
    }
    case 'rm': {
      const m = act.rm;
      return o
        .raw(
          'Action',
          `{"rm":${new Obj().str('path', m.path).bool('allowNotFound', m.allowNotFound).bool('allowWildcard', m.allowWildcard).toString()}}`,
        )
        .toString();
    }
    case 'symlink': {
      const m = act.symlink;
      return o
        .raw(
          'Action',
          `{"symlink":${new Obj()
            .str('oldpath', m.oldpath)
            .str('newpath', m.newpath)
            .obj('owner', m.owner, jChown)
            .num('timestamp', m.timestamp)
            .toString()}}`,
        )
        .toString();
    }
    case 'none':
      return o.raw('Action', 'null').toString();
  }
};

const jIndex = (i: { readonly input?: number }): string => new Obj().num0('input', i.input).toString();

const jSource = (s: Source): string =>
  new Obj()
    .map('locations', s.locations, (l) =>
      new Obj()
        .list('locations', l.locations, (loc) =>
          new Obj()
            .num('sourceIndex', loc.sourceIndex)
            .list('ranges', loc.ranges, (r) => {
              const pos = (p: { line?: number; character?: number }): string =>
                new Obj().num('Line', p.line).num('Character', p.character).toString();
              return new Obj().raw('start', pos(r.start)).raw('end', pos(r.end)).toString();
            })
            .toString(),
        )
        .toString(),
    )
    .list('infos', s.infos, (i) =>
      new Obj()
        .str('filename', i.filename)
        .bytes('data', i.data)
        .obj('definition', i.definition, jDefinition)
        .str('language', i.language)
        .toString(),
    )
    .toString();

function jDefinition(d: Definition): string {
  return new Obj()
    .list('def', d.def, (b) => goJsonString(Buffer.from(b).toString('base64')))
    .map('metadata', d.metadata, opMetadataJson, false)
    .obj('Source', d.source, jSource)
    .toString();
}

/** The Go encoding/json text of an `Op`. */
export function opJson(op: Op): string {
  const o = new Obj().list('inputs', op.inputs, (i) => `{"digest":${goJsonString(i.digest)},"index":${i.index}}`);
  switch (op.kind) {
    case 'exec':
      o.raw('Op', `{"exec":${jExec(op.exec)}}`);
      break;
    case 'source':
      o.raw(
        'Op',
        `{"source":${new Obj()
          .str('identifier', op.source.identifier)
          .map('attrs', op.source.attrs, goJsonString)
          .toString()}}`,
      );
      break;
    case 'file':
      o.raw('Op', `{"file":${new Obj().list('actions', op.file.actions, jAction).toString()}}`);
      break;
    case 'build':
      o.raw(
        'Op',
        `{"build":${new Obj()
          .num0('builder', op.build.builder)
          .map('inputs', op.build.inputs, jIndex)
          .obj('def', op.build.def, jDefinition)
          .map('attrs', op.build.attrs, goJsonString)
          .toString()}}`,
      );
      break;
    case 'merge':
      o.raw('Op', `{"merge":${new Obj().list('inputs', op.merge.inputs, jIndex).toString()}}`);
      break;
    case 'diff':
      o.raw('Op', `{"diff":${new Obj().obj('lower', op.diff.lower, jIndex).obj('upper', op.diff.upper, jIndex).toString()}}`);
      break;
    case 'none':
      o.raw('Op', 'null');
      break;
  }
  return o
    .obj('platform', op.platform, jPlatform)
    .obj('constraints', op.constraints, (c) => new Obj().strs('filter', c.filter).toString())
    .toString();
}

/** The Go encoding/json text of an `OpMetadata` (a missing entry prints as `{"caps":null}`). */
export function opMetadataJson(m: OpMetadata): string {
  return new Obj()
    .bool('ignore_cache', m.ignoreCache)
    .map('description', m.description, goJsonString)
    .obj('export_cache', m.exportCache, (e) => new Obj().bool('Value', e.value).toString())
    .map('caps', m.caps, (b) => (b ? 'true' : 'false'), false)
    .obj('progress_group', m.progressGroup, (p) => new Obj().str('id', p.id).str('name', p.name).bool('weak', p.weak).toString())
    .toString();
}

/**
 * `buildctl debug dump-llb` output: one JSON line per `def` entry, in order, each
 * `{"Op":…,"Digest":…,"OpMetadata":…}`, newline-terminated. Throws {@link LlbError}
 * if an op does not decode.
 */
export function definitionToJsonLines(def: Definition): string {
  let out = '';
  for (const chunk of definitionJsonLineChunks(def)) out += chunk;
  return out;
}

/**
 * {@link definitionToJsonLines} in pieces of whole lines, each about `chunkSize` characters
 * (the last may be shorter), to write as they are made: a large definition's text then never
 * lives in memory at once. Throws {@link LlbError} if an op does not decode.
 */
export function* definitionJsonLineChunks(def: Definition, chunkSize = 1 << 16): Generator<string, void, undefined> {
  let out = '';
  for (const bytes of def.def) {
    // ops this process marshaled are printed from the Op they encode (no decode, no re-hash)
    const known = encodedOp(bytes);
    const d: Digest = known?.digest ?? digestOf(bytes);
    const op = known?.op ?? decodeOp(bytes);
    out += `{"Op":${opJson(op)},"Digest":${goJsonString(d)},"OpMetadata":${opMetadataJson(def.metadata.get(d) ?? {})}}\n`;
    if (out.length >= chunkSize) {
      yield out;
      out = '';
    }
  }
  if (out !== '') yield out;
}
