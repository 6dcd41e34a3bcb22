import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageStoreError } from '../content/errors.js';
import { basicAuthorization, parseWwwAuthenticate, type AuthChallenge, type CredentialProvider, type RegistryCredentials } from './auth.js';
import { hasTlsSettings, hostScheme, type RegistryHostOptions, type RegistryHosts } from './hosts.js';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN } from './reference.js';
import { ProxyError } from '../net/proxy-error.js';
import { proxyAwareFetch } from '../net/proxy-fetch.js';
import { trustedFetch } from '../net/trust.js';
import { tlsProblem, type TlsProblem } from '../net/tls-problem.js';
import { tlsFetch } from './tls-fetch.js';
import { untilAborted } from '../api/until-aborted.js';

export type { RegistryHostOptions } from './hosts.js';

/** Options shared by the registry transport and client. */
export interface RegistryTransportOptions {
  readonly credentials?: CredentialProvider | undefined;
  /** Settings keyed by registry host (`myreg:5000`, `docker.io`): scheme, TLS, mirrors. */
  readonly hosts?: RegistryHosts | undefined;
  /** Attempts after the first on 5xx/429 and dropped connections (default 4). */
  readonly retries?: number | undefined;
  /** First backoff delay; doubles each attempt (default 200 ms). */
  readonly retryBaseMs?: number | undefined;
  /**
   * The fetch for requests sent directly (default: Node's global fetch with kiln's CAs, the
   * system's included: see trustedFetch); hosts with TLS settings
   * use their own for https, and a request the environment's HTTP(S)_PROXY applies to goes
   * through that proxy with undici instead (see proxyAwareFetch).
   */
  readonly fetch?: typeof globalThis.fetch | undefined;
  /** Makes the fetch for https to a host with TLS settings (default: undici with those settings, see tlsFetch). */
  readonly tlsFetch?: ((host: RegistryHostOptions) => typeof globalThis.fetch) | undefined;
  readonly userAgent?: string | undefined;
}

/** A request the transport may send several times, so bodies come from a factory. */
export interface RegistryRequest {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** `/v2/...` relative to the registry, or an absolute URL (upload `Location`s). */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly body?: (() => Promise<RequestBody>) | undefined;
  /** Token scopes, e.g. `repository:library/busybox:pull`. */
  readonly scopes: ReadonlyArray<string>;
  readonly signal?: AbortSignal | undefined;
  /** Set false for requests that must not be repeated (a non-idempotent PATCH). Default true. */
  readonly retry?: boolean | undefined;
}

/** A request body: bytes or a stream of chunks. */
export type RequestBody = Uint8Array | AsyncIterable<Uint8Array> | undefined;

interface HostAuth {
  challenge?: AuthChallenge;
  /** Token per scope set; a pending fetch is shared so parallel layer requests ask once. */
  tokens: Map<string, Promise<{ token: string; expires: number }>>;
}

/** A token fetch in flight: the requests waiting for it, and how to cancel it when none is left. */
interface TokenFetch {
  waiters: number;
  readonly cancel: AbortController;
}

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);

/**
 * HTTP for the distribution API: picks http/https per host, authenticates from
 * `WWW-Authenticate` challenges (basic, or bearer tokens fetched from the realm per scope and
 * cached), and retries with exponential backoff on 5xx/429 and network errors.
 */
export class RegistryTransport {
  private readonly auth = new Map<string, HostAuth>();
  private readonly tokenFetches = new WeakMap<Promise<{ token: string; expires: number }>, TokenFetch>();
  private readonly fetchImpl: typeof globalThis.fetch;
  /** Per host with TLS settings: the fetch that applies them (see tlsFetch). */
  private readonly tlsFetches = new Map<string, typeof globalThis.fetch>();
  /** `https-then-http` hosts whose https attempt failed: plain http from then on (BuildKit's httpFallback). */
  private readonly fellBack = new Set<string>();

  constructor(private readonly opts: RegistryTransportOptions = {}) {
    this.fetchImpl = proxyAwareFetch(opts.fetch ?? trustedFetch);
  }

