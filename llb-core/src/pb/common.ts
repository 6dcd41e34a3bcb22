/** Shared helpers of the pb codecs: unknown-field handling, map entries, nested-definition hooks. */
import { LlbError } from '../errors.js';
import type { Definition } from '../op.js';
import { PbWriter, sortedKeys } from './writer.js';
import { type Reader, readInt32, readLength, readString, readTag, skipField, wrongWireType } from './reader.js';

export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Hooks for the mutually recursive Definition codec (BuildOp.def). */
export interface DefinitionCodecHooks {
  encode(w: PbWriter, d: Definition): void;
  decode(r: Reader, end: number): Definition;
}
let defHooks: DefinitionCodecHooks | undefined;
export function setDefinitionHooks(h: DefinitionCodecHooks): void {
  defHooks = h;
}
export function hooks(): DefinitionCodecHooks {
  if (!defHooks) throw new LlbError('LLB_DECODE', 'definition codec not initialised');
  return defHooks;
}

// ---------------------------------------------------------------------------
// helpers

export function endCheck(r: Reader, end: number, what: string): void {
  if (r.pos !== end) throw new LlbError('LLB_DECODE', `${what}: field overruns the message end`);
}

/** Skips an unknown field; a known field number with the wrong wire type is an error. */
export function other(r: Reader, tag: number, known: number, what: string): void {
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

export function readStringMapEntry(r: Reader, into: Map<string, string>): void {
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

export function writeStringMap(w: PbWriter, field: number, m: ReadonlyMap<string, string> | undefined): void {
  if (!m || m.size === 0) return;
  for (const k of sortedKeys(m)) {
    const mark = w.begin(field);
    w.string(1, k);
    w.string(2, m.get(k) as string);
    w.end(mark);
  }
}

/** Decodes packed or unpacked repeated int32. */
export function readRepeatedInt32(r: Reader, tag: number, into: number[]): void {
  if ((tag & 7) === 2) {
    const end = readLength(r);
    while (r.pos < end) into.push(readInt32(r));
    endCheck(r, end, 'packed int32');
  } else into.push(readInt32(r));
}

/** Wraps codec failures (including RangeErrors) in an LlbError prefixed with `what`. */
export function decodeFailure(what: string, e: unknown): LlbError {
  if (e instanceof LlbError) return new LlbError(e.code, `${what}: ${e.message}`, { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new LlbError('LLB_DECODE', `${what}: ${msg}`, { cause: e });
}

/** Runs `fn`, converting any failure with {@link decodeFailure}. */
export function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw decodeFailure(what, e);
  }
}
