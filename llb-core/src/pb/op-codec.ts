/**
 * Byte-exact codec for `pb.Op` and its sub-messages, matching gogo's stable marshaler
 * (BuildKit's `deterministicMarshal`): fields in field-number order, map entries sorted
 * by key with key and value always written, proto3 zero scalars omitted except inside a
 * oneof, packed repeated scalars, and every present sub-message written even when empty.
 */
import { LlbError } from '../errors.js';
import { unsafeDigest } from '../digest.js';
import type {
  BuildInput,
  BuildOp,
  CDIDevice,
  ChownOpt,
  DiffOp,
  ExecOp,
  FileOpAction,
  FileActionBody,
  FileActionCopy,
  FileActionMkDir,
  FileActionMkFile,
  FileActionRm,
  FileActionSymlink,
  FileOp,
  HostIP,
  Input,
  MergeOp,
  Meta,
  Mount,
  Op,
  PbPlatform,
  ProxyEnv,
  SecretEnv,
  SourceOp,
  Ulimit,
  UserOpt,
  WorkerConstraints,
  CacheOpt,
  SecretOpt,
  SSHOpt,
  TmpfsOpt,
  Definition,
} from '../op.js';
import { PbWriter, sortedKeys } from './writer.js';
import {
  type Reader,
  readerFor,
  readBool,
  readBytes,
  readInt32,
  readInt64Big,
  readInt64Number,
  readLength,
  readString,
  readTag,
  readUint32,
  skipField,
  wrongWireType,
} from './reader.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Hooks for the mutually recursive Definition codec (BuildOp.def). */
export interface DefinitionCodecHooks {
  encode(w: PbWriter, d: Definition): void;
  decode(r: Reader, end: number): Definition;
}
let defHooks: DefinitionCodecHooks | undefined;
export function setDefinitionHooks(h: DefinitionCodecHooks): void {
  defHooks = h;
}
function hooks(): DefinitionCodecHooks {
  if (!defHooks) throw new LlbError('LLB_DECODE', 'definition codec not initialised');
  return defHooks;
}

// ---------------------------------------------------------------------------
// helpers

function endCheck(r: Reader, end: number, what: string): void {
  if (r.pos !== end) throw new LlbError('LLB_DECODE', `${what}: field overruns the message end`);
}

/** Skips an unknown field; a known field number with the wrong wire type is an error. */
function other(r: Reader, tag: number, known: number, what: string): void {
  if ((tag >>> 3) <= known && (tag >>> 3) > 0 && knownField(what, tag >>> 3)) wrongWireType(what, tag);
  skipField(r, tag & 7);
}

// Field numbers per message, for wire-type validation of unknown-looking tags.
const FIELDS: Record<string, readonly number[]> = {
  Op: [1, 2, 3, 4, 5, 6, 7, 10, 11],
  Platform: [1, 2, 3, 4, 5],
  Input: [1, 2],
  ExecOp: [1, 2, 3, 4, 5, 6],
  Meta: [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12],
  HostIP: [1, 2],
  Ulimit: [1, 2, 3],
  SecretEnv: [1, 2, 3],
  CDIDevice: [1, 2],
  Mount: [1, 2, 3, 4, 5, 6, 19, 20, 21, 22, 23, 24],
  TmpfsOpt: [1],
  CacheOpt: [1, 2],
  SecretOpt: [1, 2, 3, 4, 5],
  SSHOpt: [1, 2, 3, 4, 5],
  SourceOp: [1, 2],
  BuildOp: [1, 2, 3, 4],
  BuildInput: [1],
  WorkerConstraints: [1],
  ProxyEnv: [1, 2, 3, 4, 5],
  FileOp: [2],
  FileAction: [1, 2, 3, 4, 5, 6, 7, 8],
  FileActionCopy: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
  FileActionMkFile: [1, 2, 3, 4, 5],
  FileActionSymlink: [1, 2, 3, 4],
  FileActionMkDir: [1, 2, 3, 4, 5],
  FileActionRm: [1, 2, 3],
  ChownOpt: [1, 2],
  UserOpt: [1, 2],
  NamedUserOpt: [1, 2],
  MergeOp: [1],
  IndexInput: [1],
  DiffOp: [1, 2],
  MapEntry: [1, 2],
};
function knownField(what: string, n: number): boolean {
  return FIELDS[what]?.includes(n) ?? false;
}