  /** The host settings this transport was made with. */
  get hosts(): RegistryHosts | undefined {
    return this.opts.hosts;
  }

  /** `http(s)://host` for a reference domain (Docker Hub → registry-1.docker.io). */
  baseUrl(domain: string): string {
    const host = domain === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : domain;
    const scheme = hostScheme(domain, this.opts.hosts?.[domain]);
    const plain = scheme === 'http' || (scheme === 'https-then-http' && this.fellBack.has(domain));
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  /** The fetch for a URL of `domain`'s requests: the host's TLS one for https when it has TLS settings. */
  private fetchFor(domain: string, url: string | URL): typeof globalThis.fetch {
    const opts = this.opts.hosts?.[domain];
    if (!String(url).startsWith('https:') || !hasTlsSettings(opts) || opts === undefined) return this.fetchImpl;
    let f = this.tlsFetches.get(domain);
    if (f === undefined) this.tlsFetches.set(domain, (f = (this.opts.tlsFetch ?? tlsFetch)(opts)));
    return f;
  }

  /** Sends a request, handling auth and retries. The caller consumes or cancels the body. */
  async request(domain: string, req: RegistryRequest): Promise<Response> {
    const absolute = req.url.startsWith('http://') || req.url.startsWith('https://');
    let url = absolute ? req.url : `${this.baseUrl(domain)}${req.url}`;
    // Credentials go to the registry only: an absolute URL elsewhere (an upload Location at a
    // storage service) is sent without them, as containerd drops its authorizer on a host change.
    const own = new URL(url).origin === new URL(this.baseUrl(domain)).origin;
    const maxRetries = req.retry === false ? 0 : (this.opts.retries ?? 4);
    let authRetried = false;
    let attempt = 0;
    for (;;) {
      req.signal?.throwIfAborted();
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'kiln', ...req.headers };
      const authz = own ? await this.authorization(domain, req.scopes, req.signal) : undefined;
      if (authz !== undefined) headers['authorization'] = authz;
      const body = req.body !== undefined ? await req.body() : undefined;
      const streamed = body !== undefined && !(body instanceof Uint8Array);
      let res: Response;
      try {
        // Following redirects makes fetch keep a copy of a streamed body to send it again: a whole
        // layer in memory per upload (246 MB peak pushing a 150 MB layer). Registries redirect
        // blob reads, not uploads, so a redirected upload fails instead (as a network error).
        const init: RequestInit & { duplex?: 'half' } = { method: req.method, headers, redirect: streamed ? 'error' : 'follow' };
        if (body !== undefined) {
          init.body = body as unknown as NonNullable<RequestInit['body']>;
          if (streamed) init.duplex = 'half';
        }
        if (req.signal !== undefined) init.signal = req.signal;
        res = await this.fetchFor(domain, url)(url, init);
      } catch (e) {
        if (req.signal?.aborted === true) throw e;
        // The proxy is as wrong on the next attempt, and plain http would go through it too.
        if (e instanceof ProxyError) throw new ImageStoreError('REGISTRY_UNREACHABLE', `${req.method} ${redact(url)}: ${e.message}`, { cause: e, hint: e.hint });
        const tls = url.startsWith('https:') ? tlsProblem(e) : undefined;
        // An insecure host that may speak plain http: https failed, so plain http from now on
        // (BuildKit's httpFallback: the server answered TLS in plain http, or nothing listens on 443.)
        const refused = (e as { cause?: { code?: unknown } }).cause?.code === 'ECONNREFUSED' && !/:\d+$/.test(domain);
        // (Requests in flight when another one fell back arrive here too: they switch the same way.)
        if ((tls?.kind === 'plain-http' || refused) && !absolute && hostScheme(domain, this.opts.hosts?.[domain]) === 'https-then-http') {
          this.fellBack.add(domain);
          url = `${this.baseUrl(domain)}${req.url}`;
          continue;
        }
        // A certificate is as wrong on the next attempt: no retries.
        if (tls !== undefined) throw tlsError(domain, `${req.method} ${redact(url)}`, tls, e);
        // A redirected upload (see `streamed` above): sending it again would be redirected again.
        if (streamed && /redirect/i.test(String((e as { cause?: { message?: unknown } }).cause?.message))) {
          throw new ImageStoreError('REGISTRY_UNREACHABLE', `${req.method} ${redact(url)}: the registry redirected an upload, which kiln does not follow`, {
            cause: e,
            hint: 'push to the registry address its upload locations name, or through a proxy that does not redirect uploads',
          });
        }
        // fetch refuses a blocked port every time: waiting to try again only delays the error
        if (attempt < maxRetries && !isBadPort(e)) {
          await sleep(this.backoff(attempt++));
          continue;
        }
        throw new ImageStoreError('REGISTRY_UNREACHABLE', `${req.method} ${redact(url)}: ${errorText(e)}`, { cause: e, hint: connectHint(domain, e) ?? (url.startsWith('https:') ? httpsHint(domain, e, this.opts.hosts?.[domain]) : undefined) });
      }
      if (res.status === 401 && !authRetried && own) {
        const header = res.headers.get('www-authenticate');
        const challenge = header !== null ? pickChallenge(parseWwwAuthenticate(header)) : undefined;
        if (challenge !== undefined) {
          await res.body?.cancel().catch(() => undefined);
          const st = this.hostAuth(domain);
          st.challenge = challenge;
          // The rejected token is this identity's for these scopes (the cache key of authorization()).
          // A request sent without one rejected none: the token a parallel request is fetching stays.
          if (authz !== undefined) st.tokens.delete(`${scopeKey(req.scopes)}|${credentialIdentity(await this.opts.credentials?.(domain))}`);
          authRetried = true;
          continue;
        }
      }
      if (RETRY_STATUS.has(res.status) && attempt < maxRetries) {
        await res.body?.cancel().catch(() => undefined);
        await sleep(this.backoff(attempt++, res.headers.get('retry-after')));
        continue;
      }
      return res;
    }
  }

