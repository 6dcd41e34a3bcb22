import { describe, expect, test } from 'vitest';
import { MAX_MESSAGE_BYTES, MessageReader, decodeGrpcMessage, encodeGrpcMessage, frameMessage } from './grpc.js';

describe('gRPC length-prefixed messages', () => {
  test('a frame is flag 0, a big-endian uint32 length, then the bytes', () => {
    expect([...frameMessage(new Uint8Array([7, 8, 9]))]).toEqual([0, 0, 0, 0, 3, 7, 8, 9]);
    expect([...frameMessage(new Uint8Array(0x010203)).subarray(0, 5)]).toEqual([0, 0, 1, 2, 3]);
  });

  test('messages split across chunks and packed together come out whole', () => {
    const r = new MessageReader();
    const wire = Buffer.concat([frameMessage(new Uint8Array([1, 2, 3])), frameMessage(new Uint8Array()), frameMessage(new Uint8Array([4]))]);
    for (let i = 0; i < wire.length; i += 2) r.push(wire.subarray(i, i + 2));
    expect(r.finish().map((m) => [...m])).toEqual([[1, 2, 3], [], [4]]);
  });

  test('a prefix announcing more than 16 MiB is refused before the body arrives', () => {
    const r = new MessageReader();
    const head = Buffer.from([0, 0, 0, 0, 0]);
    head.writeUInt32BE(MAX_MESSAGE_BYTES + 1, 1);
    expect(() => r.push(head)).toThrow(expect.objectContaining({ code: 'KLN0613', message: `grpc: received message larger than max (${MAX_MESSAGE_BYTES + 1} vs. ${MAX_MESSAGE_BYTES})` }));
    expect(() => frameMessage(new Uint8Array(MAX_MESSAGE_BYTES + 1))).toThrow(expect.objectContaining({ code: 'KLN0613' }));
    expect(frameMessage(new Uint8Array(MAX_MESSAGE_BYTES)).length).toBe(MAX_MESSAGE_BYTES + 5);
  });

  test('a compressed message without a negotiated encoding, and a body cut inside a message, are KLN0614', () => {
    expect(() => new MessageReader().push(Buffer.from([1, 0, 0, 0, 1, 9]))).toThrow(expect.objectContaining({ code: 'KLN0614' }));
    const r = new MessageReader();
    r.push(Buffer.from([0, 0, 0, 0, 4, 1, 2]));
    expect(() => r.finish()).toThrow(expect.objectContaining({ code: 'KLN0614' }));
  });
});

describe('grpc-message percent-encoding (PROTOCOL-HTTP2.md)', () => {
  test('printable ASCII but % stays; other bytes are %XX of their UTF-8', () => {
    expect(encodeGrpcMessage('no such ref: r1')).toBe('no such ref: r1');
    expect(encodeGrpcMessage('100% done\nnext')).toBe('100%25 done%0Anext');
    expect(encodeGrpcMessage('café ✓')).toBe('caf%C3%A9 %E2%9C%93');
  });
  test('decoding reverses it, and keeps a stray % as it is', () => {
    expect(decodeGrpcMessage('caf%C3%A9 %E2%9C%93')).toBe('café ✓');
    expect(decodeGrpcMessage('100%25 done%0Anext')).toBe('100% done\nnext');
    expect(decodeGrpcMessage('50% off %zz')).toBe('50% off %zz');
  });
});
