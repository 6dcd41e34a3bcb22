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
  CacheOpt,
  CDIDevice,
  ChownOpt,
  Definition,
  ExportCache,
  HostIP,
  Input,
  ProgressGroup,
  ProxyEnv,
  SecretEnv,
  TmpfsOpt,
  Ulimit,
  WorkerConstraints,
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

/** Any character outside ASCII. */
const NON_ASCII = /[^\u0000-\u007f]/;
const HEX = '0123456789abcdef';

/** `"key":` of each field name, encoded once (field names are ASCII constants). */
const KEYS = new Map<string, Uint8Array>();

/** Writes a JSON string, or number, value (a map or list entry); module-level, not a closure per call. */
const wQuoted = (w: JsonWriter, s: string): void => void w.quoted(s);
const wNumber = (w: JsonWriter, n: number): void => void w.raw(String(n));

/**
 * The Go JSON text, written field by field into one reused byte buffer, following Go's
 * omitempty rules. A 2,000-instruction dump is 1.25 MB of text in ~44,000 fields: building it
 * from strings (a key string, a value string, their concatenation, then the enclosing object's)
 * allocated ~9 bytes per byte printed, and that garbage was a large part of `kiln llb`'s GC time.
 * Here a field allocates nothing but number strings; text becomes a string once per chunk.
 * Keys are this module's constant field names (plain ASCII, nothing to escape).
 */
class JsonWriter {
  private buf: Buffer;
  private pos = 0;
  /** UTF-16 code units written: the length of the string {@link take} returns. */
  length = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private byte(c: number): this {
    this.ensure(1);
    this.buf[this.pos++] = c;
    this.length++;
    return this;
  }

  /** Writes JSON text as is. */
  raw(s: string): this {
    const n = s.length;
    // a UTF-16 code unit is at most 3 bytes of UTF-8
    this.ensure(n * 3);
    if (n <= 24) {
      // short strings (most values): a JS loop beats the native call; non-ASCII goes to it
      const buf = this.buf;
      const start = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === n) {
        this.pos = start + n;
        this.length += n;
        return this;
      }
    }
    this.pos += this.buf.write(s, this.pos);
    this.length += n;
    return this;
  }

  /** Writes `s` as a Go JSON string. */
  quoted(s: string): this {
    if (!NEEDS_ESCAPE.test(s)) return this.byte(0x22).raw(s).byte(0x22);
    if (NON_ASCII.test(s)) return this.raw(goJsonString(s));
    // ASCII with something to escape (a shell command's quotes, `>` and `&&`): the bytes go
    // straight into the buffer rather than through goJsonString's pieces of string
    this.ensure(s.length * 6 + 2);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c && c !== 0x3c && c !== 0x3e && c !== 0x26) {
        buf[pos++] = c;
        continue;
      }
      buf[pos++] = 0x5c;
      if (c === 0x22 || c === 0x5c) buf[pos++] = c;
      else if (c === 0x0a) buf[pos++] = 0x6e;
      else if (c === 0x0d) buf[pos++] = 0x72;
      else if (c === 0x09) buf[pos++] = 0x74;
      else {
        // \u00XX with lower-case hex, as Go
        buf[pos++] = 0x75;
        buf[pos++] = 0x30;
        buf[pos++] = 0x30;
        buf[pos++] = HEX.charCodeAt(c >> 4);
        buf[pos++] = HEX.charCodeAt(c & 15);
      }
    }
    buf[pos++] = 0x22;
    this.length += pos - this.pos;
    this.pos = pos;
    return this;
  }

  /** Starts an object. */
  open(): this {
    return this.byte(0x7b);
  }

  /** Ends an object. */
  close(): this {
    return this.byte(0x7d);
  }

  /** Starts a field of the current object: a comma unless it is the first, then `"key":`. */
  key(key: string): this {
    // a value never ends in `{`, so a `{` just before means the object has no field yet
    if (this.buf[this.pos - 1] !== 0x7b) this.byte(0x2c);
    let bytes = KEYS.get(key);
    if (bytes === undefined) KEYS.set(key, (bytes = Buffer.from(`"${key}":`)));
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    this.length += bytes.length;
    return this;
  }

  str(key: string, v: string | undefined): this {
    return v ? this.key(key).quoted(v) : this;
  }
  num(key: string, v: number | bigint | undefined): this {
    return v ? this.key(key).raw(String(v)) : this;
  }
  /** A non-nullable (no omitempty) number. */
  num0(key: string, v: number | undefined): this {
    return this.key(key).raw(String(v ?? 0));
  }
  bool(key: string, v: boolean | undefined): this {
    return v ? this.key(key).raw('true') : this;
  }
  strs(key: string, v: readonly string[] | undefined): this {
    return this.list(key, v, wQuoted);
  }
  nums(key: string, v: readonly number[] | undefined): this {
    return this.list(key, v, wNumber);
  }
  bytes(key: string, v: Uint8Array | undefined): this {
    return v && v.length > 0 ? this.key(key).quoted(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')) : this;
  }
  obj<T>(key: string, v: T | undefined, f: (w: this, v: T) => void): this {
    if (v !== undefined) f(this.key(key), v);
    return this;
  }
  list<T>(key: string, v: readonly T[] | undefined, f: (w: this, v: T) => void): this {
    if (!v || v.length === 0) return this;
    this.key(key).byte(0x5b);
    for (let i = 0; i < v.length; i++) {
      if (i > 0) this.byte(0x2c);
      f(this, v[i] as T);
    }
    return this.byte(0x5d);
  }
  map<T>(key: string, v: ReadonlyMap<string, T> | undefined, f: (w: this, v: T) => void, omitEmpty = true): this {
    if (!v || v.size === 0) return omitEmpty ? this : this.key(key).raw('null');
    this.key(key).byte(0x7b);
    const keys = sortedKeys(v);
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) this.byte(0x2c);
      const k = keys[i] as string;
      f(this.quoted(k).byte(0x3a), v.get(k) as T);
    }
    return this.byte(0x7d);
  }

  /** The text written since the last take, as a string; the buffer is then reused. */
  take(): string {
    const s = this.buf.toString('utf8', 0, this.pos);
    this.pos = 0;
    this.length = 0;
    return s;
  }
}

