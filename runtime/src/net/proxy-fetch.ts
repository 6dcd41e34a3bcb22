import { proxyFailure, proxyRouter } from './proxy-dispatcher.js';
import { proxyFor } from './proxy-env.js';
import { undiciFetch, type TlsSettings } from './undici.js';

type Fetch = typeof globalThis.fetch;

/**
 * A fetch that honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY (Go's rules, see proxyFor) of this
 * process's environment, read per request: a request the environment sends direct goes to
 * `direct` unchanged (so with no proxy variable set nothing else runs: no undici load, no new
 * connection pool); any other goes through undici with {@link proxyRouter}, which also applies
 * `tls` (the server's CA, client certificates, insecure) inside the proxy's tunnel. A failure at
 * the proxy is thrown as a ProxyError (KLN0880) naming the proxy and its variable.
 */
export function proxyAwareFetch(direct: Fetch, tls?: TlsSettings): Fetch {
  return async (input, init) => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    // (parses the URL only when a proxy variable is set; throws the ProxyError of one that names no proxy)
    if (proxyFor(href) === undefined) return direct(input, init);
    const target = new URL(href);
    const fetch = await undiciFetch(await proxyRouter(tls));
    try {
      return await fetch(input, init);
    } catch (e) {
      if (init?.signal?.aborted === true) throw e;
      throw proxyFailure(e, target) ?? e;
    }
  };
}

/** Node's global fetch, through the environment's proxies (see {@link proxyAwareFetch}). */
export const proxiedGlobalFetch: Fetch = proxyAwareFetch((input, init) => globalThis.fetch(input, init));