function readStringMapEntry(r: Reader, into: Map<string, string>): void {
  const end = readLength(r);
  let k = '';
  let v = '';
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) k = readString(r);
    else if (tag === 18) v = readString(r);
    else other(r, tag, 2, 'MapEntry');
  }
  endCheck(r, end, 'map entry');
  into.set(k, v);
}

function writeStringMap(w: PbWriter, field: number, m: ReadonlyMap<string, string> | undefined): void {
  if (!m || m.size === 0) return;
  for (const k of sortedKeys(m)) {
    const mark = w.begin(field);
    w.string(1, k);
    w.string(2, m.get(k) as string);
    w.end(mark);
  }
}

/** Decodes packed or unpacked repeated int32. */
function readRepeatedInt32(r: Reader, tag: number, into: number[]): void {
  if ((tag & 7) === 2) {
    const end = readLength(r);
    while (r.pos < end) into.push(readInt32(r));
    endCheck(r, end, 'packed int32');
  } else into.push(readInt32(r));
}

// ---------------------------------------------------------------------------
// Platform, Input, WorkerConstraints

function decPlatform(r: Reader, end: number): PbPlatform {
  const p: Mutable<PbPlatform> = {};
  let feats: string[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: p.architecture = readString(r); break;
      case 18: p.os = readString(r); break;
      case 26: p.variant = readString(r); break;
      case 34: p.osVersion = readString(r); break;
      case 42: (feats ??= []).push(readString(r)); break;
      default: other(r, tag, 5, 'Platform');
    }
  }
  endCheck(r, end, 'Platform');
  if (feats) p.osFeatures = feats;
  return p;
}
function encPlatform(w: PbWriter, p: PbPlatform): void {
  if (p.architecture) w.string(1, p.architecture);
  if (p.os) w.string(2, p.os);
  if (p.variant) w.string(3, p.variant);
  if (p.osVersion) w.string(4, p.osVersion);
  if (p.osFeatures) for (const f of p.osFeatures) w.string(5, f);
}

function decInput(r: Reader, end: number): Input {
  let digest = '';
  let index = 0;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) digest = readString(r);
    else if (tag === 16) index = readInt64Number(r);
    else other(r, tag, 2, 'Input');
  }
  endCheck(r, end, 'Input');
  return { digest: unsafeDigest(digest), index };
}

function decConstraints(r: Reader, end: number): WorkerConstraints {
  let filter: string[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) (filter ??= []).push(readString(r));
    else other(r, tag, 1, 'WorkerConstraints');
  }
  endCheck(r, end, 'WorkerConstraints');
  return filter ? { filter } : {};
}

// ---------------------------------------------------------------------------
// ExecOp

function decProxy(r: Reader, end: number): ProxyEnv {
  const p: Mutable<ProxyEnv> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: p.httpProxy = readString(r); break;
      case 18: p.httpsProxy = readString(r); break;
      case 26: p.ftpProxy = readString(r); break;
      case 34: p.noProxy = readString(r); break;
      case 42: p.allProxy = readString(r); break;
      default: other(r, tag, 5, 'ProxyEnv');
    }
  }
  endCheck(r, end, 'ProxyEnv');
  return p;
}
function encProxy(w: PbWriter, p: ProxyEnv): void {
  if (p.httpProxy) w.string(1, p.httpProxy);
  if (p.httpsProxy) w.string(2, p.httpsProxy);
  if (p.ftpProxy) w.string(3, p.ftpProxy);
  if (p.noProxy) w.string(4, p.noProxy);
  if (p.allProxy) w.string(5, p.allProxy);
}

function decHostIP(r: Reader, end: number): HostIP {
  const h: Mutable<HostIP> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) h.host = readString(r);
    else if (tag === 18) h.ip = readString(r);
    else other(r, tag, 2, 'HostIP');
  }
  endCheck(r, end, 'HostIP');
  return h;
}

function decUlimit(r: Reader, end: number): Ulimit {
  const u: Mutable<Ulimit> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) u.name = readString(r);
    else if (tag === 16) u.soft = readInt64Big(r);
    else if (tag === 24) u.hard = readInt64Big(r);
    else other(r, tag, 3, 'Ulimit');
  }
  endCheck(r, end, 'Ulimit');
  return u;
}

