import { isLocalhost } from './reference.js';

/** A client certificate and its private key (PEM text), presented to a registry that asks for one. */
export interface RegistryKeyPair {
  readonly cert: string;
  readonly key: string;
}

/**
 * Settings of one registry host (`myreg:5000`, `docker.io`), as BuildKit's `[registry."HOST"]`
 * (util/resolver/config.RegistryConfig). TLS material is PEM text: the caller reads the files.
 */
export interface RegistryHostOptions {
  /**
   * `http`: true talks plain http, false https even to localhost; unset: plain http for
   * localhost (`localhost`, `127.*`, `::1`) only, as Docker and BuildKit do.
   */
  readonly plainHttp?: boolean | undefined;
  /**
   * `insecure`: https without verifying the certificate. With plain http also on (`http = true`,
   * or localhost), https is tried first and plain http after a TLS failure, as BuildKit's
   * httpFallback does (and a push's `registry.insecure=true`).
   */
  readonly insecure?: boolean | undefined;
  /** `ca`: PEM CA certificates trusted for this host, besides the system's. */
  readonly ca?: readonly string[] | undefined;
  /** `keypair`: client certificates offered to this host (mutual TLS). */
  readonly keypairs?: readonly RegistryKeyPair[] | undefined;
  /**
   * `mirrors`: hosts (`host[:port]`, optionally with a path prefix: `mirror.local/proxy`) asked
   * in order before this one, for pulls only. Each mirror's own settings are its own entry's.
   */
  readonly mirrors?: readonly string[] | undefined;
}

/** Settings keyed by registry host, as they appear in image references (`docker.io`, `myreg:5000`). */
export type RegistryHosts = Readonly<Record<string, RegistryHostOptions>>;

/** How requests to a host go out. */
export type HostScheme = 'http' | 'https' | 'https-then-http';

/** The scheme for `domain` under `opts` (see {@link RegistryHostOptions.plainHttp} and `insecure`). */
export function hostScheme(domain: string, opts: RegistryHostOptions | undefined): HostScheme {
  const plain = opts?.plainHttp ?? isLocalhost(domain);
  if (!plain) return 'https';
  return opts?.insecure === true ? 'https-then-http' : 'http';
}

/** Whether requests to the host need their own TLS settings (a dispatcher other than fetch's default). */
export function hasTlsSettings(opts: RegistryHostOptions | undefined): boolean {
  return opts !== undefined && (opts.insecure === true || (opts.ca?.length ?? 0) > 0 || (opts.keypairs?.length ?? 0) > 0);
}

/** Where a pull can be served from: a registry host and the path its repositories sit under. */
export interface PullEndpoint {
  /** The host requests go to (its own settings and credentials apply). */
  readonly domain: string;
  /** Prepended to the repository path (`proxy/` for a mirror `host/proxy`), else empty. */
  readonly prefix: string;
  /** True for a mirror, false for the reference's own registry. */
  readonly mirror: boolean;
}

/**
 * The endpoints a pull of a repository on `domain` tries, in order: its mirrors, then itself
 * (BuildKit's NewRegistryConfig: mirrors get pull and resolve capabilities, the host also push).
 */
export function pullEndpoints(domain: string, hosts: RegistryHosts | undefined): readonly PullEndpoint[] {
  const mirrors = hosts?.[domain]?.mirrors ?? [];
  const self: PullEndpoint = { domain, prefix: '', mirror: false };
  if (mirrors.length === 0) return [self];
  return [...mirrors.map(parseMirror), self];
}

/**
 * `host[:port][/path]` → an endpoint (BuildKit's extractMirrorHostAndPath: the path goes after
 * `/v2`; a scheme and `user:password@` are dropped, as its url.Parse leaves them out of the host).
 */
export function parseMirror(mirror: string): PullEndpoint {
  const m = mirror.replace(/^https?:\/\//, '').replace(/^[^/@]*@/, '');
  const slash = m.indexOf('/');
  if (slash < 0) return { domain: m, prefix: '', mirror: true };
  const path = m
    .slice(slash + 1)
    .split('/')
    .filter((c) => c !== '')
    .join('/');
  return { domain: m.slice(0, slash), prefix: path === '' ? '' : `${path}/`, mirror: true };
}