// The writers of nested values are module-level functions, not arrows at each call: an arrow
// expression makes a new function object every time it runs (~10 per op line before).
const jProxyEnv = (w: JsonWriter, p: ProxyEnv): void =>
  void w
    .open()
    .str('http_proxy', p.httpProxy)
    .str('https_proxy', p.httpsProxy)
    .str('ftp_proxy', p.ftpProxy)
    .str('no_proxy', p.noProxy)
    .str('all_proxy', p.allProxy)
    .close();
const jExtraHost = (w: JsonWriter, h: HostIP): void => void w.open().str('Host', h.host).str('IP', h.ip).close();
const jUlimit = (w: JsonWriter, u: Ulimit): void => void w.open().str('Name', u.name).num('Soft', u.soft).num('Hard', u.hard).close();
const jTmpfsOpt = (w: JsonWriter, t: TmpfsOpt): void => void w.open().num('size', t.size).close();
const jCacheOpt = (w: JsonWriter, c: CacheOpt): void => void w.open().str('ID', c.id).num('sharing', c.sharing).close();
const jSecretEnv = (w: JsonWriter, s: SecretEnv): void => void w.open().str('ID', s.id).str('name', s.name).bool('optional', s.optional).close();
const jCdiDevice = (w: JsonWriter, d: CDIDevice): void => void w.open().str('name', d.name).bool('optional', d.optional).close();
const jDefBytes = (w: JsonWriter, b: Uint8Array): void => void w.quoted(Buffer.from(b).toString('base64'));
const jInput = (w: JsonWriter, i: Input): void => void w.open().key('digest').quoted(i.digest).num0('index', i.index).close();
const jWorkerConstraints = (w: JsonWriter, c: WorkerConstraints): void => void w.open().strs('filter', c.filter).close();
const jExportCache = (w: JsonWriter, e: ExportCache): void => void w.open().bool('Value', e.value).close();
const jBool = (w: JsonWriter, b: boolean): void => void w.raw(b ? 'true' : 'false');
const jProgressGroup = (w: JsonWriter, p: ProgressGroup): void => void w.open().str('id', p.id).str('name', p.name).bool('weak', p.weak).close();