function decMeta(r: Reader, end: number): Meta {
  const m: Mutable<Meta> = {};
  let args: string[] | undefined;
  let env: string[] | undefined;
  let hosts: HostIP[] | undefined;
  let ulimit: Ulimit[] | undefined;
  let codes: number[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: (args ??= []).push(readString(r)); break;
      case 18: (env ??= []).push(readString(r)); break;
      case 26: m.cwd = readString(r); break;
      case 34: m.user = readString(r); break;
      case 42: m.proxyEnv = decProxy(r, readLength(r)); break;
      case 50: (hosts ??= []).push(decHostIP(r, readLength(r))); break;
      case 58: m.hostname = readString(r); break;
      case 74: (ulimit ??= []).push(decUlimit(r, readLength(r))); break;
      case 82: m.cgroupParent = readString(r); break;
      case 88: m.removeMountStubsRecursive = readBool(r); break;
      case 96:
      case 98: readRepeatedInt32(r, tag, (codes ??= [])); break;
      default: other(r, tag, 12, 'Meta');
    }
  }
  endCheck(r, end, 'Meta');
  if (args) m.args = args;
  if (env) m.env = env;
  if (hosts) m.extraHosts = hosts;
  if (ulimit) m.ulimit = ulimit;
  if (codes) m.validExitCodes = codes;
  return m;
}

function encMeta(w: PbWriter, m: Meta): void {
  if (m.args) for (const a of m.args) w.string(1, a);
  if (m.env) for (const e of m.env) w.string(2, e);
  if (m.cwd) w.string(3, m.cwd);
  if (m.user) w.string(4, m.user);
  if (m.proxyEnv) {
    const k = w.begin(5);
    encProxy(w, m.proxyEnv);
    w.end(k);
  }
  if (m.extraHosts) {
    for (const h of m.extraHosts) {
      const k = w.begin(6);
      if (h.host) w.string(1, h.host);
      if (h.ip) w.string(2, h.ip);
      w.end(k);
    }
  }
  if (m.hostname) w.string(7, m.hostname);
  if (m.ulimit) {
    for (const u of m.ulimit) {
      const k = w.begin(9);
      if (u.name) w.string(1, u.name);
      if (u.soft) w.bigint64(2, u.soft);
      if (u.hard) w.bigint64(3, u.hard);
      w.end(k);
    }
  }
  if (m.cgroupParent) w.string(10, m.cgroupParent);
  if (m.removeMountStubsRecursive) w.bool(11, true);
  if (m.validExitCodes && m.validExitCodes.length > 0) {
    const k = w.begin(12);
    for (const c of m.validExitCodes) {
      if (c >= 0) w.uvarint(c);
      else w.varint64(c >>> 0, 0xffffffff);
    }
    w.end(k);
  }
}

function decTmpfs(r: Reader, end: number): TmpfsOpt {
  const t: Mutable<TmpfsOpt> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 8) t.size = readInt64Big(r);
    else other(r, tag, 1, 'TmpfsOpt');
  }
  endCheck(r, end, 'TmpfsOpt');
  return t;
}
function decCacheOpt(r: Reader, end: number): CacheOpt {
  const c: Mutable<CacheOpt> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) c.id = readString(r);
    else if (tag === 16) c.sharing = readInt32(r);
    else other(r, tag, 2, 'CacheOpt');
  }
  endCheck(r, end, 'CacheOpt');
  return c;
}
function decSecretOpt(r: Reader, end: number, what: string): SecretOpt {
  const s: Mutable<SecretOpt> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: s.id = readString(r); break;
      case 16: s.uid = readUint32(r); break;
      case 24: s.gid = readUint32(r); break;
      case 32: s.mode = readUint32(r); break;
      case 40: s.optional = readBool(r); break;
      default: other(r, tag, 5, what);
    }
  }
  endCheck(r, end, what);
  return s;
}
function encSecretOpt(w: PbWriter, s: SecretOpt | SSHOpt): void {
  if (s.id) w.string(1, s.id);
  if (s.uid) w.uint32(2, s.uid);
  if (s.gid) w.uint32(3, s.gid);
  if (s.mode) w.uint32(4, s.mode);
  if (s.optional) w.bool(5, true);
}

function decMount(r: Reader, end: number): Mount {
  const m: Mutable<Mount> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 8: m.input = readInt64Number(r); break;
      case 18: m.selector = readString(r); break;
      case 26: m.dest = readString(r); break;
      case 32: m.output = readInt64Number(r); break;
      case 40: m.readonly = readBool(r); break;
      case 48: m.mountType = readInt32(r); break;
      case 154: m.tmpfsOpt = decTmpfs(r, readLength(r)); break;
      case 162: m.cacheOpt = decCacheOpt(r, readLength(r)); break;
      case 170: m.secretOpt = decSecretOpt(r, readLength(r), 'SecretOpt'); break;
      case 178: m.sshOpt = decSecretOpt(r, readLength(r), 'SSHOpt'); break;
      case 186: m.resultId = readString(r); break;
      case 192: m.contentCache = readInt32(r); break;
      default: other(r, tag, 24, 'Mount');
    }
  }
  endCheck(r, end, 'Mount');
  return m;
}

