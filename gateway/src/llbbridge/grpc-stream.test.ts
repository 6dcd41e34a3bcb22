import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { GrpcClient } from './grpc-client.js';
import { GrpcServer } from './grpc-server.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import { AsyncQueue, type StreamHandler } from './grpc-stream.js';
import { sendFor } from '../../test/send-for.js';

function streamPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

const te = new TextEncoder();
const td = new TextDecoder();

function connectPair(streams: ReadonlyMap<string, StreamHandler>): { server: GrpcServer; client: GrpcClient } {
  const [a, b] = streamPair();
  const server = new GrpcServer(a, new Map([['/t.S/Unary', async (r: Uint8Array) => r]]), { streams });
  return { server, client: new GrpcClient(b) };
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<string[]> {
  const out: string[] = [];
  for await (const m of it) out.push(td.decode(m));
  return out;
}

describe('AsyncQueue', () => {
  test('items in order, then the end; a failure comes after what was queued; early break closes it', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    q.push(2);
    setTimeout(() => {
      q.push(3);
      q.fail(new Error('boom'));
      q.push(4);
    }, 5);
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const n of q) got.push(n);
      })(),
    ).rejects.toThrow('boom');
    expect(got).toEqual([1, 2, 3]);

    const q2 = new AsyncQueue<number>();
    q2.push(1);
    q2.push(2);
    const drained = q2.drained();
    for await (const n of q2) if (n === 1) break;
    await drained;
    expect(q2.closed).toBe(true);
    q2.push(3);
    expect(q2.length).toBe(0);
  });
});

describe('gRPC streaming calls over one HTTP/2 connection', () => {
  test('bidirectional: messages both ways as they come, half-close, OK trailers; unary calls still work beside it', async () => {
    const { server, client } = connectPair(
      new Map([
        [
          '/t.S/Echo',
          async (call) => {
            for await (const m of call.messages) await call.send(te.encode(`echo ${td.decode(m)}`));
            await call.send(te.encode('bye'));
          },
        ],
      ]),
    );
    const call = client.stream('/t.S/Echo');
    const it = call.messages[Symbol.asyncIterator]();
    await call.send(te.encode('a'));
    // The answer to the first message arrives while the request side is still open.
    expect(td.decode((await it.next()).value as Uint8Array)).toBe('echo a');
    await call.send(te.encode('b'));
    call.end();
    const rest: string[] = [];
    for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(td.decode(r.value));
    expect(rest).toEqual(['echo b', 'bye']);
    expect(td.decode(await client.call('/t.S/Unary', te.encode('u')))).toBe('u');
    server.destroy();
  });

  test('a handler failure after messages ends the call with its status in the trailers; before any message, trailers-only', async () => {
    const { server, client } = connectPair(
      new Map<string, StreamHandler>([
        [
          '/t.S/Late',
          async (call) => {
            await call.send(te.encode('one'));
            throw new GrpcStatusError(GrpcCode.NOT_FOUND, 'IO for process "p" not found — ✓');
          },
        ],
        [
          '/t.S/Early',
          async () => {
            throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, 'ProcessID required');
          },
        ],
      ]),
    );
    const got: string[] = [];
    const late = client.stream('/t.S/Late');
    await expect(
      (async () => {
        for await (const m of late.messages) got.push(td.decode(m));
      })(),
    ).rejects.toMatchObject({ grpcCode: GrpcCode.NOT_FOUND, message: 'IO for process "p" not found — ✓' });
    expect(got).toEqual(['one']);
    // The server answered without waiting for this side's half-close; sending now fails.
    await expect(late.send(te.encode('x'))).rejects.toMatchObject({ grpcCode: GrpcCode.CANCELLED });
    await expect(collect(client.stream('/t.S/Early').messages)).rejects.toMatchObject({ grpcCode: GrpcCode.INVALID_ARGUMENT, message: 'ProcessID required' });
    await expect(collect(client.stream('/t.S/Nope').messages)).rejects.toMatchObject({ grpcCode: GrpcCode.UNIMPLEMENTED });
    server.destroy();
  });

  test('cancel resets the call: the server sees its signal abort and its message loop ends; the client gets CANCELLED', async () => {
    let aborted: (reason: unknown) => void = () => undefined;
    const serverSaw = new Promise<unknown>((r) => (aborted = r));
    let loopEnded = false;
    const { server, client } = connectPair(
      new Map([
        [
          '/t.S/Hang',
          async (call) => {
            call.signal.addEventListener('abort', () => aborted(call.signal.reason));
            try {
              for await (const m of call.messages) await call.send(m);
            } catch {
              // a reset may also fail the loop
            }
            loopEnded = true;
          },
        ],
      ]),
    );
    const call = client.stream('/t.S/Hang');
    await call.send(te.encode('ping'));
    const it = call.messages[Symbol.asyncIterator]();
    expect(td.decode((await it.next()).value as Uint8Array)).toBe('ping');
    call.cancel();
    await expect(it.next()).rejects.toMatchObject({ grpcCode: GrpcCode.CANCELLED });
    expect(await serverSaw).toMatchObject({ grpcCode: GrpcCode.CANCELLED });
    await waitUntil(() => loopEnded);
    expect(loopEnded).toBe(true);
    server.destroy();
  });

  test('the connection going away fails an open call with UNAVAILABLE on the client and aborts it on the server', async () => {
    let serverSignal: AbortSignal | undefined;
    const { server, client } = connectPair(
      new Map([
        [
          '/t.S/Hang',
          async (call) => {
            serverSignal = call.signal;
            await call.send(te.encode('started'));
            await new Promise<void>((r) => call.signal.addEventListener('abort', () => r()));
          },
        ],
      ]),
    );
    const call = client.stream('/t.S/Hang');
    const it = call.messages[Symbol.asyncIterator]();
    expect(td.decode((await it.next()).value as Uint8Array)).toBe('started');
    server.destroy();
    await expect(it.next()).rejects.toBeInstanceOf(GrpcStatusError);
    await waitUntil(() => serverSignal?.aborted === true);
    expect(serverSignal?.aborted).toBe(true);
  });
});

