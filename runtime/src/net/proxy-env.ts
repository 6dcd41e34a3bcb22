import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { ProxyError } from './proxy-error.js';

/** A proxy the environment names for some requests. */
export interface ProxySetting {
  /** The proxy's URL without user and password: safe to show. */
  readonly url: URL;
  /** The variable it came from (`HTTPS_PROXY`, `http_proxy`…), for messages. */
  readonly variable: string;
  /** The user and password of the proxy URL (decoded), sent as Proxy-Authorization; never shown. */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** The variable's whole value: tells two settings apart (credentials included). */
  readonly key: string;
}

/** What the environment says about proxies: Go's httpproxy.Config, parsed. */
export interface ProxyConfig {
  /** The proxy for http URLs; a ProxyError when the variable names none (thrown when it applies). */
  readonly http: ProxySetting | ProxyError | undefined;
  readonly https: ProxySetting | ProxyError | undefined;
  /** NO_PROXY (or no_proxy), parsed: a host matched here is reached directly. */
  readonly noProxy: NoProxy;
  /** REQUEST_METHOD is set: this process serves a CGI request, whose client may have set HTTP_PROXY. */
  readonly cgi: boolean;
}

/** A parsed NO_PROXY list (see {@link parseNoProxy}). */
export interface NoProxy {
  readonly all: boolean;
  readonly ips: ReadonlyArray<{ readonly ip: Uint8Array; readonly port: string } | { readonly net: Uint8Array; readonly bits: number }>;
  readonly domains: ReadonlyArray<{ readonly suffix: string; readonly port: string; readonly matchHost: boolean }>;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The first of `names` set to a non-empty value, as Go's getEnvAny: the upper-case name wins
 * (curl and undici's EnvHttpProxyAgent prefer the lower-case one; kiln follows buildkitd).
 */
function envAny(env: Env, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/**
 * A proxy variable's value as Go's parseProxy reads it: a URL with scheme http, https, socks5 or
 * socks5h (which Go's transport dials as socks5: both send the host name to the proxy), or
 * `host[:port]` taken as `http://host[:port]`. Go ignores a value that is neither (and goes
 * direct); kiln refuses it (KLN0880), as going direct would fail later and less clearly.
 */
export function parseProxyValue(variable: string, value: string): ProxySetting {
  // Go also tries `http://` before a value with another scheme; WHATWG URLs would make a host
  // of that scheme's name (`http://ftp://…` is host "ftp"), so only a value without one gets it.
  const url = tryUrl(value.includes('://') ? value : `http://${value}`);
  if (url !== undefined && ['socks:', 'socks4:', 'socks4a:'].includes(url.protocol)) {
    throw new ProxyError(`${variable} names a ${url.protocol.slice(0, -1)} proxy, which kiln does not support (as Go's net/http)`, {
      hint: `use a SOCKS5 proxy (socks5://HOST:PORT) or an HTTP one (http://HOST:PORT) in ${variable}, or unset it`,
    });
  }
  if (url === undefined || !['http:', 'https:', 'socks5:', 'socks5h:'].includes(url.protocol) || url.hostname === '') {
    throw new ProxyError(`${variable} is not a proxy URL`, {
      hint: `set ${variable} to http://HOST:PORT (or https://, socks5://, socks5h://; credentials as http://USER:PASSWORD@HOST:PORT), or unset it`,
    });
  }
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = url.username === '' ? undefined : decodeURIComponent(url.username);
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
  } catch {
    // A `%` not followed by two hex digits (Go's url.Parse refuses such a URL too).
    throw new ProxyError(`${variable} has a user or password that is not URL-encoded`, {
      hint: `URL-encode the special characters of the user and password in ${variable} (% as %25, @ as %40, : as %3A)`,
    });
  }
  // Only scheme, host and port are used (as Go's transport does): the shown URL is just those.
  const bare = new URL(`${url.protocol}//${url.host}`);
  return { url: bare, variable, username, password, key: value };
}

function tryUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

/**
 * Go's httpproxy NO_PROXY rules: comma-separated, case-insensitive entries; `*` alone means no
 * proxy at all; an IP (`10.1.2.3`, `::1`, optionally `:port`/`[v6]:port`) or CIDR
 * (`10.0.0.0/8`) matches IP hosts; a name matches itself and its subdomains (`example.com`),
 * with a leading `.` or `*.` its subdomains only; `name:port` only that port. Malformed
 * entries are ignored, as there.
 */
export function parseNoProxy(value: string): NoProxy {
  const ips: NoProxy['ips'][number][] = [];
  const domains: NoProxy['domains'][number][] = [];
  for (const raw of value.split(',')) {
    const p = raw.trim().toLowerCase();
    if (p === '') continue;
    if (p === '*') return { all: true, ips: [], domains: [] };
    const cidr = parseCidr(p);
    if (cidr !== undefined) {
      ips.push(cidr);
      continue;
    }
    const hp = splitHostPort(p);
    const phost = hp?.host ?? p;
    const pport = hp?.port ?? '';
    if (hp !== undefined && phost === '') continue;
    const ip = parseIp(phost);
    if (ip !== undefined) {
      ips.push({ ip, port: pport });
      continue;
    }
    if (phost === '') continue;
    let host = phost.startsWith('*.') ? phost.slice(1) : phost;
    const matchHost = !host.startsWith('.');
    if (matchHost) host = `.${host}`;
    domains.push({ suffix: asciiHost(host), port: pport, matchHost });
  }
  return { all: false, ips, domains };
}

/**
 * The proxy configuration of an environment, as Go's httpproxy.FromEnvironment reads it:
 * HTTP_PROXY/http_proxy for http URLs, HTTPS_PROXY/https_proxy for https ones, NO_PROXY/no_proxy.
 * (ALL_PROXY is not read, as by Go; git, through curl, reads it.)
 */
export function proxyConfigFromEnv(env: Env): ProxyConfig {
  // An invalid value fails the requests it would apply to (see proxyForUrl), not the others.
  const one = (names: readonly string[]): ProxySetting | ProxyError | undefined => {
    const v = envAny(env, names);
    if (v === undefined) return undefined;
    try {
      return parseProxyValue(v.name, v.value);
    } catch (e) {
      if (e instanceof ProxyError) return e;
      throw e;
    }
  };
  const no = envAny(env, ['NO_PROXY', 'no_proxy']);
  const cgi = (env['REQUEST_METHOD'] ?? '') !== '';
  return { http: one(['HTTP_PROXY', 'http_proxy']), https: one(['HTTPS_PROXY', 'https_proxy']), noProxy: parseNoProxy(no?.value ?? ''), cgi };
}

/**
 * The proxy for a request to `url` (Go's ProxyFunc): the scheme's proxy unless NO_PROXY exempts
 * the host. `localhost` and loopback addresses are always reached directly, as in Go. Throws
 * the {@link ProxyError} of a variable that names no proxy, when it applies.
 */
export function proxyForUrl(cfg: ProxyConfig, url: URL): ProxySetting | undefined {
  const proxy = url.protocol === 'https:' ? cfg.https : url.protocol === 'http:' ? cfg.http : undefined;
  // Go's CGI guard (golang.org/s/cgihttpproxy), checked before NO_PROXY as there: a CGI
  // request's `Proxy:` header reaches its handler as HTTP_PROXY (httpoxy).
  if (cfg.cgi && url.protocol === 'http:' && proxy !== undefined && !(proxy instanceof ProxyError)) {
    throw new ProxyError(`refusing to use ${proxy.variable} in a CGI environment (REQUEST_METHOD is set)`, {
      hint: `a CGI request's Proxy header sets ${proxy.variable} (httpoxy): when kiln serves no CGI request, unset REQUEST_METHOD for it`,
    });
  }
  if (proxy === undefined || !useProxy(cfg.noProxy, url)) return undefined;
  if (proxy instanceof ProxyError) throw proxy;
  return proxy;
}

function useProxy(no: NoProxy, url: URL): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
  if (host === 'localhost') return false;
  const ip = parseIp(host);
  if (ip !== undefined && isLoopback(ip)) return false;
  if (no.all) return false;
  if (ip !== undefined) {
    for (const m of no.ips) {
      if ('net' in m ? inNet(ip, m.net, m.bits) : sameIp(ip, m.ip) && (m.port === '' || m.port === port)) return false;
    }
  }
  for (const m of no.domains) {
    if (host.endsWith(m.suffix) || (m.matchHost && host === m.suffix.slice(1))) {
      if (m.port === '' || m.port === port) return false;
    }
  }
  return true;
}

let cached: { key: string; cfg: ProxyConfig } | undefined;
const NAMES = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'] as const;

/**
 * The proxy for a request to `url` under this process's environment (undefined: go direct). The
 * environment is read on each call (parsed again only when it changed), so it is the environment
 * of the process that sends the request: a `kiln daemon`'s own, not its clients', as
 * buildkitd's. Throws {@link ProxyError} for a variable that names no proxy, when it applies.
 */
export function proxyFor(url: string | URL, env: Env = process.env): ProxySetting | undefined {
  let key = '';
  let any = false;
  for (const n of NAMES) {
    const v = env[n];
    if (v !== undefined && v !== '') any = true;
    key += `${v ?? ''}\0`;
  }
  // The common case, no proxy variable at all: nothing to parse or match.
  if (!any) return undefined;
  key += env['REQUEST_METHOD'] ?? '';
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (cached?.key !== key) {
    cached = { key, cfg: proxyConfigFromEnv(env) };
  }
  return proxyForUrl(cached.cfg, u);
}

/** Whether any proxy variable is set (non-empty) in `env`: requests may then go through a proxy. */
export function proxyVariableSet(env: Env = process.env): boolean {
  return NAMES.some((n) => {
    const v = env[n];
    return v !== undefined && v !== '';
  });
}

/** A host name in ASCII (punycode), as Go's idnaASCII; unchanged if it is not a valid name. */
function asciiHost(h: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(h)) return h;
  const lead = h.startsWith('.') ? '.' : '';
  const a = domainToASCII(h.slice(lead.length));
  return a === '' ? h : `${lead}${a}`;
}

