import { readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { connect, type Socket } from 'node:net';

/**
 * A forward HTTP proxy on 127.0.0.1, as corporate proxies (squid, tinyproxy) are: absolute-form
 * requests for http URLs, CONNECT tunnels for https. It resolves the names in `hosts` itself
 * (`registry.proxy.test` → 127.0.0.1), so a client can reach such a name only through it, and
 * it logs every request, so a test can tell what went through it.
 */
export interface TestProxy {
  /** `http://127.0.0.1:PORT` (`https://` with `tls`), without credentials. */
  readonly url: string;
  readonly port: number;
  /** Every request that reached the proxy: `GET http://host:port/path` or `CONNECT host:port`, and its Proxy-Authorization. */
  readonly log: Array<{ line: string; authorization: string | undefined }>;
  stop(): Promise<void>;
}

/** Options of {@link startProxy}. */
export interface StartProxyOptions {
  /** Names the proxy resolves to a local port: `{ 'registry.proxy.test': 5000 }` (any port asked for goes to this one). */
  readonly hosts: Readonly<Record<string, number>>;
  /** `user:password` the proxy requires (407 without it). */
  readonly credentials?: string;
  /** Serve TLS (an `https://` proxy): PEM files of its certificate and key. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** Starts the proxy; close it with `stop()`. */
export async function startProxy(opts: StartProxyOptions): Promise<TestProxy> {
  const log: TestProxy['log'] = [];
  const sockets = new Set<Socket>();
  const expected = opts.credentials === undefined ? undefined : `Basic ${Buffer.from(opts.credentials).toString('base64')}`;
  const allowed = (req: IncomingMessage): boolean => expected === undefined || req.headers['proxy-authorization'] === expected;
  const target = (host: string): number | undefined => opts.hosts[host.toLowerCase()];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    log.push({ line: `${req.method ?? ''} ${req.url ?? ''}`, authorization: req.headers['proxy-authorization'] });
    if (!allowed(req)) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="test"' }).end();
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('not a proxy request');
      return;
    }
    const port = target(url.hostname);
    if (port === undefined) {
      res.writeHead(502).end(`unknown host ${url.hostname}`);
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const up = request({ host: '127.0.0.1', port, method: req.method, path: `${url.pathname}${url.search}`, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  };
  const server: Server = opts.tls === undefined ? createServer(handler) : createTlsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, handler);
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    log.push({ line: `CONNECT ${req.url ?? ''}`, authorization: req.headers['proxy-authorization'] });
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    if (!allowed(req)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const host = (req.url ?? '').replace(/:\d+$/, '');
    const port = target(host);
    if (port === undefined) {
      client.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const up = connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    port,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Sets proxy variables in this process's environment (kiln reads them per request) until the
 * returned function restores them: test files share a worker.
 */
export function withProxyEnv(vars: Readonly<Record<string, string | undefined>>): () => void {
  const names = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];
  const saved = new Map(names.map((n) => [n, process.env[n]]));
  for (const n of names) delete process.env[n];
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) process.env[k] = v;
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
