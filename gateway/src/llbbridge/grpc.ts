/**
 * gRPC's HTTP/2 wire rules (grpc/doc/PROTOCOL-HTTP2.md), shared by unary and streaming calls: the
 * 5-byte message prefix (compressed flag, big-endian length), status codes, and the
 * percent-encoded `grpc-message` trailer.
 */
import { GatewayError } from '../errors.js';

/** gRPC status codes kiln sends or reads (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** The largest message either side takes: buildkitd's gateway limit (16 MiB), both ways. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The gRPC `content-type`. */
export const GRPC_CONTENT_TYPE = 'application/grpc';

/** A gRPC status other than OK: its code, message and the `google.rpc.Status` details (opaque). */
export class GrpcStatusError extends Error {
  override readonly name = 'GrpcStatusError';
  /** The gRPC status code (`GrpcCode`). */
  readonly grpcCode: number;
  /** `google.rpc.Status.details`, passed through as they came (type URL and bytes). */
  readonly details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[];

  constructor(grpcCode: number, message: string, details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[] = []) {
    super(message);
    this.grpcCode = grpcCode;
    this.details = details;
  }
}

/** The error for a message over {@link MAX_MESSAGE_BYTES}, worded like grpc-go's. */
export function tooLarge(size: number, what: 'received' | 'sent'): GatewayError {
  return new GatewayError('KLN0613', `grpc: ${what} message larger than max (${size} vs. ${MAX_MESSAGE_BYTES})`, {
    hint: 'LLBBridge messages are limited to 16 MiB: read large files in ranges (ReadFile Range)',
  });
}

/** Prefixes one message for the wire (uncompressed). */
export function frameMessage(message: Uint8Array): Buffer {
  if (message.length > MAX_MESSAGE_BYTES) throw tooLarge(message.length, 'sent');
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Splits the bytes of a gRPC stream body into messages. Throws a GatewayError KLN0613 as soon as
 * a prefix announces a message over the limit (before buffering it), KLN0614 on a compressed
 * message (kiln never offers an encoding, so a peer must not compress).
 */
export class MessageReader {
  readonly #chunks: Buffer[] = [];
  #buffered = 0;
  readonly #messages: Uint8Array[] = [];

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#buffered < 5) return;
      const head = this.#peek(5);
      const length = head.readUInt32BE(1);
      if (head[0] !== 0) throw new GatewayError('KLN0614', `grpc: compressed message (flag ${head[0]}) but no encoding was negotiated`);
      if (length > MAX_MESSAGE_BYTES) throw tooLarge(length, 'received');
      if (this.#buffered < 5 + length) return;
      const all = this.#take(5 + length);
      this.#messages.push(new Uint8Array(all.buffer, all.byteOffset + 5, length));
    }
  }

  /**
   * The complete messages read since the last call, handed over (a stream's messages as they
   * arrive); {@link finish} then checks the end.
   */
  take(): Uint8Array[] {
    return this.#messages.splice(0);
  }

  /** The complete messages so far; throws when the body ended inside a message. */
  finish(): readonly Uint8Array[] {
    if (this.#buffered !== 0) throw new GatewayError('KLN0614', `grpc: the stream ended inside a message (${this.#buffered} bytes left over)`);
    return this.#messages;
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) return first;
    const joined = Buffer.concat(this.#chunks);
    this.#chunks.length = 0;
    this.#chunks.push(joined);
    return joined;
  }

  #take(n: number): Buffer {
    const joined = this.#peek(n);
    const out = joined.subarray(0, n);
    this.#chunks[0] = joined.subarray(n);
    if (this.#chunks[0].length === 0) this.#chunks.shift();
    this.#buffered -= n;
    return out;
  }
}

/** Percent-encodes a `grpc-message` value: UTF-8 bytes outside 0x20-0x7E, and `%`. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Decodes a `grpc-message` value; a `%` not followed by two hex digits stays as it is (as the spec asks). */
export function decodeGrpcMessage(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const hex = value.slice(i + 1, i + 3);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else bytes.push(...Buffer.from(value[i] ?? '', 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