function encMount(w: PbWriter, m: Mount): void {
  if (m.input) w.int(1, m.input);
  if (m.selector) w.string(2, m.selector);
  if (m.dest) w.string(3, m.dest);
  if (m.output) w.int(4, m.output);
  if (m.readonly) w.bool(5, true);
  if (m.mountType) w.int(6, m.mountType);
  if (m.tmpfsOpt) {
    const k = w.begin(19);
    if (m.tmpfsOpt.size) w.bigint64(1, m.tmpfsOpt.size);
    w.end(k);
  }
  if (m.cacheOpt) {
    const k = w.begin(20);
    if (m.cacheOpt.id) w.string(1, m.cacheOpt.id);
    if (m.cacheOpt.sharing) w.int(2, m.cacheOpt.sharing);
    w.end(k);
  }
  if (m.secretOpt) {
    const k = w.begin(21);
    encSecretOpt(w, m.secretOpt);
    w.end(k);
  }
  if (m.sshOpt) {
    const k = w.begin(22);
    encSecretOpt(w, m.sshOpt);
    w.end(k);
  }
  if (m.resultId) w.string(23, m.resultId);
  if (m.contentCache) w.int(24, m.contentCache);
}

function decSecretEnv(r: Reader, end: number): SecretEnv {
  const s: Mutable<SecretEnv> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) s.id = readString(r);
    else if (tag === 18) s.name = readString(r);
    else if (tag === 24) s.optional = readBool(r);
    else other(r, tag, 3, 'SecretEnv');
  }
  endCheck(r, end, 'SecretEnv');
  return s;
}

function decCDI(r: Reader, end: number): CDIDevice {
  const s: Mutable<CDIDevice> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) s.name = readString(r);
    else if (tag === 16) s.optional = readBool(r);
    else other(r, tag, 2, 'CDIDevice');
  }
  endCheck(r, end, 'CDIDevice');
  return s;
}

function decExec(r: Reader, end: number): ExecOp {
  const e: Mutable<ExecOp> = {};
  let mounts: Mount[] | undefined;
  let secretenv: SecretEnv[] | undefined;
  let cdi: CDIDevice[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: e.meta = decMeta(r, readLength(r)); break;
      case 18: (mounts ??= []).push(decMount(r, readLength(r))); break;
      case 24: e.network = readInt32(r); break;
      case 32: e.security = readInt32(r); break;
      case 42: (secretenv ??= []).push(decSecretEnv(r, readLength(r))); break;
      case 50: (cdi ??= []).push(decCDI(r, readLength(r))); break;
      default: other(r, tag, 6, 'ExecOp');
    }
  }
  endCheck(r, end, 'ExecOp');
  if (mounts) e.mounts = mounts;
  if (secretenv) e.secretenv = secretenv;
  if (cdi) e.cdiDevices = cdi;
  return e;
}

function encExec(w: PbWriter, e: ExecOp): void {
  if (e.meta) {
    const k = w.begin(1);
    encMeta(w, e.meta);
    w.end(k);
  }
  if (e.mounts) {
    for (const m of e.mounts) {
      const k = w.begin(2);
      encMount(w, m);
      w.end(k);
    }
  }
  if (e.network) w.int(3, e.network);
  if (e.security) w.int(4, e.security);
  if (e.secretenv) {
    for (const s of e.secretenv) {
      const k = w.begin(5);
      if (s.id) w.string(1, s.id);
      if (s.name) w.string(2, s.name);
      if (s.optional) w.bool(3, true);
      w.end(k);
    }
  }
  if (e.cdiDevices) {
    for (const d of e.cdiDevices) {
      const k = w.begin(6);
      if (d.name) w.string(1, d.name);
      if (d.optional) w.bool(2, true);
      w.end(k);
    }
  }
}

// ---------------------------------------------------------------------------
// SourceOp, BuildOp

