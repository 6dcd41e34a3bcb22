import { proxyAwareFetch } from '../net/proxy-fetch.js';
import { loadUndici, tlsConnectOptions, undiciFetch } from '../net/undici.js';
import type { RegistryHostOptions } from './hosts.js';

type Fetch = typeof globalThis.fetch;

/**
 * A fetch whose TLS connections use a host's settings: its CAs (added to kiln's, the system's among them, as
 * BuildKit's loadTLSConfig appends to the system pool), its client certificates, and no
 * verification when `insecure`; through the environment's proxy when one applies (the settings
 * then hold inside the proxy's tunnel). Node's global fetch takes no TLS options, so this is
 * undici's own fetch with an Agent of those options; undici is loaded on the first request, so
 * hosts without TLS settings (and short commands such as `kiln llb`) never load it.
 */
export function tlsFetch(opts: RegistryHostOptions): Fetch {
  let ready: Promise<Fetch> | undefined;
  const load = async (): Promise<Fetch> => {
    const { Agent } = await loadUndici();
    return undiciFetch(new Agent({ connect: tlsConnectOptions(opts) }));
  };
  return proxyAwareFetch(async (input, init) => (await (ready ??= load()))(input, init), opts);
}
