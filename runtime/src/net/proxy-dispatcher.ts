import type { Dispatcher, ProxyAgent, buildConnector } from 'undici';
import { isIP } from 'node:net';
import { ProxyError, proxyName, refusedTunnel } from './proxy-error.js';
import { proxyFor, type ProxySetting } from './proxy-env.js';
import { atProxy, socks5Connector } from './socks5.js';
import { loadUndici, tlsConnectOptions, type TlsSettings } from './undici.js';

/**
 * The undici dispatcher kiln sends requests with while a proxy variable is set: each request
 * (each redirect hop too, as Go's transport asks its Proxy func per request) goes through the
 * proxy the environment names for its origin, or directly; both with the TLS settings of `tls`
 * for the server. One per TLS settings object (kept while that object lives).
 */
export function proxyRouter(tls?: TlsSettings): Promise<Dispatcher> {
  if (tls === undefined) return (plainRouter ??= makeRouter(undefined));
  let r = routers.get(tls);
  if (r === undefined) routers.set(tls, (r = makeRouter(tls)));
  return r;
}

let plainRouter: Promise<Dispatcher> | undefined;
const routers = new WeakMap<TlsSettings, Promise<Dispatcher>>();

async function makeRouter(tls: TlsSettings | undefined): Promise<Dispatcher> {
  const { Agent, Dispatcher: Base, Pool, ProxyAgent, buildConnector } = await loadUndici();
  // (kiln's trust, see trust.ts, also without settings: Node's default CAs are the bundled ones only)
  const requestTls = tlsConnectOptions(tls);
  const direct = new Agent({ connect: requestTls });
  const proxies = new Map<string, Dispatcher>();
  const via = (p: ProxySetting): Dispatcher => {
    let d = proxies.get(p.key);
    if (d !== undefined) return d;
    if (p.url.protocol === 'socks5:' || p.url.protocol === 'socks5h:') {
      // kiln's own SOCKS5 client (socks5.ts), not undici's: that one is experimental (it prints
      // an ExperimentalWarning), offers a user only with a password, and sends bracketed IPv6.
      d = new Agent({ connect: socks5Connector(p, buildConnector({}), buildConnector({ ...requestTls })) });
    } else {
      const credentials = p.username !== undefined || p.password !== undefined;
      // The URI never holds the credentials, so no undici error can show them.
      const opts: ProxyAgent.Options = {
        uri: p.url.href,
        // Go sends Proxy-Authorization for a URL user even without a password (undici only with both).
        ...(credentials ? { token: `Basic ${Buffer.from(`${p.username ?? ''}:${p.password ?? ''}`).toString('base64')}` } : {}),
        // http URLs are forwarded (absolute-form request), https ones tunnelled with CONNECT, as
        // Go's transport does: proxies often allow CONNECT to port 443 only.
        proxyTunnel: false,
        requestTls,
        // The handshake with an https:// proxy uses the request's TLS settings too (Go's transport
        // uses its one TLSClientConfig for both): the registry host's ca trusts the proxy as well.
        ...(p.url.protocol === 'https:' ? { proxyTls: requestTls } : {}),
        // The connections to the proxy itself: their failures are the proxy's (proxyFailure), a
        // TLS one included, which would otherwise read as the server's.
        clientFactory: (origin: URL, o: object) => {
          const { connect } = o as { connect: buildConnector.connector };
          return new Pool(origin, {
            ...o,
            // (an IP address is no TLS server name: Node warns, DEP0123, when given one)
            connect: ({ servername, ...co }, cb) =>
              connect({ ...co, ...(servername === undefined || isIP(servername) !== 0 ? {} : { servername }) }, (err, socket) => {
                if (err !== null) atProxy.add(err);
                (cb as (e: Error | null, s: unknown) => void)(err, socket);
              }),
          });
        },
      };
      d = new ProxyAgent(opts);
    }
    proxies.set(p.key, d);
    return d;
  };
  class Router extends Base {
    override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      const origin = opts.origin;
      const proxy = origin === undefined ? undefined : proxyFor(String(origin));
      return (proxy === undefined ? direct : via(proxy)).dispatch(opts, handler);
    }
    override async close(): Promise<void> {
      await Promise.all([direct.close(), ...[...proxies.values()].map((d) => d.close())]);
    }
    override async destroy(): Promise<void> {
      await Promise.all([direct.destroy(), ...[...proxies.values()].map((d) => d.destroy())]);
    }
  }
  return new Router() as unknown as Dispatcher;
}

