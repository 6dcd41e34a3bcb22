import type { Dispatcher } from 'undici';
import { proxyFailure, proxyRouter } from './proxy-dispatcher.js';
import { proxyFor, proxyVariableSet } from './proxy-env.js';
import { trustedFetch } from './trust.js';
import { undiciFetch, type TlsSettings } from './undici.js';

type Fetch = typeof globalThis.fetch;

/**
 * A fetch that honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY (Go's rules, see proxyFor) of this
 * process's environment, read per request: a request the environment sends direct goes to
 * `direct` unchanged (so with no proxy variable set nothing else runs: no undici load, no new
 * connection pool), unless it is redirected while a proxy variable is set (then it is sent again
 * as the others, each hop deciding); any other goes through undici with `proxyRouter`, which also applies
 * `tls` (the server's CA, client certificates, insecure) inside the proxy's tunnel. A failure at
 * the proxy is thrown as a ProxyError (KLN0880) naming the proxy and its variable.
 */
export function proxyAwareFetch(direct: Fetch, tls?: TlsSettings): Fetch {
  return async (input, init) => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    // The common case, no proxy variable at all: nothing parsed or matched.
    if (!proxyVariableSet()) return direct(input, init);
    // (throws the ProxyError of a variable that names no proxy)
    if (proxyFor(href) === undefined) {
      if (!followsRedirects(input, init)) return direct(input, init);
      // Each redirect hop is a new request, which the environment may send through a proxy (Go
      // asks its Proxy func per request): a redirect answered here is sent again through the
      // router, which decides per hop (the first hop, direct, is asked twice: redirects only).
      const res = await direct(input, { ...init, redirect: 'manual' });
      if (!REDIRECTS.has(res.status) || !res.headers.has('location')) return res;
      await res.body?.cancel().catch(() => undefined);
    }
    const router = await proxyRouter(tls);
    // The origin of the last hop sent: the one that failed, if the request fails (a redirect
    // hop may go through another proxy than the first, or through one when the first went direct).
    let hop = new URL(href);
    const recorder = {
      dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
        if (opts.origin !== undefined) hop = new URL(String(opts.origin));
        return router.dispatch(opts, handler);
      },
    };
    const fetch = await undiciFetch(recorder);
    try {
      return await fetch(input, init);
    } catch (e) {
      if (init?.signal?.aborted === true) throw e;
      throw proxyFailure(e, hop) ?? e;
    }
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Methods that may be sent again without effect. */
const SAFE: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/**
 * Whether fetch would follow this request's redirects itself, and it can be sent twice: a GET or
 * HEAD (a POST answered with a redirect has been acted on: sent again it would run twice) without
 * a body, or with one held in memory (a stream is read by the first send; kiln sends those with
 * `redirect: 'error'`).
 */
function followsRedirects(input: Parameters<Fetch>[0], init: RequestInit | undefined): boolean {
  if (input instanceof Request) return init === undefined && SAFE.has(input.method) && input.redirect === 'follow' && input.body === null;
  if (!SAFE.has((init?.method ?? 'GET').toUpperCase())) return false;
  const body = init?.body;
  const replayable = body === undefined || body === null || typeof body === 'string' || body instanceof URLSearchParams || body instanceof Uint8Array || body instanceof ArrayBuffer;
  return (init?.redirect ?? 'follow') === 'follow' && replayable;
}

/**
 * Node's global fetch with kiln's CAs (the system's too: see trustedFetch), through the
 * environment's proxies (see {@link proxyAwareFetch}).
 */
export const proxiedGlobalFetch: Fetch = proxyAwareFetch(trustedFetch);