function decSource(r: Reader, end: number): SourceOp {
  const s: Mutable<SourceOp> = {};
  let attrs: Map<string, string> | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) s.identifier = readString(r);
    else if (tag === 18) readStringMapEntry(r, (attrs ??= new Map()));
    else other(r, tag, 2, 'SourceOp');
  }
  endCheck(r, end, 'SourceOp');
  if (attrs) s.attrs = attrs;
  return s;
}
function encSource(w: PbWriter, s: SourceOp): void {
  if (s.identifier) w.string(1, s.identifier);
  writeStringMap(w, 2, s.attrs);
}

function decIndexInput(r: Reader, end: number): { input?: number } {
  const o: { input?: number } = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 8) o.input = readInt64Number(r);
    else other(r, tag, 1, 'IndexInput');
  }
  endCheck(r, end, 'input');
  return o;
}
function encIndexInput(w: PbWriter, field: number, o: { readonly input?: number }): void {
  const k = w.begin(field);
  if (o.input) w.int(1, o.input);
  w.end(k);
}

function decBuild(r: Reader, end: number): BuildOp {
  const b: Mutable<BuildOp> = {};
  let inputs: Map<string, BuildInput> | undefined;
  let attrs: Map<string, string> | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 8: b.builder = readInt64Number(r); break;
      case 18: {
        const e = readLength(r);
        let key = '';
        let val: BuildInput | undefined;
        while (r.pos < e) {
          const t = readTag(r);
          if (t === 10) key = readString(r);
          else if (t === 18) val = decIndexInput(r, readLength(r));
          else other(r, t, 2, 'MapEntry');
        }
        endCheck(r, e, 'BuildOp.inputs entry');
        (inputs ??= new Map()).set(key, val ?? {});
        break;
      }
      case 26: b.def = hooks().decode(r, readLength(r)); break;
      case 34: readStringMapEntry(r, (attrs ??= new Map())); break;
      default: other(r, tag, 4, 'BuildOp');
    }
  }
  endCheck(r, end, 'BuildOp');
  if (inputs) b.inputs = inputs;
  if (attrs) b.attrs = attrs;
  return b;
}
function encBuild(w: PbWriter, b: BuildOp): void {
  if (b.builder) w.int(1, b.builder);
  if (b.inputs && b.inputs.size > 0) {
    for (const key of sortedKeys(b.inputs)) {
      const k = w.begin(2);
      w.string(1, key);
      encIndexInput(w, 2, b.inputs.get(key) as BuildInput);
      w.end(k);
    }
  }
  if (b.def) {
    const k = w.begin(3);
    hooks().encode(w, b.def);
    w.end(k);
  }
  writeStringMap(w, 4, b.attrs);
}

// ---------------------------------------------------------------------------
// FileOp

function decNamedUser(r: Reader, end: number): { name?: string; input?: number } {
  const n: { name?: string; input?: number } = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) n.name = readString(r);
    else if (tag === 16) n.input = readInt64Number(r);
    else other(r, tag, 2, 'NamedUserOpt');
  }
  endCheck(r, end, 'NamedUserOpt');
  return n;
}
function decUserOpt(r: Reader, end: number): UserOpt {
  let u: UserOpt = { kind: 'none' };
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) u = { kind: 'byName', byName: decNamedUser(r, readLength(r)) };
    else if (tag === 16) u = { kind: 'byId', byId: readUint32(r) };
    else other(r, tag, 2, 'UserOpt');
  }
  endCheck(r, end, 'UserOpt');
  return u;
}
function encUserOpt(w: PbWriter, field: number, u: UserOpt): void {
  const k = w.begin(field);
  if (u.kind === 'byName') {
    const k2 = w.begin(1);
    if (u.byName.name) w.string(1, u.byName.name);
    if (u.byName.input) w.int(2, u.byName.input);
    w.end(k2);
  } else if (u.kind === 'byId') {
    // oneof member: written even when 0 (root).
    w.uint32(2, u.byId);
  }
  w.end(k);
}
function decChown(r: Reader, end: number): ChownOpt {
  const c: Mutable<ChownOpt> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) c.user = decUserOpt(r, readLength(r));
    else if (tag === 18) c.group = decUserOpt(r, readLength(r));
    else other(r, tag, 2, 'ChownOpt');
  }
  endCheck(r, end, 'ChownOpt');
  return c;
}
function encChown(w: PbWriter, field: number, c: ChownOpt): void {
  const k = w.begin(field);
  if (c.user) encUserOpt(w, 1, c.user);
  if (c.group) encUserOpt(w, 2, c.group);
  w.end(k);
}