/**
 * The {@link ProxyError} for a request to `target` that failed at its proxy (the proxy the
 * environment names for it): refused or unreachable, a name that does not resolve, a 407, a
 * tunnel it would not open, a TLS failure with an https proxy. Undefined for other failures
 * (the server's own, which reach the caller as they are).
 */
export function proxyFailure(e: unknown, target: URL): ProxyError | undefined {
  // (a variable that names no proxy, thrown by the router for a redirect hop; a SOCKS5 refusal)
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) if (c instanceof ProxyError) return c;
  let proxy: ProxySetting | undefined;
  try {
    proxy = proxyFor(target);
  } catch (err) {
    return err instanceof ProxyError ? err : undefined;
  }
  if (proxy === undefined) return undefined;
  const v = proxy.variable;
  const named = proxyName(proxy);
  const port = proxy.url.port !== '' ? proxy.url.port : proxy.url.protocol === 'https:' ? '443' : proxy.url.protocol.startsWith('socks5') ? '1080' : '80';
  const bypass = `to reach ${target.hostname} without a proxy, add it to NO_PROXY`;
  // host:port as in the CONNECT request (URL.host leaves the scheme's default port out)
  const address = target.port !== '' ? target.host : `${target.host}:${target.protocol === 'https:' ? 443 : 80}`;
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    const err = c as Error & { code?: unknown; port?: unknown; hostname?: unknown };
    const status = /Proxy response \((\d+)\) !== 200/.exec(err.message)?.[1] ?? (/Proxy Authentication Required \(407\)/.test(err.message) ? '407' : undefined);
    if (status === '407') {
      return proxy.username === undefined
        ? new ProxyError(`${named} requires credentials (407 Proxy Authentication Required)`, { hint: `give them in the proxy URL: ${v}=${proxy.url.protocol}//USER:PASSWORD@${proxy.url.host}`, cause: e })
        : new ProxyError(`${named} refused the credentials in ${v} (407 Proxy Authentication Required)`, { hint: `check the user and password in ${v} (URL-encode special characters)`, cause: e });
    }
    if (status !== undefined) return refusedTunnel(proxy, address, target.hostname, status, e);
    const tagged = atProxy.has(err);
    const atPort = tagged || String(err.port) === port || String(err.hostname) === proxy.url.hostname || err.message.includes(`${proxy.url.hostname}:${port}`);
    if (atPort && err.code === 'ECONNREFUSED') return new ProxyError(`${named} refused the connection`, { hint: `start the proxy or correct ${v}; ${bypass}`, cause: e });
    if (atPort && (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN')) {
      return new ProxyError(`${named}: ${proxy.url.hostname} does not resolve`, { hint: `correct the proxy host in ${v}; ${bypass}`, cause: e });
    }
    if (atPort && (err.code === 'ETIMEDOUT' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'UND_ERR_CONNECT_TIMEOUT')) {
      return new ProxyError(`${named} did not answer (${String(err.code)})`, { hint: `check ${v} and the network path to the proxy; ${bypass}`, cause: e });
    }
    // Any other failure of a connection to an https:// proxy is its TLS handshake's (an untrusted
    // or misnamed certificate, a proxy that speaks no TLS): not the server's, whose TLS comes after.
    if (err.code === 'UND_ERR_PRX_TLS' || (tagged && proxy.url.protocol === 'https:')) {
      const detail = err.code === 'UND_ERR_PRX_TLS' && err.cause instanceof Error ? err.cause : err;
      const code = (detail as { code?: unknown }).code;
      return new ProxyError(`${named}: the TLS handshake with the proxy failed (${typeof code === 'string' ? `${code}: ` : ''}${detail.message})`, {
        hint: `trust the proxy's certificate authority (NODE_EXTRA_CA_CERTS=FILE or SSL_CERT_FILE=FILE, a PEM file, in kiln's environment, or the system's CA store: update-ca-certificates), or use an http:// URL in ${v} if the proxy speaks no TLS`,
        cause: e,
      });
    }
    if (tagged) return new ProxyError(`${named}: the connection to the proxy failed (${typeof err.code === 'string' ? `${err.code}: ` : ''}${err.message})`, { hint: `check ${v} and the network path to the proxy; ${bypass}`, cause: e });
  }
  return undefined;
}
