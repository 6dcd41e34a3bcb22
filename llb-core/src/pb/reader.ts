/**
 * Protobuf wire decoding: a cursor over bytes, wire-type checks, int64 varints read
 * without Long allocations, and {@link LlbError}s for malformed input so callers never
 * see a raw crash. (It once wrapped protobufjs's Reader; only its buf/pos/len fields were
 * used, and loading protobufjs cost every CLI start about 25 ms.)
 */
import { LlbError } from '../errors.js';

/** A read cursor: `buf[pos..len)` is what is left to decode. */
export class Reader {
  constructor(
    public buf: Uint8Array,
    public pos = 0,
    public len = buf.length,
  ) {}
}

let LO = 0;
let HI = 0;

function truncated(): never {
  throw new LlbError('LLB_TRUNCATED', 'unexpected end of data while decoding protobuf');
}

/** Reads a 64-bit varint into the module scratch registers LO/HI. */
function varint64(r: Reader): void {
  const buf = r.buf;
  const len = r.len;
  let pos = r.pos;
  let lo = 0;
  let hi = 0;
  let b = 0;
  for (let i = 0; i < 4; i++) {
    if (pos >= len) truncated();
    b = buf[pos++] as number;
    lo = (lo | ((b & 127) << (i * 7))) >>> 0;
    if (b < 128) {
      LO = lo;
      HI = 0;
      r.pos = pos;
      return;
    }
  }
  if (pos >= len) truncated();
  b = buf[pos++] as number;
  lo = (lo | ((b & 127) << 28)) >>> 0;
  hi = (b & 127) >> 4;
  if (b < 128) {
    LO = lo;
    HI = hi;
    r.pos = pos;
    return;
  }
  for (let i = 0; i < 5; i++) {
    if (pos >= len) truncated();
    b = buf[pos++] as number;
    hi = (hi | ((b & 127) << (i * 7 + 3))) >>> 0;
    if (b < 128) {
      LO = lo;
      HI = hi;
      r.pos = pos;
      return;
    }
  }
  throw new LlbError('LLB_DECODE', 'invalid varint (more than 10 bytes)');
}

/** Reads an int64 that must fit a JS safe integer (indexes, sizes of lists). */
export function readInt64Number(r: Reader): number {
  const pos = r.pos;
  if (pos < r.len) {
    const b = r.buf[pos] as number;
    if (b < 128) {
      r.pos = pos + 1;
      return b;
    }
  }
  varint64(r);
  if (HI & 0x80000000) {
    const lo = (~LO + 1) >>> 0;
    const hi = (~HI + (lo === 0 ? 1 : 0)) >>> 0;
    if (hi > 0x1fffff) throw new LlbError('LLB_INT_RANGE', 'int64 value out of JavaScript safe integer range');
    return -(hi * 4294967296 + lo);
  }
  if (HI > 0x1fffff) throw new LlbError('LLB_INT_RANGE', 'int64 value out of JavaScript safe integer range');
  return HI * 4294967296 + LO;
}

/** Reads an int64 exactly as a bigint. */
export function readInt64Big(r: Reader): bigint {
  varint64(r);
  if (HI === 0) return BigInt(LO);
  return BigInt.asIntN(64, (BigInt(HI) << 32n) | BigInt(LO));
}

/** Reads a varint as int32 (Go truncates a sign-extended 10-byte varint the same way). */
export function readInt32(r: Reader): number {
  const pos = r.pos;
  if (pos < r.len) {
    const b = r.buf[pos] as number;
    if (b < 128) {
      r.pos = pos + 1;
      return b;
    }
  }
  varint64(r);
  return LO | 0;
}

/** Reads a varint as uint32. */
export function readUint32(r: Reader): number {
  const pos = r.pos;
  if (pos < r.len) {
    const b = r.buf[pos] as number;
    if (b < 128) {
      r.pos = pos + 1;
      return b;
    }
  }
  varint64(r);
  return LO;
}

/** Reads a varint as bool. */
export function readBool(r: Reader): boolean {
  varint64(r);
  return LO !== 0 || HI !== 0;
}

/** Reads a length prefix and returns the end offset of the delimited body. */
export function readLength(r: Reader): number {
  const pos = r.pos;
  if (pos < r.len) {
    const b = r.buf[pos] as number;
    if (b < 128) {
      if (b > r.len - pos - 1) truncated();
      r.pos = pos + 1;
      return pos + 1 + b;
    }
  }
  varint64(r);
  if (HI !== 0 || LO > r.len - r.pos) truncated();
  return r.pos + LO;
}

