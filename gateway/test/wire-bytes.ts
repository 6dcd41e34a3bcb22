/**
 * Protobuf wire bytes assembled by hand for the LLBBridge schema tests, from a .proto's field
 * numbers (tag = field << 3 | wire type; 0 varint, 2 length-delimited), never by kiln's codec.
 */
const te = new TextEncoder();

/** A LEB128 varint (int64 values as bigint). */
export function varint(n: bigint | number): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? b : b | 0x80);
  } while (v !== 0n);
  return out;
}

/** A length-delimited field: tag, length, body. */
export const len = (field: number, body: readonly number[] | Uint8Array): number[] => [...varint((field << 3) | 2), ...varint(body.length), ...body];
/** A string field. */
export const str = (field: number, s: string): number[] => len(field, te.encode(s));
/** A varint field. */
export const num = (field: number, v: bigint | number): number[] => [...varint(field << 3), ...varint(v)];
/** The parts as one message. */
export const bytes = (...parts: number[][]): Uint8Array => new Uint8Array(parts.flat());
