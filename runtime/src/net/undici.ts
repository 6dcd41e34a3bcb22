import { rootCertificates, type SecureContext } from 'node:tls';
import { addedRoots, trustedSecureContext } from './trust.js';

/** TLS settings for the servers a request goes to (a registry host's from the kiln config). */
export interface TlsSettings {
  /** PEM CA certificates trusted besides kiln's (Node's bundled, the system's: see trust.ts). */
  readonly ca?: readonly string[] | undefined;
  /** `ca` is trusted instead of every other CA, not besides them (AWS_CA_BUNDLE, as the AWS SDKs read it). */
  readonly caOnly?: boolean | undefined;
  /** Client certificates (mutual TLS). */
  readonly keypairs?: ReadonlyArray<{ readonly cert: string; readonly key: string }> | undefined;
  /** No certificate verification. */
  readonly insecure?: boolean | undefined;
}

/** What undici's connector takes of {@link TlsSettings}. */
export interface TlsConnectOptions {
  /** The trusted CAs and client certificates, built once (see trustedSecureContext). */
  readonly secureContext?: SecureContext;
  /** Only when the context cannot be built (a key that does not match its certificate): tls.connect fails as it did. */
  readonly ca?: string[];
  readonly cert?: string[];
  readonly key?: string[];
  readonly rejectUnauthorized: boolean;
}

/**
 * The connector options for `tls`: kiln's trust (Node's bundled CAs, the system's, NODE_EXTRA_CA_CERTS)
 * with its CAs added, as BuildKit's loadTLSConfig appends to the system pool (or its CAs alone,
 * with `caOnly`), and its client certificates: one `secureContext` per settings object.
 */
export function tlsConnectOptions(tls: TlsSettings | undefined): TlsConnectOptions {
  const rejectUnauthorized = tls?.insecure !== true;
  try {
    return { secureContext: trustedSecureContext(tls), rejectUnauthorized };
  } catch {
    // The settings as tls.connect options: each connection fails with createSecureContext's error
    // (a request error the caller explains), as before contexts were shared.
    const keypairs = tls?.keypairs ?? [];
    const ca = tls?.ca ?? [];
    return {
      ...(ca.length > 0 ? { ca: tls?.caOnly === true ? [...ca] : [...rootCertificates, ...addedRoots(), ...ca] } : {}),
      ...(keypairs.length > 0 ? { cert: keypairs.map((k) => k.cert), key: keypairs.map((k) => k.key) } : {}),
      rejectUnauthorized,
    };
  }
}

let loading: Promise<typeof import('undici')> | undefined;

/**
 * undici 7 (the package, not Node's built-in copy), loaded on first use so that commands that
 * never need it (`kiln llb`, requests without proxy or TLS settings) do not pay for it.
 */
export function loadUndici(): Promise<typeof import('undici')> {
  return (loading ??= (async () => {
    // Node's own fetch runs once first: both undicis keep the global dispatcher under one
    // Symbol.for key, and undici loaded before Node's fetch ever ran installs its Agent there,
    // which Node 20's fetch (undici 6) then fails with ("invalid content-length header").
    await globalThis.fetch('data:,').catch(() => undefined);
    return import('undici');
  })());
}

/**
 * undici's fetch with `dispatcher`, typed as the global fetch (it is the WHATWG fetch Node's is
 * built from; only its types differ). The caller's signal goes through AbortSignal.any: undici 7
 * reads getMaxListeners() of it, which Node 20 refuses for a signal given setMaxListeners(0) (as
 * kiln's build signal is).
 */
export async function undiciFetch(dispatcher: unknown): Promise<typeof globalThis.fetch> {
  const { fetch } = await loadUndici();
  return ((input: Parameters<typeof globalThis.fetch>[0], init?: RequestInit) =>
    fetch(input as never, { ...(init as object), ...(init?.signal ? { signal: AbortSignal.any([init.signal]) } : {}), dispatcher } as never)) as unknown as typeof globalThis.fetch;
}