function decCopy(r: Reader, end: number): FileActionCopy {
  const c: Mutable<FileActionCopy> = {};
  let inc: string[] | undefined;
  let exc: string[] | undefined;
  let req: string[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: c.src = readString(r); break;
      case 18: c.dest = readString(r); break;
      case 26: c.owner = decChown(r, readLength(r)); break;
      case 32: c.mode = readInt32(r); break;
      case 40: c.followSymlink = readBool(r); break;
      case 48: c.dirCopyContents = readBool(r); break;
      case 56: c.attemptUnpackDockerCompatibility = readBool(r); break;
      case 64: c.createDestPath = readBool(r); break;
      case 72: c.allowWildcard = readBool(r); break;
      case 80: c.allowEmptyWildcard = readBool(r); break;
      case 88: c.timestamp = readInt64Big(r); break;
      case 98: (inc ??= []).push(readString(r)); break;
      case 106: (exc ??= []).push(readString(r)); break;
      case 112: c.alwaysReplaceExistingDestPaths = readBool(r); break;
      case 122: c.modeStr = readString(r); break;
      case 130: (req ??= []).push(readString(r)); break;
      default: other(r, tag, 16, 'FileActionCopy');
    }
  }
  endCheck(r, end, 'FileActionCopy');
  if (inc) c.includePatterns = inc;
  if (exc) c.excludePatterns = exc;
  if (req) c.requiredPaths = req;
  return c;
}
function encCopy(w: PbWriter, c: FileActionCopy): void {
  if (c.src) w.string(1, c.src);
  if (c.dest) w.string(2, c.dest);
  if (c.owner) encChown(w, 3, c.owner);
  if (c.mode) w.int(4, c.mode);
  if (c.followSymlink) w.bool(5, true);
  if (c.dirCopyContents) w.bool(6, true);
  if (c.attemptUnpackDockerCompatibility) w.bool(7, true);
  if (c.createDestPath) w.bool(8, true);
  if (c.allowWildcard) w.bool(9, true);
  if (c.allowEmptyWildcard) w.bool(10, true);
  if (c.timestamp) w.bigint64(11, c.timestamp);
  if (c.includePatterns) for (const p of c.includePatterns) w.string(12, p);
  if (c.excludePatterns) for (const p of c.excludePatterns) w.string(13, p);
  if (c.alwaysReplaceExistingDestPaths) w.bool(14, true);
  if (c.modeStr) w.string(15, c.modeStr);
  if (c.requiredPaths) for (const p of c.requiredPaths) w.string(16, p);
}

function decMkfile(r: Reader, end: number): FileActionMkFile {
  const m: Mutable<FileActionMkFile> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: m.path = readString(r); break;
      case 16: m.mode = readInt32(r); break;
      case 26: m.data = readBytes(r); break;
      case 34: m.owner = decChown(r, readLength(r)); break;
      case 40: m.timestamp = readInt64Big(r); break;
      default: other(r, tag, 5, 'FileActionMkFile');
    }
  }
  endCheck(r, end, 'FileActionMkFile');
  return m;
}
function encMkfile(w: PbWriter, m: FileActionMkFile): void {
  if (m.path) w.string(1, m.path);
  if (m.mode) w.int(2, m.mode);
  if (m.data && m.data.length > 0) w.bytes(3, m.data);
  if (m.owner) encChown(w, 4, m.owner);
  if (m.timestamp) w.bigint64(5, m.timestamp);
}

function decMkdir(r: Reader, end: number): FileActionMkDir {
  const m: Mutable<FileActionMkDir> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: m.path = readString(r); break;
      case 16: m.mode = readInt32(r); break;
      case 24: m.makeParents = readBool(r); break;
      case 34: m.owner = decChown(r, readLength(r)); break;
      case 40: m.timestamp = readInt64Big(r); break;
      default: other(r, tag, 5, 'FileActionMkDir');
    }
  }
  endCheck(r, end, 'FileActionMkDir');
  return m;
}
function encMkdir(w: PbWriter, m: FileActionMkDir): void {
  if (m.path) w.string(1, m.path);
  if (m.mode) w.int(2, m.mode);
  if (m.makeParents) w.bool(3, true);
  if (m.owner) encChown(w, 4, m.owner);
  if (m.timestamp) w.bigint64(5, m.timestamp);
}

function decRm(r: Reader, end: number): FileActionRm {
  const m: Mutable<FileActionRm> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) m.path = readString(r);
    else if (tag === 16) m.allowNotFound = readBool(r);
    else if (tag === 24) m.allowWildcard = readBool(r);
    else other(r, tag, 3, 'FileActionRm');
  }
  endCheck(r, end, 'FileActionRm');
  return m;
}

