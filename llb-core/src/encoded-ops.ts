/**
 * A memo of ops this process encoded: marshal records, for each op's bytes, the {@link Op} it
 * encoded and the bytes' digest, so views of a fresh {@link Definition} (the dump-llb JSON) need
 * not decode and re-hash every op. Keyed by the byte array's identity (a copy misses and is
 * decoded); nothing here changes what a view prints.
 * @internal
 */
import type { Digest } from './digest.js';
import type { Op } from './op.js';

interface EncodedOp {
  readonly op: Op;
  readonly digest: Digest;
}

const encoded = new WeakMap<Uint8Array, EncodedOp>();

/** Records that `bytes` is the encoding of `op`, with digest `digest`. */
export function rememberEncodedOp(bytes: Uint8Array, op: Op, digest: Digest): void {
  encoded.set(bytes, { op, digest });
}

/** The op and digest recorded for exactly this byte array, if marshal produced it. */
export function encodedOp(bytes: Uint8Array): EncodedOp | undefined {
  return encoded.get(bytes);
}
