import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { CertificateSet, collectSystemRoots, pemCertificates, type SystemRootsOptions } from './system-roots.js';
import type { TlsSettings } from './undici.js';

/*
 * The CAs kiln trusts on a TLS connection: Node's bundled roots (the Mozilla set Node trusts when
 * given no CA), the operating system's (read as Go reads them: see readSystemRoots) and the file
 * NODE_EXTRA_CA_CERTS names. buildkitd and the registry clients are Go programs, which trust the
 * system's store only: a registry, S3 endpoint or proxy whose CA was installed with
 * update-ca-certificates (or named by SSL_CERT_FILE / SSL_CERT_DIR) works with them, so it works
 * here. The union rather than the system's alone: kiln trusted the bundled roots before (a host
 * without a CA bundle, a distroless container, still reaches Docker Hub), and NODE_EXTRA_CA_CERTS
 * is Node's documented way to add a CA. The price: a CA the administrator removed from the
 * system's store but that is in Node's bundle stays trusted (as it is by any Node program).
 */

let added: readonly string[] | undefined;

/**
 * The CAs trusted beyond Node's bundled roots (system roots and NODE_EXTRA_CA_CERTS, less those
 * already bundled), as PEM blocks. Read on first use, once per process, as Go reads the system
 * pool once (so SSL_CERT_FILE and SSL_CERT_DIR count as the process had them then): a Debian
 * /etc/ssl takes ~15-35 ms here (its bundle and the ~290 entries of /etc/ssl/certs, as Go reads them).
 */
export function addedRoots(): readonly string[] {
  return (added ??= readAddedRoots());
}

/**
 * {@link addedRoots} read now, from `opts.env` (default: this process's environment) and the
 * places `opts` names (default: Go's).
 */
export function readAddedRoots(opts: SystemRootsOptions = {}): string[] {
  const set = new CertificateSet(new Set(pemCertificates(rootCertificates.join('\n'))));
  collectSystemRoots(set, opts);
  const extra = (opts.env ?? process.env)['NODE_EXTRA_CA_CERTS'];
  if (extra !== undefined && extra !== '') {
    try {
      set.addPem(readFileSync(extra, 'latin1'));
    } catch {
      // Node has warned about the file at startup and trusts without it, as here.
    }
  }
  return set.list();
}

let standard: SecureContext | undefined;
const bySettings = new WeakMap<TlsSettings, SecureContext>();

/**
 * The TLS context of a connection with `tls`'s settings: kiln's trust (see above) plus their CAs
 * (as BuildKit's loadTLSConfig appends a host's CAs to the system pool), or their CAs alone with
 * `caOnly`, and their client certificates. Built once per settings object (once for no settings,
 * or none that touch the context) and given to every connection as `secureContext`: a list of
 * ~170 CAs as `ca` is parsed again by each connection (about 60 ms of CPU each here, against 2 ms).
 * Throws what createSecureContext throws (a key that does not match its certificate).
 */
export function trustedSecureContext(tls?: TlsSettings): SecureContext {
  const ca = tls?.ca ?? [];
  const keypairs = tls?.keypairs ?? [];
  if (tls === undefined || (ca.length === 0 && keypairs.length === 0)) return (standard ??= secureContextWith(addedRoots()));
  let ctx = bySettings.get(tls);
  if (ctx === undefined) bySettings.set(tls, (ctx = secureContextWith(addedRoots(), tls)));
  return ctx;
}

type NativeContext = { addCACert?: unknown };

/**
 * A new TLS context trusting Node's bundled roots, `added` and `tls`'s CAs (or these alone, with
 * `caOnly`), with `tls`'s client certificates (see {@link trustedSecureContext}, which caches it).
 */
export function secureContextWith(added: readonly string[], tls?: TlsSettings): SecureContext {
  const ca = tls?.ca ?? [];
  const keypairs = tls?.keypairs ?? [];
  // Node pairs the n-th key with the n-th certificate.
  const own = keypairs.length > 0 ? { cert: keypairs.map((k) => k.cert), key: keypairs.map((k) => k.key) } : {};
  // AWS_CA_BUNDLE: the bundle instead of every other CA, as the AWS SDKs read it.
  if (tls?.caOnly === true && ca.length > 0) return createSecureContext({ ca: [...ca], ...own });
  const more = [...added, ...ca];
  const ctx = createSecureContext(own);
  if (more.length === 0) return ctx;
  // Without `ca` the context holds Node's root store, parsed once per process; addCACert copies it
  // (as the X509 objects, nothing parsed again) and adds to the copy: ~23 added CAs cost ~6 ms
  // where all ~170 as `ca` cost ~60 ms. The copy holds the bundled roots only (not
  // NODE_EXTRA_CA_CERTS, which Node adds to its own store alone): `added` has that file's.
  // The native context is Node's internal (createSecureContext fills it the same way); should it
  // change, every CA goes as `ca`.
  const native = (ctx as { context?: NativeContext }).context;
  const add = native?.addCACert;
  if (typeof add !== 'function') return createSecureContext({ ca: [...rootCertificates, ...more], ...own });
  // One call per PEM block: OpenSSL stops reading a text at its first block that is no certificate.
  for (const pem of more) add.call(native, pem);
  return ctx;
}

/** What Node's fetch takes as `dispatcher`: undici's Dispatcher, of Node's own copy of undici. */
interface NodeDispatcher {
  dispatch(opts: { readonly origin?: unknown }, handler: unknown): boolean;
}

/** undici's key for the process's dispatcher, shared by every copy of undici (Node's own too). */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

let httpsAgent: NodeDispatcher | undefined;

/**
 * Node's fetch (its own undici) with kiln's trust: https connections go through an Agent of Node's
 * undici whose connector has {@link trustedSecureContext}, plain http ones through Node's global
 * dispatcher, as before. Node 20 has no call that adds a CA to its default store, and its fetch
 * takes no TLS options, only a `dispatcher`. One of the undici package's (kiln's undici 7, which
 * serves proxies and hosts with TLS settings) would cost every https registry request ~180 ms to
 * load it first, where Node's own undici is loaded with its fetch. Node's Agent class is not
 * exported: it is the class of the global dispatcher Node's fetch installs when it loads
 * (undici's global.js); when that dispatcher is something else (a program set its own), https
 * goes through it unchanged, with Node's default CAs, as before.
 */
const trustedDispatcher: NodeDispatcher = {
  dispatch(opts, handler) {
    // (Node's fetch is loaded when it dispatches: its global dispatcher is set)
    const global = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER] as NodeDispatcher;
    if (!String(opts.origin).startsWith('https:')) return global.dispatch(opts, handler);
    return (httpsAgent ??= agentLike(global)).dispatch(opts, handler);
  },
};

function agentLike(global: NodeDispatcher): NodeDispatcher {
  const Agent = (global as { constructor?: unknown }).constructor;
  if (typeof Agent !== 'function' || Agent.name !== 'Agent') return global;
  return new (Agent as new (opts: { connect: { secureContext: SecureContext } }) => NodeDispatcher)({ connect: { secureContext: trustedSecureContext() } });
}

/**
 * Node's global fetch, trusting kiln's CAs on https (see {@link trustedDispatcher}): the fetch of
 * requests that neither go through a proxy nor have TLS settings of their own. Redirects are
 * followed with the same trust.
 */
export const trustedFetch: typeof globalThis.fetch = (input, init) => globalThis.fetch(input, { ...init, dispatcher: trustedDispatcher } as RequestInit);