function decSymlink(r: Reader, end: number): FileActionSymlink {
  const m: Mutable<FileActionSymlink> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: m.oldpath = readString(r); break;
      case 18: m.newpath = readString(r); break;
      case 26: m.owner = decChown(r, readLength(r)); break;
      case 32: m.timestamp = readInt64Big(r); break;
      default: other(r, tag, 4, 'FileActionSymlink');
    }
  }
  endCheck(r, end, 'FileActionSymlink');
  return m;
}

function decFileAction(r: Reader, end: number): FileOpAction {
  const a: { input?: number; secondaryInput?: number; output?: number } = {};
  let action: FileActionBody = { kind: 'none' };
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 8: a.input = readInt64Number(r); break;
      case 16: a.secondaryInput = readInt64Number(r); break;
      case 24: a.output = readInt64Number(r); break;
      case 34: action = { kind: 'copy', copy: decCopy(r, readLength(r)) }; break;
      case 42: action = { kind: 'mkfile', mkfile: decMkfile(r, readLength(r)) }; break;
      case 50: action = { kind: 'mkdir', mkdir: decMkdir(r, readLength(r)) }; break;
      case 58: action = { kind: 'rm', rm: decRm(r, readLength(r)) }; break;
      case 66: action = { kind: 'symlink', symlink: decSymlink(r, readLength(r)) }; break;
      default: other(r, tag, 8, 'FileAction');
    }
  }
  endCheck(r, end, 'FileAction');
  return { ...a, action };
}

function encFileAction(w: PbWriter, a: FileOpAction): void {
  if (a.input) w.int(1, a.input);
  if (a.secondaryInput) w.int(2, a.secondaryInput);
  if (a.output) w.int(3, a.output);
  const act = a.action;
  switch (act.kind) {
    case 'copy': {
      const k = w.begin(4);
      encCopy(w, act.copy);
      w.end(k);
      break;
    }
    case 'mkfile': {
      const k = w.begin(5);
      encMkfile(w, act.mkfile);
      w.end(k);
      break;
    }
    case 'mkdir': {
      const k = w.begin(6);
      encMkdir(w, act.mkdir);
      w.end(k);
      break;
    }
    case 'rm': {
      const k = w.begin(7);
      if (act.rm.path) w.string(1, act.rm.path);
      if (act.rm.allowNotFound) w.bool(2, true);
      if (act.rm.allowWildcard) w.bool(3, true);
      w.end(k);
      break;
    }
    case 'symlink': {
      const k = w.begin(8);
      const s = act.symlink;
      if (s.oldpath) w.string(1, s.oldpath);
      if (s.newpath) w.string(2, s.newpath);
      if (s.owner) encChown(w, 3, s.owner);
      if (s.timestamp) w.bigint64(4, s.timestamp);
      w.end(k);
      break;
    }
    case 'none':
      break;
  }
}

function decFile(r: Reader, end: number): FileOp {
  let actions: FileOpAction[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 18) (actions ??= []).push(decFileAction(r, readLength(r)));
    else other(r, tag, 2, 'FileOp');
  }
  endCheck(r, end, 'FileOp');
  return actions ? { actions } : {};
}

// ---------------------------------------------------------------------------
// Merge, Diff

function decMerge(r: Reader, end: number): MergeOp {
  let inputs: { input?: number }[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) (inputs ??= []).push(decIndexInput(r, readLength(r)));
    else other(r, tag, 1, 'MergeOp');
  }
  endCheck(r, end, 'MergeOp');
  return inputs ? { inputs } : {};
}
function decDiff(r: Reader, end: number): DiffOp {
  const d: Mutable<DiffOp> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) d.lower = decIndexInput(r, readLength(r));
    else if (tag === 18) d.upper = decIndexInput(r, readLength(r));
    else other(r, tag, 2, 'DiffOp');
  }
  endCheck(r, end, 'DiffOp');
  return d;
}

// ---------------------------------------------------------------------------
// Op