/** Go's net.SplitHostPort: `host:port` or `[v6]:port`; undefined without a port. */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return undefined;
    return { host: s.slice(1, end), port: s.slice(end + 2) };
  }
  const i = s.lastIndexOf(':');
  if (i < 0 || s.slice(0, i).includes(':')) return undefined;
  return { host: s.slice(0, i), port: s.slice(i + 1) };
}

function parseCidr(s: string): { net: Uint8Array; bits: number } | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ipText = s.slice(0, slash);
  const bitsText = s.slice(slash + 1);
  const ip = parseIp(ipText);
  if (ip === undefined || !/^\d+$/.test(bitsText)) return undefined;
  // An IPv4 CIDR is 4 bytes wide, an IPv6 one 16 (Go's ParseCIDR), whatever parseIp made of it.
  const v4 = isIP(ipText) === 4;
  const width = v4 ? 32 : 128;
  const bits = Number(bitsText);
  if (bits > width) return undefined;
  return { net: v4 ? ip : to16(ip), bits };
}

/**
 * An IP address as bytes: 4 for IPv4 and IPv4-mapped IPv6 (Go's To4, so that `Equal` holds
 * between the two forms), else 16. Undefined when `s` is no IP address.
 */
export function parseIp(s: string): Uint8Array | undefined {
  const kind = isIP(s);
  if (kind === 4) return Uint8Array.from(s.split('.').map(Number));
  if (kind !== 6 || s.includes('%')) return undefined;
  const b = new Uint8Array(16);
  let text = s;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4 !== undefined) {
    const q = v4.split('.').map(Number);
    text = `${text.slice(0, -v4.length)}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const hs = head === '' ? [] : head.split(':');
  const ts = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    b[i * 2] = n >> 8;
    b[i * 2 + 1] = n & 0xff;
  });
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? b.slice(12) : b;
}

function to16(ip: Uint8Array): Uint8Array {
  if (ip.length === 16) return ip;
  const b = new Uint8Array(16);
  b[10] = 0xff;
  b[11] = 0xff;
  b.set(ip, 12);
  return b;
}

function sameIp(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Go's IPNet.Contains: the address (4 bytes when it is IPv4) must be as wide as the network. */
function inNet(ip: Uint8Array, net: Uint8Array, bits: number): boolean {
  if (ip.length !== net.length) return false;
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if (((ip[byte] ?? 0) & mask) !== ((net[byte] ?? 0) & mask)) return false;
  }
  return true;
}

function isLoopback(ip: Uint8Array): boolean {
  return ip.length === 4 ? ip[0] === 127 : ip.every((x, i) => x === (i === 15 ? 1 : 0));
}