describe('gRPC streams: many sends in flight at once', () => {
  test('sends not awaited (a process output callback, stdin beside a signal) all arrive in order, without a listener per pending send', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const { server, client } = connectPair(
        new Map([
          [
            '/t.S/Burst',
            async (call) => {
              const it = call.messages[Symbol.asyncIterator]();
              await it.next();
              const sends: Promise<void>[] = [];
              for (let i = 0; i < 64; i++) sends.push(call.send(new Uint8Array(32 * 1024).fill(i)));
              await Promise.all(sends);
            },
          ],
          [
            '/t.S/Sink',
            async (call) => {
              let n = 0;
              for await (const m of call.messages) n += m.byteLength;
              await call.send(te.encode(String(n)));
            },
          ],
        ]),
      );
      const call = client.stream('/t.S/Burst');
      await call.send(te.encode('go'));
      const got: number[] = [];
      for await (const m of call.messages) got.push(m[0] ?? -1);
      expect(got).toEqual([...Array(64).keys()]);

      const up = client.stream('/t.S/Sink');
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 64; i++) sends.push(up.send(new Uint8Array(32 * 1024)));
      await Promise.all(sends);
      up.end();
      expect(await collect(up.messages)).toEqual([String(64 * 32 * 1024)]);
      // The warning is emitted on a later tick.
      await new Promise((r) => setTimeout(r, 10));
      expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
      server.destroy();
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('gRPC streams: flow control reaches the peer when a reader is slow', () => {
  const MiB = new Uint8Array(1 << 20);
  /** A server whose `/t.S/Deaf` handler never reads its messages (it waits for the call to end). */
  function deafPair(): { server: GrpcServer; client: GrpcClient } {
    return connectPair(
      new Map([
        [
          '/t.S/Deaf',
          async (call) => {
            await new Promise<void>((r) => call.signal.addEventListener('abort', () => r()));
          },
        ],
      ]),
    );
  }

  test('a server handler that does not read its messages stops the client sending (no unbounded queue on the server)', async () => {
    const { server, client } = deafPair();
    const call = client.stream('/t.S/Deaf');
    // 64 MiB offered; buildkitd (grpc-go) stops reading at its flow-control window.
    const sent = await sendFor((m) => call.send(m), MiB, 64, 1500);
    expect(sent).toBeGreaterThan(0); // it was sending before it stopped
    expect(sent).toBeLessThan(32);
    // The paused stream holds its own window only: unary calls (ReleaseContainer, Return) still
    // pass both ways with more than a connection window (64 KiB) of data.
    const large = new Uint8Array(300 * 1024).fill(7);
    expect(Buffer.from(await client.call('/t.S/Unary', large)).equals(Buffer.from(large))).toBe(true);
    call.cancel();
    server.destroy();
  });

  test('bytes count as well as messages: large messages to a handler that does not read stop the client after a few MiB', async () => {
    const { server, client } = deafPair();
    const call = client.stream('/t.S/Deaf');
    const sent = await sendFor((m) => call.send(m), new Uint8Array(8 << 20), 16, 1500);
    // 16 messages of 8 MiB would all be queued by a message count alone.
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(4);
    call.cancel();
    server.destroy();
  });

  test('a client that does not read the answers stops the server sending (no unbounded queue on the client)', async () => {
    let sent = 0;
    const { server, client } = connectPair(
      new Map([
        [
          '/t.S/Flood',
          async (call) => {
            for (let i = 0; i < 64; i++) {
              await call.send(MiB);
              sent++;
            }
          },
        ],
      ]),
    );
    const call = client.stream('/t.S/Flood');
    await call.send(te.encode('go'));
    await new Promise((r) => setTimeout(r, 1500));
    expect(sent).toBeLessThan(32);
    // Reading lets the rest through, all of it.
    let read = 0;
    for await (const m of call.messages) if (m.byteLength === MiB.byteLength) read++;
    expect(read).toBe(64);
    server.destroy();
  });
});

/** Polls `cond` every 5 ms for up to 1 s; the caller's expect then checks it. */
async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}
