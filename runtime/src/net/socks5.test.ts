import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { buildConnector } from 'undici';
import { parseProxyValue } from './proxy-env.js';
import { socks5Connector } from './socks5.js';

// kiln's SOCKS5 client (RFC 1928/1929) against scripted proxies: each answer is written as the
// script says (byte by byte, or cut short), to check what the client reads and reports.

/** One step of a scripted proxy: bytes it reads from the client, then bytes it writes. */
interface Step {
  readonly read: number;
  readonly write?: readonly number[];
  /** Write the answer one byte per TCP segment (a short pause between them). */
  readonly bytewise?: boolean;
  /** Close the connection after this step's answer. */
  readonly close?: boolean;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** A proxy on 127.0.0.1 that runs `script` on each connection; `got` collects what it read. */
async function scripted(script: readonly Step[]): Promise<{ port: number; got: Buffer[] }> {
  const got: Buffer[] = [];
  const server = createServer((c: Socket) => {
    c.on('error', () => undefined);
    void (async () => {
      for (const step of script) {
        const b = await new Promise<Buffer>((resolve, reject) => {
          const tryRead = (): void => {
            const x = c.read(step.read) as Buffer | null;
            if (x === null) return;
            c.off('readable', tryRead);
            resolve(x);
          };
          c.on('readable', tryRead);
          c.once('close', () => reject(new Error('closed')));
          tryRead();
        });
        got.push(b);
        const out = step.write ?? [];
        if (step.bytewise === true) {
          for (const byte of out) {
            c.write(Buffer.from([byte]));
            await new Promise((r) => setTimeout(r, 5));
          }
        } else if (out.length > 0) c.write(Buffer.from(out));
        if (step.close === true) {
          c.end();
          return;
        }
      }
    })().catch(() => c.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, got };
}

type Connected = { socket: Socket } | { error: Error };

/** Connects to http://`target` through the SOCKS5 proxy `url`. */
function connectVia(url: string, target = 'registry.test', port = '5000'): Promise<Connected> {
  const connector = socks5Connector(parseProxyValue('HTTP_PROXY', url), buildConnector({}), () => {
    throw new Error('no TLS here');
  });
  return new Promise((resolve) => {
    connector({ hostname: target, host: `${target}:${port}`, protocol: 'http:', port }, (err, socket) => {
      if (err !== null) resolve({ error: err });
      else resolve({ socket: socket as Socket });
    });
  });
}

const CONNECT_NAME = (name: string, port: number): number[] => [5, 1, 0, 3, name.length, ...Buffer.from(name), port >> 8, port & 0xff];

describe('socks5Connector', () => {
  test('answers cut into single bytes (greeting, login, CONNECT reply with a name as bound address) are read whole', async () => {
    const name = 'registry.test';
    const bound = Buffer.from('bound.example');
    const proxy = await scripted([
      { read: 4, write: [5, 2], bytewise: true },
      { read: 2 + 3 + 1 + 2, write: [1, 0], bytewise: true },
      { read: 7 + name.length, write: [5, 0, 0, 3, bound.length, ...bound, 0x1f, 0x90], bytewise: true },
      { read: 4, write: [...Buffer.from('pong')] },
    ]);
    const r = await connectVia(`socks5h://bob:pw@127.0.0.1:${proxy.port}`);
    if (!('socket' in r)) throw r.error;
    // Nothing of the reply is left for the tunnel: the first bytes read are the server's.
    r.socket.write('ping');
    const pong = await new Promise<Buffer>((resolve) => r.socket.once('data', resolve));
    r.socket.destroy();
    expect(pong.toString()).toBe('pong');
    expect(proxy.got.map((b) => [...b])).toEqual([[5, 2, 0, 2], [1, 3, ...Buffer.from('bob'), 2, ...Buffer.from('pw')], CONNECT_NAME(name, 5000), [...Buffer.from('ping')]]);
  });

  test("a refusal is reported by its reply code as soon as the reply's first 4 bytes say so (as Go's client), even when the proxy sends no bound address", async () => {
    const proxy = await scripted([
      { read: 3, write: [5, 0] },
      { read: 7 + 'registry.test'.length, write: [5, 5, 0, 0], close: true },
    ]);
    const r = await connectVia(`socks5://127.0.0.1:${proxy.port}`);
    expect('error' in r && r.error.message).toBe(`proxy socks5://127.0.0.1:${proxy.port} (from HTTP_PROXY) would not open a connection to registry.test:5000 (SOCKS5: connection refused)`);
  });

  test('a proxy that closes mid-reply is not SOCKS5; one that answers another version neither', async () => {
    const cut = await scripted([
      { read: 3, write: [5, 0] },
      { read: 7 + 'registry.test'.length, write: [5, 0, 0, 1, 127], close: true },
    ]);
    const r = await connectVia(`socks5://127.0.0.1:${cut.port}`);
    expect('error' in r && r.error.message).toContain('does not speak SOCKS5 (it closed the connection during the SOCKS5 handshake)');
    const v4 = await scripted([{ read: 3, write: [0, 0x5a], close: true }]);
    const r4 = await connectVia(`socks5://127.0.0.1:${v4.port}`);
    expect('error' in r4 && r4.error.message).toContain('does not speak SOCKS5 (it answered version 0)');
  });

  test('an address is sent as one (IPv4; IPv6 as 16 bytes; IPv4-mapped IPv6 as IPv4, as Go types it), a name over 255 bytes is refused before it is sent', async () => {
    const cases: Array<[string, number[]]> = [
      ['10.1.2.3', [1, 10, 1, 2, 3]],
      ['2001:db8::1', [4, 0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 1]],
      ['::ffff:10.1.2.3', [1, 10, 1, 2, 3]],
    ];
    for (const [host, addr] of cases) {
      const proxy = await scripted([
        { read: 3, write: [5, 0] },
        { read: 3 + addr.length + 2, write: [5, 5, 0, 1, 0, 0, 0, 0, 0, 0], close: true },
      ]);
      const r = await connectVia(`socks5://127.0.0.1:${proxy.port}`, host.includes(':') ? `[${host}]` : host);
      expect('error' in r && r.error.message).toContain('(SOCKS5: connection refused)');
      expect(proxy.got.map((b) => [...b])[1]).toEqual([5, 1, 0, ...addr, 0x13, 0x88]);
    }
    const long = `${'a'.repeat(63)}.`.repeat(4) + 'test';
    const proxy = await scripted([{ read: 3, write: [5, 0] }]);
    const r = await connectVia(`socks5h://127.0.0.1:${proxy.port}`, long);
    expect('error' in r && r.error.message).toContain(`a SOCKS5 host name is at most 255 bytes (this one is ${long.length})`);
    expect(proxy.got).toHaveLength(1);
  });
});