const jPlatform = (w: JsonWriter, p: PbPlatform): void =>
  void w
    .open()
    .str('Architecture', p.architecture)
    .str('OS', p.os)
    .str('Variant', p.variant)
    .str('OSVersion', p.osVersion)
    .strs('OSFeatures', p.osFeatures)
    .close();

const jMeta = (w: JsonWriter, m: Meta): void =>
  void w
    .open()
    .strs('args', m.args)
    .strs('env', m.env)
    .str('cwd', m.cwd)
    .str('user', m.user)
    .obj('proxy_env', m.proxyEnv, jProxyEnv)
    .list('extraHosts', m.extraHosts, jExtraHost)
    .str('hostname', m.hostname)
    .list('ulimit', m.ulimit, jUlimit)
    .str('cgroupParent', m.cgroupParent)
    .bool('removeMountStubsRecursive', m.removeMountStubsRecursive)
    .nums('validExitCodes', m.validExitCodes)
    .close();

const jSecretOpt = (w: JsonWriter, s: { id?: string; uid?: number; gid?: number; mode?: number; optional?: boolean }): void =>
  void w.open().str('ID', s.id).num('uid', s.uid).num('gid', s.gid).num('mode', s.mode).bool('optional', s.optional).close();

const jMount = (w: JsonWriter, m: Mount): void =>
  void w
    .open()
    .num0('input', m.input)
    .str('selector', m.selector)
    .str('dest', m.dest)
    .num0('output', m.output)
    .bool('readonly', m.readonly)
    .num('mountType', m.mountType)
    .obj('TmpfsOpt', m.tmpfsOpt, jTmpfsOpt)
    .obj('cacheOpt', m.cacheOpt, jCacheOpt)
    .obj('secretOpt', m.secretOpt, jSecretOpt)
    .obj('SSHOpt', m.sshOpt, jSecretOpt)
    .str('resultID', m.resultId)
    .num('contentCache', m.contentCache)
    .close();

const jExec = (w: JsonWriter, e: ExecOp): void =>
  void w
    .open()
    .obj('meta', e.meta, jMeta)
    .list('mounts', e.mounts, jMount)
    .num('network', e.network)
    .num('security', e.security)
    .list('secretenv', e.secretenv, jSecretEnv)
    .list('cdiDevices', e.cdiDevices, jCdiDevice)
    .close();

const jUser = (w: JsonWriter, u: UserOpt): void => {
  w.open().key('User');
  switch (u.kind) {
    case 'byName':
      w.open().key('byName').open().str('name', u.byName.name).num0('input', u.byName.input).close().close();
      break;
    case 'byId':
      w.open().num('byID', u.byId).close();
      break;
    case 'none':
      w.raw('null');
  }
  w.close();
};
const jChown = (w: JsonWriter, c: ChownOpt): void => void w.open().obj('user', c.user, jUser).obj('group', c.group, jUser).close();

const jAction = (w: JsonWriter, a: FileOpAction): void => {
  w.open().num0('input', a.input).num0('secondaryInput', a.secondaryInput).num0('output', a.output).key('Action');
  const act = a.action;
  switch (act.kind) {
    case 'copy': {
      const c = act.copy;
      w.open()
        .key('copy')
        .open()
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
        .close()
        .close();
      break;
    }
    case 'mkfile': {
      const m = act.mkfile;
      w.open()
        .key('mkfile')
        .open()
        .str('path', m.path)
        .num('mode', m.mode)
        .bytes('data', m.data)
        .obj('owner', m.owner, jChown)
        .num('timestamp', m.timestamp)
        .close()
        .close();
      break;
    }
    case 'mkdir': {
      const m = act.mkdir;
      w.open()
        .key('mkdir')
        .open()
        .str('path', m.path)
        .num('mode', m.mode)
        .bool('makeParents', m.makeParents)
        .obj('owner', m.owner, jChown)
        .num('timestamp', m.timestamp)
        .close()
        .close();
      break;
    }
    case 'rm': {
      const m = act.rm;
      w.open().key('rm').open().str('path', m.path).bool('allowNotFound', m.allowNotFound).bool('allowWildcard', m.allowWildcard).close().close();
      break;
    }
    case 'symlink': {
      const m = act.symlink;
      w.open()
        .key('symlink')
        .open()
        .str('oldpath', m.oldpath)
        .str('newpath', m.newpath)
        .obj('owner', m.owner, jChown)
        .num('timestamp', m.timestamp)
        .close()
        .close();
      break;
    }
    case 'none':
      w.raw('null');
  }
  w.close();
};

