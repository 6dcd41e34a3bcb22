import { isIP, type Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { ProxyError, proxyName, refusedTunnel } from './proxy-error.js';
import { parseIp, type ProxySetting } from './proxy-env.js';

type Connector = buildConnector.connector;

/** Errors raised while reaching a proxy itself (its TCP connection or TLS handshake): read by proxyFailure. */
export const atProxy = new WeakSet<object>();

/**
 * An undici connector that reaches each origin through the SOCKS5 proxy `proxy` (RFC 1928,
 * CONNECT only), as Go's transport does for `socks5://` and `socks5h://`: the host name is sent
 * to the proxy, which resolves it (an IP address is sent as one); a user in the proxy URL offers
 * username/password authentication (RFC 1929) besides none. https origins then get TLS over the
 * tunnel from `tlsConnect` (the server's TLS settings); http ones the bare tunnel.
 * `tcpConnect` opens the connection to the proxy (undici's, for its connect timeout).
 */
export function socks5Connector(proxy: ProxySetting, tcpConnect: Connector, tlsConnect: Connector): Connector {
  const port = proxy.url.port === '' ? '1080' : proxy.url.port;
  return (opts, callback) => {
    // URL hostnames keep IPv6 brackets; the SOCKS request wants the bare address.
    const host = opts.hostname.replace(/^\[(.*)\]$/, '$1');
    const targetPort = Number(opts.port !== '' && opts.port !== undefined ? opts.port : opts.protocol === 'https:' ? 443 : 80);
    tcpConnect({ hostname: proxy.url.hostname.replace(/^\[(.*)\]$/, '$1'), host: proxy.url.host, protocol: 'http:', port }, (err, socket) => {
      if (err !== null) {
        atProxy.add(err);
        callback(err, null);
        return;
      }
      // A proxy that accepts the connection but does not answer (undici's connect timeout, 10 s).
      const timer = setTimeout(() => socket.destroy(new ProxyError(`${proxyName(proxy)} did not answer the SOCKS5 handshake`, { hint: `check ${proxy.variable} (the port of a SOCKS5 proxy, often 1080)` })), HANDSHAKE_TIMEOUT);
      handshake(socket, proxy, host, targetPort).then(
        () => {
          clearTimeout(timer);
          if (opts.protocol !== 'https:') callback(null, socket);
          else tlsConnect({ ...opts, httpSocket: socket }, callback);
        },
        (e: unknown) => {
          clearTimeout(timer);
          socket.destroy();
          const error = e instanceof Error ? e : new Error(String(e));
          atProxy.add(error);
          callback(error, null);
        },
      );
    });
  };
}

const HANDSHAKE_TIMEOUT = 10_000;

const REPLIES: Readonly<Record<number, string>> = {
  1: 'general failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

/** The SOCKS5 greeting, authentication and CONNECT on `socket`; resolves when the tunnel is open. */
async function handshake(socket: Socket, proxy: ProxySetting, host: string, port: number): Promise<void> {
  const read = reader(socket, proxy);
  const credentials = proxy.username !== undefined || proxy.password !== undefined;
  // Go offers "no authentication" too when the URL has a user: the proxy picks.
  socket.write(Buffer.from(credentials ? [5, 2, 0, 2] : [5, 1, 0]));
  const [version, method] = await read(2);
  if (version !== 5) throw notSocks(proxy, `it answered version ${String(version)}`);
  if (method === 2 && credentials) {
    const user = Buffer.from(proxy.username ?? '');
    const password = Buffer.from(proxy.password ?? '');
    if (user.length === 0 || user.length > 255 || password.length > 255) {
      throw new ProxyError(`${proxyName(proxy)}: the user or password in ${proxy.variable} is too long or empty for SOCKS5 (1 to 255 bytes)`, { hint: `correct the user and password in ${proxy.variable}` });
    }
    socket.write(Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([password.length]), password]));
    const [, status] = await read(2);
    if (status !== 0) throw new ProxyError(`${proxyName(proxy)} refused the credentials in ${proxy.variable}`, { hint: `check the user and password in ${proxy.variable} (URL-encode special characters)` });
  } else if (method === 2 || method === 0xff) {
    throw credentials
      ? new ProxyError(`${proxyName(proxy)} accepts none of the SOCKS5 authentication methods kiln offers (none, username/password)`, { hint: `ask the proxy's administrator for a user and password, given in ${proxy.variable}` })
      : new ProxyError(`${proxyName(proxy)} requires credentials`, { hint: `give them in the proxy URL: ${proxy.variable}=${proxy.url.protocol}//USER:PASSWORD@${proxy.url.host}` });
  } else if (method !== 0) {
    throw notSocks(proxy, `it chose authentication method ${String(method)}, which was not offered`);
  }
  socket.write(connectRequest(proxy, host, port));
  const [v, reply, , type] = await read(4);
  if (v !== 5) throw notSocks(proxy, `it answered version ${String(v)}`);
  // The reply code first, as Go's client reads it: a proxy that refuses may send no valid bound
  // address (or close before it), and the refusal is what the user needs to see.
  if (reply !== 0) {
    const address = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
    throw refusedTunnel(proxy, address, host, `SOCKS5: ${REPLIES[reply ?? 1] ?? `reply ${String(reply)}`}`);
  }
  // The bound address, unused (its length depends on its type).
  const rest = type === 1 ? 4 : type === 4 ? 16 : type === 3 ? ((await read(1))[0] ?? 0) : undefined;
  if (rest === undefined) throw notSocks(proxy, `it answered address type ${String(type)}`);
  await read(rest + 2);
}