/** Node's native UTF-8 slice (undocumented on the type, present on every Buffer since Node 0.x). */
interface FastBuffer extends Uint8Array {
  utf8Slice(start: number, end: number): string;
}

export function readString(r: Reader): string {
  const end = readLength(r);
  const start = r.pos;
  r.pos = end;
  if (end === start) return '';
  // readerFor and newReader always hold a Buffer view, so the native slice is available.
  return (r.buf as FastBuffer).utf8Slice(start, end);
}

/** Reads a bytes field as a copy (decoded values never alias the caller's buffer). */
export function readBytes(r: Reader): Uint8Array {
  const end = readLength(r);
  const buf = r.buf;
  const out = new Uint8Array(buf.buffer, buf.byteOffset + r.pos, end - r.pos).slice();
  r.pos = end;
  return out;
}

/** Reads a bytes field as a view of the reader's buffer; only for buffers the decoder owns. */
export function readBytesView(r: Reader): Uint8Array {
  const end = readLength(r);
  const buf = r.buf;
  const out = new Uint8Array(buf.buffer, buf.byteOffset + r.pos, end - r.pos);
  r.pos = end;
  return out;
}

/** Reads a field tag; returns field number * 8 + wire type. */
export function readTag(r: Reader): number {
  const pos = r.pos;
  if (pos < r.len) {
    const b = r.buf[pos] as number;
    if (b < 128 && b >= 8) {
      r.pos = pos + 1;
      return b;
    }
  }
  varint64(r);
  if (HI !== 0 || LO >>> 3 === 0) throw new LlbError('LLB_DECODE', `invalid field tag at offset ${r.pos}`);
  return LO;
}

/** Skips a field of the given wire type. */
export function skipField(r: Reader, wireType: number): void {
  switch (wireType) {
    case 0:
      varint64(r);
      return;
    case 1:
      if (r.pos + 8 > r.len) truncated();
      r.pos += 8;
      return;
    case 2: {
      r.pos = readLength(r);
      return;
    }
    case 5:
      if (r.pos + 4 > r.len) truncated();
      r.pos += 4;
      return;
    case 3:
      skipGroup(r);
      return;
    default:
      throw new LlbError('LLB_DECODE', `unsupported wire type ${wireType} at offset ${r.pos}`);
  }
}

/**
 * Skips the rest of a group (proto2's deprecated delimited encoding) whose start tag was just
 * read. BuildKit's gogo skipOps accepts a group as an unknown field: it counts nested start and
 * end tags without checking their field numbers, so this does the same.
 */
function skipGroup(r: Reader): void {
  let depth = 1;
  while (depth > 0) {
    if (r.pos >= r.len) truncated();
    varint64(r);
    const wireType = LO & 7;
    if (wireType === 3) depth++;
    else if (wireType === 4) depth--;
    else skipField(r, wireType);
  }
}

/** Throws when a known field arrives with the wrong wire type. */
export function wrongWireType(message: string, tag: number): never {
  throw new LlbError('LLB_DECODE', `${message}: wrong wire type ${tag & 7} for field ${tag >>> 3}`);
}

let lastArrayBuffer: ArrayBufferLike | undefined;
let lastView: Buffer | undefined;
const shared = new Reader(Buffer.alloc(0));

/**
 * Positions a Reader over `bytes` and returns it with the absolute end
 * offset. The Reader spans the whole underlying ArrayBuffer (a Buffer view, cached for
 * the last ArrayBuffer seen) so decoding the many op byte strings of one Definition
 * creates no per-op buffers. The Reader is shared: decoding is synchronous and not
 * re-entrant across calls.
 */
export function readerFor(bytes: Uint8Array): { r: Reader; end: number } {
  const ab = bytes.buffer;
  let view = lastView;
  if (ab !== lastArrayBuffer || view === undefined) {
    view = Buffer.from(ab, 0, ab.byteLength);
    lastArrayBuffer = ab;
    lastView = view;
  }
  shared.buf = view;
  shared.pos = bytes.byteOffset;
  shared.len = bytes.byteOffset + bytes.byteLength;
  return { r: shared, end: shared.len };
}

/** Makes a fresh Reader over `bytes` (positions are relative to `bytes`). */
export function newReader(bytes: Uint8Array): Reader {
  const view = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new Reader(view);
}