  private backoff(attempt: number, retryAfter?: string | null): number {
    const ra = retryAfter !== undefined && retryAfter !== null ? Number(retryAfter) : Number.NaN;
    if (Number.isFinite(ra) && ra >= 0) return Math.min(ra * 1000, 10_000);
    const base = (this.opts.retryBaseMs ?? 200) * 2 ** attempt;
    return base / 2 + Math.random() * (base / 2);
  }

  private hostAuth(domain: string): HostAuth {
    let st = this.auth.get(domain);
    if (st === undefined) {
      st = { tokens: new Map() };
      this.auth.set(domain, st);
    }
    return st;
  }

  private async authorization(domain: string, scopes: ReadonlyArray<string>, signal: AbortSignal | undefined): Promise<string | undefined> {
    const st = this.auth.get(domain);
    if (st?.challenge === undefined) return undefined;
    const creds = await this.opts.credentials?.(domain);
    if (st.challenge.scheme === 'basic') {
      if (creds?.kind !== 'basic') return undefined;
      return basicAuthorization(creds.username, creds.password);
    }
    if (st.challenge.scheme !== 'bearer') return undefined;
    // Tokens are cached per scope and per identity: one client (a kiln daemon) may serve callers
    // with different credentials, and one caller's token must not serve another.
    const key = `${scopeKey(scopes)}|${credentialIdentity(creds)}`;
    let pending = st.tokens.get(key);
    // A token fetched is used until it expires (a failed fetch is forgotten, see below).
    if (pending !== undefined && !this.tokenFetches.has(pending)) {
      const cached = await pending.catch(() => undefined);
      if (cached === undefined || cached.expires <= Date.now()) pending = undefined;
    }
    if (pending === undefined) {
      const cancel = new AbortController();
      const p = this.fetchToken(domain, st.challenge, scopes, creds, cancel.signal);
      st.tokens.set(key, (pending = p));
      this.tokenFetches.set(p, { waiters: 0, cancel });
      const settled = (): void => void this.tokenFetches.delete(p);
      p.then(settled, () => {
        settled();
        if (st.tokens.get(key) === p) st.tokens.delete(key);
      });
    }
    // A token request in flight is shared by every caller of these scopes (parallel layer
    // requests ask once). An aborted caller stops waiting for it (a token service that never
    // answers held Ctrl-C); when the last one has gone, the request is cancelled and forgotten,
    // so that the next caller asks again instead of waiting on it for ever (a daemon's later
    // builds did), as each containerd request's context cancels its token fetch.
    const inFlight = this.tokenFetches.get(pending);
    if (inFlight === undefined) return `Bearer ${(await pending).token}`;
    inFlight.waiters++;
    try {
      return `Bearer ${(await untilAborted(pending, signal)).token}`;
    } finally {
      if (--inFlight.waiters === 0 && signal?.aborted === true && this.tokenFetches.get(pending) === inFlight) {
        if (st.tokens.get(key) === pending) st.tokens.delete(key);
        inFlight.cancel.abort(signal.reason);
      }
    }
  }

