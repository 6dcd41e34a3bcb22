import type { ProxySetting } from './proxy-env.js';

/**
 * A request kiln sent through an HTTP(S) proxy failed at the proxy (it refused the connection,
 * does not resolve, wants credentials, would not open a tunnel), or a proxy variable names no
 * proxy. The message names the proxy (scheme, host and port: never its user or password) and
 * the variable it came from; the hint says what to change.
 */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly code = 'KLN0880';
  readonly hint: string;

  constructor(message: string, opts: { hint: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.hint = opts.hint;
  }
}

/** `proxy SCHEME://HOST:PORT (from VARIABLE)`: how messages name a proxy (never its credentials). */
export function proxyName(proxy: ProxySetting): string {
  return `proxy ${proxy.url.protocol}//${proxy.url.host} (from ${proxy.variable})`;
}

/** The proxy would not open a connection to `address` (`host:port`) for a request to `host`. */
export function refusedTunnel(proxy: ProxySetting, address: string, host: string, detail: string, cause?: unknown): ProxyError {
  return new ProxyError(`${proxyName(proxy)} would not open a connection to ${address} (${detail})`, {
    hint: `the proxy cannot reach ${address} or its rules refuse it: ask its administrator; to reach ${host} without a proxy, add it to NO_PROXY`,
    ...(cause === undefined ? {} : { cause }),
  });
}
