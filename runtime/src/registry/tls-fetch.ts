import { rootCertificates } from 'node:tls';
import type { RegistryHostOptions } from './hosts.js';

type Fetch = typeof globalThis.fetch;

/**
 * A fetch whose TLS connections use a host's settings: its CAs (added to the system's, as
 * BuildKit's loadTLSConfig appends to the system pool), its client certificates, and no
 * verification when `insecure`. Node's global fetch takes no TLS options, so this is undici's
 * own fetch with an Agent of those options; undici is loaded on the first request, so hosts
 * without TLS settings (and short commands such as `kiln llb`) never load it.
 */
export function tlsFetch(opts: RegistryHostOptions): Fetch {
  let ready: Promise<Fetch> | undefined;
  const load = async (): Promise<Fetch> => {
    // Node's own fetch runs once first: both undicis keep the global dispatcher under one
    // Symbol.for key, and undici loaded before Node's fetch ever ran installs its Agent there,
    // which Node 20's fetch (undici 6) then fails with ("invalid content-length header").
    await globalThis.fetch('data:,').catch(() => undefined);
    const { Agent, fetch } = await import('undici');
    const keypairs = opts.keypairs ?? [];
    const agent = new Agent({
      connect: {
        ...((opts.ca?.length ?? 0) > 0 ? { ca: [...rootCertificates, ...(opts.ca ?? [])] } : {}),
        // Node pairs the n-th key with the n-th certificate.
        ...(keypairs.length > 0 ? { cert: keypairs.map((k) => k.cert), key: keypairs.map((k) => k.key) } : {}),
        rejectUnauthorized: opts.insecure !== true,
      },
    });
    // undici's fetch is the WHATWG fetch Node's global one is built from; only its types differ.
    // The caller's signal goes through AbortSignal.any: undici 7 reads getMaxListeners() of it,
    // which Node 20 refuses for a signal given setMaxListeners(0) (as kiln's build signal is).
    return ((input: Parameters<Fetch>[0], init?: RequestInit) =>
      fetch(input as never, { ...(init as object), ...(init?.signal ? { signal: AbortSignal.any([init.signal]) } : {}), dispatcher: agent } as never)) as unknown as Fetch;
  };
  return async (input, init) => (await (ready ??= load()))(input, init);
}