  private async fetchToken(
    domain: string,
    challenge: AuthChallenge,
    scopes: ReadonlyArray<string>,
    creds: RegistryCredentials | undefined,
    signal: AbortSignal,
  ): Promise<{ token: string; expires: number }> {
    const realm = challenge.params['realm'];
    if (realm === undefined) throw new ImageStoreError('UNAUTHORIZED', `${domain}: bearer challenge without realm`);
    const service = challenge.params['service'];
    const allScopes = [...new Set([...scopes, ...(challenge.params['scope']?.split(' ').filter((s) => s !== '') ?? [])])];
    let res: Response;
    // The token service is reached with the registry's TLS settings, as buildkitd's resolver does.
    const fetch = this.fetchFor(domain, realm);
    try {
      if (creds?.kind === 'token') {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'kiln' });
        if (service !== undefined) form.set('service', service);
        if (allScopes.length > 0) form.set('scope', allScopes.join(' '));
        res = await fetch(realm, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' }, signal });
      } else {
        const u = new URL(realm);
        if (service !== undefined) u.searchParams.set('service', service);
        for (const s of allScopes) u.searchParams.append('scope', s);
        const headers: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'kiln' };
        if (creds?.kind === 'basic') headers['authorization'] = basicAuthorization(creds.username, creds.password);
        res = await fetch(u, { headers, signal });
      }
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      if (e instanceof ProxyError) throw new ImageStoreError('REGISTRY_UNREACHABLE', `${domain}: token service ${redact(realm)}: ${e.message}`, { cause: e, hint: e.hint });
      const tls = realm.startsWith('https:') ? tlsProblem(e) : undefined;
      if (tls !== undefined) throw tlsError(domain, `token service ${redact(realm)}`, tls, e);
      throw new ImageStoreError('REGISTRY_UNREACHABLE', `${domain}: token service ${redact(realm)} unreachable: ${errorText(e)}`, { cause: e });
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new ImageStoreError(res.status === 403 ? 'DENIED' : 'UNAUTHORIZED', `${domain}: token service refused ${creds === undefined ? 'anonymous ' : ''}access (${res.status})`, {
        hint: creds === undefined ? `log in: add credentials for ${domain} to ~/.docker/config.json` : `check the credentials for ${domain}`,
      });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      // JSON.parse's message quotes the text around the fault: part of a token. Named, not quoted.
      throw new ImageStoreError('UNAUTHORIZED', `${domain}: token service ${redact(realm)} answered with a body that is not JSON (${res.status})`, { hint: 'check the registry\'s token service (its realm)' });
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (token === undefined) throw new ImageStoreError('UNAUTHORIZED', `${domain}: token service returned no token`);
    const ttl = typeof body.expires_in === 'number' ? body.expires_in : 60;
    return { token, expires: Date.now() + Math.max(10, ttl - 10) * 1000 };
  }
}

/** fetch's refusal of the WHATWG "bad ports" (6000, 10080, 5060, 6665–6669…), made before connecting. */
function isBadPort(e: unknown): boolean {
  return (e as { cause?: { message?: unknown } }).cause?.message === 'bad port';
}

/**
 * The hint for a request that never reached a server: a name that does not resolve (a typo, or
 * no network: kiln is often run offline) or a port nobody listens on. The plain-http hint
 * would send the user to the kiln config for either.
 */
