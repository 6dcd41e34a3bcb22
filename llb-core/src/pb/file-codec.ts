/** Codec for `pb.FileOp` and its actions (copy, mkfile, mkdir, rm, symlink, chown). */
import type { ChownOpt, FileActionBody, FileActionCopy, FileActionMkDir, FileActionMkFile, FileActionRm, FileActionSymlink, FileOp, FileOpAction, UserOpt } from '../op.js';
import type { PbWriter } from './writer.js';
import { type Reader, readBool, readBytes, readInt32, readInt64Big, readInt64Number, readLength, readString, readTag, readUint32 } from './reader.js';
import { endCheck, other, type Mutable } from './common.js';

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

export function encFileAction(w: PbWriter, a: FileOpAction): void {
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

export function decFile(r: Reader, end: number): FileOp {
  let actions: FileOpAction[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 18) (actions ??= []).push(decFileAction(r, readLength(r)));
    else other(r, tag, 2, 'FileOp');
  }
  endCheck(r, end, 'FileOp');
  return actions ? { actions } : {};
}

