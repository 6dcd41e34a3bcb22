/**
 * Byte-exact codec for `pb.Op` and its sub-messages, matching gogo's stable marshaler
 * (BuildKit's `deterministicMarshal`): fields in field-number order, map entries sorted
 * by key with key and value always written, proto3 zero scalars omitted except inside a
 * oneof, packed repeated scalars, and every present sub-message written even when empty.
 */
import { LlbError } from '../errors.js';
import { unsafeDigest } from '../digest.js';
import type { BuildInput, BuildOp, DiffOp, ExecOp, FileOp, FileOpAction, Input, MergeOp, Op, PbPlatform, SourceOp, WorkerConstraints } from '../op.js';
import { PbWriter, sortedKeys } from './writer.js';
import { decExec, encExec } from './exec-codec.js';
import { decFile, encFileAction } from './file-codec.js';
import { decodeFailure, endCheck, hooks, other, readStringMapEntry, writeStringMap, type Mutable } from './common.js';
import { type Reader, readerFor, readInt64Number, readLength, readString, readTag } from './reader.js';

export { setDefinitionHooks, guard, type DefinitionCodecHooks } from './common.js';

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
  // indexed loops: see encMeta
  for (let i = 0; i < op.inputs.length; i++) {
    const inp = op.inputs[i] as Input;
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
        for (let i = 0; i < op.file.actions.length; i++) {
          const k2 = w.begin(2);
          encFileAction(w, op.file.actions[i] as FileOpAction);
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
    throw decodeFailure('decode op', e);
  }
}

/** Marshals `op` exactly as BuildKit's deterministic gogo marshaler would. */
export function encodeOp(op: Op): Uint8Array {
  const w = sharedWriter;
  w.reset();
  encodeOpTo(w, op);
  return w.finish();
}
