import { rootCertificates } from 'node:tls';

/** TLS settings for the servers a request goes to (a registry host's from the kiln config). */
export interface TlsSettings {
  /** PEM CA certificates trusted besides the system's. */
  readonly ca?: readonly string[] | undefined;
  /** Client certificates (mutual TLS). */
  readonly keypairs?: ReadonlyArray<{ readonly cert: string; readonly key: string }> | undefined;
  /** No certificate verification. */
  readonly insecure?: boolean | undefined;
}

/** What undici's connector takes of {@link TlsSettings}. */
export interface TlsConnectOptions {
  readonly ca?: string[];
  readonly cert?: string[];
  readonly key?: string[];
  readonly rejectUnauthorized: boolean;
}

/** The connector options for `tls`: its CAs added to the system's, as BuildKit's loadTLSConfig appends to the system pool. */
export function tlsConnectOptions(tls: TlsSettings | undefined): TlsConnectOptions {
  const keypairs = tls?.keypairs ?? [];
  return {
    ...((tls?.ca?.length ?? 0) > 0 ? { ca: [...rootCertificates, ...(tls?.ca ?? [])] } : {}),
    // Node pairs the n-th key with the n-th certificate.
    ...(keypairs.length > 0 ? { cert: keypairs.map((k) => k.cert), key: keypairs.map((k) => k.key) } : {}),
    rejectUnauthorized: tls?.insecure !== true,
  };
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
