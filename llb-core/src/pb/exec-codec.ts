/** Codec for `pb.ExecOp` and its sub-messages (meta, mounts, secrets). */
import type { CDIDevice, CacheOpt, ExecOp, HostIP, Meta, Mount, ProxyEnv, SSHOpt, SecretEnv, SecretOpt, TmpfsOpt, Ulimit } from '../op.js';
import type { PbWriter } from './writer.js';
import { type Reader, readBool, readInt32, readInt64Big, readInt64Number, readLength, readString, readTag, readUint32 } from './reader.js';
import { endCheck, other, readRepeatedInt32, type Mutable } from './common.js';

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
  // Indexed loops on the per-op paths: until the optimizer runs (in a short-lived `kiln llb`
  // it mostly doesn't), for..of allocates an iterator and a result object per element.
  if (m.args) for (let i = 0; i < m.args.length; i++) w.string(1, m.args[i] as string);
  if (m.env) for (let i = 0; i < m.env.length; i++) w.string(2, m.env[i] as string);
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

export function decExec(r: Reader, end: number): ExecOp {
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

export function encExec(w: PbWriter, e: ExecOp): void {
  if (e.meta) {
    const k = w.begin(1);
    encMeta(w, e.meta);
    w.end(k);
  }
  if (e.mounts) {
    for (let i = 0; i < e.mounts.length; i++) {
      const k = w.begin(2);
      encMount(w, e.mounts[i] as Mount);
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