const jIndex = (w: JsonWriter, i: { readonly input?: number }): void => void w.open().num0('input', i.input).close();

const jPos = (w: JsonWriter, p: { line?: number; character?: number }): void =>
  void w.open().num('Line', p.line).num('Character', p.character).close();

const jSource = (w: JsonWriter, s: Source): void =>
  void w
    .open()
    .map('locations', s.locations, (w, l) =>
      w
        .open()
        .list('locations', l.locations, (w, loc) =>
          w
            .open()
            .num('sourceIndex', loc.sourceIndex)
            .list('ranges', loc.ranges, (w, r) => w.open().obj('start', r.start, jPos).obj('end', r.end, jPos).close())
            .close(),
        )
        .close(),
    )
    .list('infos', s.infos, (w, i) =>
      w
        .open()
        .str('filename', i.filename)
        .bytes('data', i.data)
        .obj('definition', i.definition, jDefinition)
        .str('language', i.language)
        .close(),
    )
    .close();

function jDefinition(w: JsonWriter, d: Definition): void {
  w.open()
    .list('def', d.def, jDefBytes)
    .map('metadata', d.metadata, jOpMetadata, false)
    .obj('Source', d.source, jSource)
    .close();
}

function jOp(w: JsonWriter, op: Op): void {
  w.open().list('inputs', op.inputs, jInput);
  w.key('Op');
  switch (op.kind) {
    case 'exec':
      jExec(w.open().key('exec'), op.exec);
      w.close();
      break;
    case 'source':
      w.open().key('source').open().str('identifier', op.source.identifier).map('attrs', op.source.attrs, wQuoted).close().close();
      break;
    case 'file':
      w.open().key('file').open().list('actions', op.file.actions, jAction).close().close();
      break;
    case 'build':
      w.open()
        .key('build')
        .open()
        .num0('builder', op.build.builder)
        .map('inputs', op.build.inputs, jIndex)
        .obj('def', op.build.def, jDefinition)
        .map('attrs', op.build.attrs, wQuoted)
        .close()
        .close();
      break;
    case 'merge':
      w.open().key('merge').open().list('inputs', op.merge.inputs, jIndex).close().close();
      break;
    case 'diff':
      w.open().key('diff').open().obj('lower', op.diff.lower, jIndex).obj('upper', op.diff.upper, jIndex).close().close();
      break;
    case 'none':
      w.raw('null');
      break;
  }
  w.obj('platform', op.platform, jPlatform)
    .obj('constraints', op.constraints, jWorkerConstraints)
    .close();
}

function jOpMetadata(w: JsonWriter, m: OpMetadata): void {
  w.open()
    .bool('ignore_cache', m.ignoreCache)
    .map('description', m.description, wQuoted)
    .obj('export_cache', m.exportCache, jExportCache)
    .map('caps', m.caps, jBool, false)
    .obj('progress_group', m.progressGroup, jProgressGroup)
    .close();
}

/** The Go encoding/json text of an `Op`. */
export function opJson(op: Op): string {
  const w = new JsonWriter(1024);
  jOp(w, op);
  return w.take();
}

/** The Go encoding/json text of an `OpMetadata` (a missing entry prints as `{"caps":null}`). */
export function opMetadataJson(m: OpMetadata): string {
  const w = new JsonWriter(256);
  jOpMetadata(w, m);
  return w.take();
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
  const w = new JsonWriter(chunkSize + (chunkSize >> 2));
  for (const bytes of def.def) {
    // ops this process marshaled are printed from the Op they encode (no decode, no re-hash)
    const known = encodedOp(bytes);
    const d: Digest = known?.digest ?? digestOf(bytes);
    const op = known?.op ?? decodeOp(bytes);
    w.open().key('Op');
    jOp(w, op);
    w.key('Digest').quoted(d).key('OpMetadata');
    jOpMetadata(w, def.metadata.get(d) ?? {});
    w.close().raw('\n');
    if (w.length >= chunkSize) yield w.take();
  }
  if (w.length > 0) yield w.take();
}