/** Decodes an `Op` body occupying `[r.pos, end)`. */
export function decodeOpFrom(r: Reader, end: number): Op {
  const inputs: Input[] = [];
  let platform: PbPlatform | undefined;
  let constraints: WorkerConstraints | undefined;
  let kind = 0;
  let exec: ExecOp | undefined;
  let source: SourceOp | undefined;
  let file: FileOp | undefined;
  let build: BuildOp | undefined;
  let merge: MergeOp | undefined;
  let diff: DiffOp | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: inputs.push(decInput(r, readLength(r))); break;
      case 18: kind = 2; exec = decExec(r, readLength(r)); break;
      case 26: kind = 3; source = decSource(r, readLength(r)); break;
      case 34: kind = 4; file = decFile(r, readLength(r)); break;
      case 42: kind = 5; build = decBuild(r, readLength(r)); break;
      case 50: kind = 6; merge = decMerge(r, readLength(r)); break;
      case 58: kind = 7; diff = decDiff(r, readLength(r)); break;
      case 82: platform = decPlatform(r, readLength(r)); break;
      case 90: constraints = decConstraints(r, readLength(r)); break;
      default: other(r, tag, 11, 'Op');
    }
  }
  endCheck(r, end, 'Op');
  // One literal per kind with a fixed key order keeps V8 object shapes monomorphic.
  switch (kind) {
    case 2: return { kind: 'exec', inputs, exec: exec as ExecOp, platform, constraints };
    case 3: return { kind: 'source', inputs, source: source as SourceOp, platform, constraints };
    case 4: return { kind: 'file', inputs, file: file as FileOp, platform, constraints };
    case 5: return { kind: 'build', inputs, build: build as BuildOp, platform, constraints };
    case 6: return { kind: 'merge', inputs, merge: merge as MergeOp, platform, constraints };
    case 7: return { kind: 'diff', inputs, diff: diff as DiffOp, platform, constraints };
    default: return { kind: 'none', inputs, platform, constraints };
  }
}

/** Encodes `op` into `w` (no length prefix). */
export function encodeOpTo(w: PbWriter, op: Op): void {
  for (const inp of op.inputs) {
    const k = w.begin(1);
    if (inp.digest) w.string(1, inp.digest);
    if (inp.index) w.int(2, inp.index);
    w.end(k);
  }
  switch (op.kind) {
    case 'exec': {
      const k = w.begin(2);
      encExec(w, op.exec);
      w.end(k);
      break;
    }
    case 'source': {
      const k = w.begin(3);
      encSource(w, op.source);
      w.end(k);
      break;
    }
    case 'file': {
      const k = w.begin(4);
      if (op.file.actions) {
        for (const a of op.file.actions) {
          const k2 = w.begin(2);
          encFileAction(w, a);
          w.end(k2);
        }
      }
      w.end(k);
      break;
    }
    case 'build': {
      const k = w.begin(5);
      encBuild(w, op.build);
      w.end(k);
      break;
    }
    case 'merge': {
      const k = w.begin(6);
      if (op.merge.inputs) for (const i of op.merge.inputs) encIndexInput(w, 1, i);
      w.end(k);
      break;
    }
    case 'diff': {
      const k = w.begin(7);
      if (op.diff.lower) encIndexInput(w, 1, op.diff.lower);
      if (op.diff.upper) encIndexInput(w, 2, op.diff.upper);
      w.end(k);
      break;
    }
    case 'none':
      break;
  }
  if (op.platform) {
    const k = w.begin(10);
    encPlatform(w, op.platform);
    w.end(k);
  }
  if (op.constraints) {
    const k = w.begin(11);
    if (op.constraints.filter) for (const f of op.constraints.filter) w.string(1, f);
    w.end(k);
  }
}

/** Wraps codec failures (including protobufjs RangeErrors) in an LlbError. */
export function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LlbError) {
      throw new LlbError(e.code, `${what}: ${e.message}`, { cause: e });
    }
    const msg = e instanceof Error ? e.message : String(e);
    throw new LlbError('LLB_DECODE', `${what}: ${msg}`, { cause: e });
  }
}

const sharedWriter = new PbWriter(4096);

/**
 * Decodes one marshaled `pb.Op`. Throws {@link LlbError} (`LLB_DECODE`, `LLB_TRUNCATED`,
 * `LLB_INT_RANGE`) on malformed bytes; never returns a partial op.
 */
export function decodeOp(bytes: Uint8Array): Op {
  try {
    const { r, end } = readerFor(bytes);
    return decodeOpFrom(r, end);
  } catch (e) {
    return guard('decode op', () => {
      throw e;
    });
  }
}

/** Marshals `op` exactly as BuildKit's deterministic gogo marshaler would. */
export function encodeOp(op: Op): Uint8Array {
  const w = sharedWriter;
  w.reset();
  encodeOpTo(w, op);
  return w.finish();
}