function connectHint(domain: string, e: unknown): string | undefined {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  const host = domain === 'docker.io' ? 'registry-1.docker.io' : domain;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return `${host} does not resolve: check the registry name, and that this machine has DNS and network access`;
  }
  if (code === 'ECONNREFUSED') return `nothing accepts connections at ${domain}: check the registry's host and port, and that it is running`;
  if (isBadPort(e)) {
    return `fetch, which kiln's registry client uses, never connects to port ${/:(\d+)$/.exec(domain)?.[1] ?? '?'} (a blocked port of the fetch standard): serve the registry on another port, e.g. 5000`;
  }
  return undefined;
}

/**
 * The hint for an https request that failed without a TLS error. A server that wants a client
 * certificate and got none closes the connection after a TLS 1.3 handshake, which fetch reports
 * only as "other side closed"; without a keypair, that is the likely cause.
 */
function httpsHint(domain: string, e: unknown, opts: RegistryHostOptions | undefined): string {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  if ((code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') && (opts?.keypairs?.length ?? 0) === 0) {
    return `the registry closed the connection: if it requires a client certificate, give one in the kiln config: [[registry."${domain}".keypair]] key = "…", cert = "…"; see docs/config.md`;
  }
  return `if ${domain} speaks plain http, set http = true under [registry."${domain}"] in the kiln config (docs/config.md)`;
}

/** The user-facing error for a TLS problem with `domain`, naming the kiln config key that fixes it. */
function tlsError(domain: string, what: string, p: TlsProblem, cause: unknown): ImageStoreError {
  const table = `[registry."${domain}"]`;
  switch (p.kind) {
    case 'untrusted':
      // The key to set is in the message too: a frontend that wraps this error keeps only the message.
      return new ImageStoreError('REGISTRY_UNREACHABLE', `${what}: the registry's TLS certificate is not trusted (${p.detail}); set ca (or insecure) under ${table} in the kiln config`, {
        cause,
        hint: `trust its CA in the kiln config: ${table} ca = ["/path/to/ca.pem"] (or insecure = true to skip verification), or for every host in the system's CA store (update-ca-certificates, or SSL_CERT_FILE=FILE in kiln's environment); see docs/config.md`,
      });
    case 'plain-http':
      return new ImageStoreError('REGISTRY_UNREACHABLE', `${what}: the registry does not speak TLS (${p.detail}); set http = true under ${table} in the kiln config if it serves plain http`, {
        cause,
        hint: `if ${domain} serves plain http, set ${table} http = true in the kiln config; see docs/config.md`,
      });
    case 'handshake':
      return new ImageStoreError('REGISTRY_UNREACHABLE', `${what}: the TLS handshake failed (${p.detail}); a client certificate goes under [[registry."${domain}".keypair]] in the kiln config`, {
        cause,
        hint: `if the registry requires a client certificate, give one in the kiln config: [[registry."${domain}".keypair]] key = "…", cert = "…"; see docs/config.md`,
      });
  }
}

function pickChallenge(cs: AuthChallenge[]): AuthChallenge | undefined {
  return cs.find((c) => c.scheme === 'bearer') ?? cs.find((c) => c.scheme === 'basic');
}

function scopeKey(scopes: ReadonlyArray<string>): string {
  return [...scopes].sort().join(' ');
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const c = (e as Error & { cause?: unknown }).cause;
    return c instanceof Error ? `${e.message} (${c.message})` : e.message;
  }
  return String(e);
}

/** Drops query strings (upload state, tokens) from URLs shown to users. */
function redact(url: string): string {
  const i = url.indexOf('?');
  return i < 0 ? url : url.slice(0, i);
}

/** A stable, non-secret name for a set of credentials (a hash, never the secret itself). */
function credentialIdentity(creds: RegistryCredentials | undefined): string {
  if (creds === undefined) return 'anonymous';
  const secret = creds.kind === 'basic' ? `basic\0${creds.username}\0${creds.password}` : `token\0${creds.identityToken}`;
  return createHash('sha256').update(secret).digest('hex').slice(0, 16);
}
