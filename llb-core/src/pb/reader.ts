/**
 * Decoding helpers over protobufjs's `Reader`: wire-type checks, int64 varints read
 * without Long allocations, and conversion of protobufjs's RangeErrors into
 * {@link LlbError}s so callers never see a raw crash.
 */
import { Reader } from 'protobufjs/minimal.js';
import { LlbError } from '../errors.js';

export { Reader };

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
  varint64(r);
  return LO | 0;
}

/** Reads a varint as uint32. */
export function readUint32(r: Reader): number {
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
  varint64(r);
  if (HI !== 0 || LO > r.len - r.pos) truncated();
  return r.pos + LO;
}

const decoder = new TextDecoder('utf-8');

export function readString(r: Reader): string {
  const end = readLength(r);
  const buf = r.buf;
  const start = r.pos;
  r.pos = end;
  // ASCII fast path avoids TextDecoder call overhead for the short strings LLB is full of.
  if (end - start < 64) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i] as number;
      if (c >= 128) return decoder.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return decoder.decode(buf.subarray(start, end));
}

/** Reads a bytes field as a copy (decoded values never alias the input buffer). */
export function readBytes(r: Reader): Uint8Array {
  const end = readLength(r);
  const out = r.buf.slice(r.pos, end);
  r.pos = end;
  return out;
}

/** Reads a field tag; returns field number * 8 + wire type. */
export function readTag(r: Reader): number {
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
    default:
      throw new LlbError('LLB_DECODE', `unsupported wire type ${wireType} at offset ${r.pos}`);
  }
}

/** Throws when a known field arrives with the wrong wire type. */
export function wrongWireType(message: string, tag: number): never {
  throw new LlbError('LLB_DECODE', `${message}: wrong wire type ${tag & 7} for field ${tag >>> 3}`);
}

/** Makes a protobufjs Reader over `bytes`. */
export function newReader(bytes: Uint8Array): Reader {
  return new Reader(bytes);
}