/** The CONNECT request, its address typed as Go's SOCKS client types it (an IPv4-mapped IPv6 one as IPv4). */
function connectRequest(proxy: ProxySetting, host: string, port: number): Buffer {
  const ip = parseIp(host);
  let addr: Buffer;
  if (ip !== undefined) addr = Buffer.concat([Buffer.from([ip.length === 4 ? 1 : 4]), ip]);
  else {
    const name = Buffer.from(host, 'ascii');
    // Its length is one byte: Go's client refuses a longer name too (FQDN too long).
    if (name.length > 255) throw new ProxyError(`cannot ask ${proxyName(proxy)} for ${host.slice(0, 40)}…: a SOCKS5 host name is at most 255 bytes (this one is ${name.length})`, { hint: `use a shorter name or the host's address, or an HTTP proxy in ${proxy.variable}` });
    addr = Buffer.concat([Buffer.from([3, name.length]), name]);
  }
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, 1, 0]), addr, p]);
}

function notSocks(proxy: ProxySetting, detail: string): ProxyError {
  return new ProxyError(`${proxyName(proxy)} does not speak SOCKS5 (${detail})`, { hint: `check the scheme and port in ${proxy.variable} (http:// for an HTTP proxy)` });
}

/**
 * Reads exact byte counts from `socket` in paused mode ('readable', as undici's own client reads,
 * so the socket is handed over with nothing lost). A close before the bytes arrive is a ProxyError.
 */
function reader(socket: Socket, proxy: ProxySetting): (n: number) => Promise<Buffer> {
  return (n) =>
    new Promise<Buffer>((resolve, reject) => {
      const done = (): void => {
        socket.off('readable', onReadable);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        socket.off('error', onError);
      };
      const onReadable = (): void => {
        const b = socket.read(n) as Buffer | null;
        if (b === null) return;
        done();
        if (b.length < n) onEnd();
        else resolve(b);
      };
      const onEnd = (): void => {
        done();
        reject(notSocks(proxy, 'it closed the connection during the SOCKS5 handshake'));
      };
      const onError = (e: Error): void => {
        done();
        reject(e);
      };
      socket.on('readable', onReadable);
      socket.once('end', onEnd);
      socket.once('close', onEnd);
      socket.once('error', onError);
      onReadable();
    });
}
