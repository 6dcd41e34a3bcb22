import { describe, expect, test } from 'vitest';
import { digestOf, parseReference, RegistryClient, type Descriptor } from '@kiln/runtime';
import { asImagetoolsError } from './errors.js';
import { registrySource } from './source.js';

// A registry double whose blob GET streams `sent` bytes whatever the descriptor says; counts them.
function server(sent: number) {
  let pulled = 0;
  let gets = 0;
  const fetch = (async (input: string | URL | Request): Promise<Response> => {
    const url = new URL(String(input));
    if (!url.pathname.includes('/blobs/')) return new Response('', { status: 404 });
    gets++;
    let left = sent;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (left <= 0) return c.close();
        const n = Math.min(left, 1 << 20);
        left -= n;
        pulled += n;
        c.enqueue(new Uint8Array(n));
      },
    });
    return new Response(body, { status: 200 });
  }) as typeof globalThis.fetch;
  return { fetch, pulled: () => pulled, gets: () => gets };
}

const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (asImagetoolsError(e) as { code?: unknown }).code);
const CFG = 'application/vnd.oci.image.config.v1+json';

describe('registrySource: configs and attestations are read with a size limit', () => {
  test('a config the manifest says is 2 GiB is refused without being read', async () => {
    const s = server(0);
    const src = registrySource(new RegistryClient({ fetch: s.fetch }), parseReference('localhost:5000/app:1'));
    const desc: Descriptor = { mediaType: CFG, digest: digestOf(Buffer.from('x')), size: 2 ** 31 };
    expect(await code(src.fetch(desc))).toBe('KLN0865');
    expect(s.gets()).toBe(0);
  });

  test('a registry sending more than the descriptor size is cut off, not read to the end', async () => {
    const s = server(512 << 20);
    const src = registrySource(new RegistryClient({ fetch: s.fetch }), parseReference('localhost:5000/app:1'));
    const desc: Descriptor = { mediaType: CFG, digest: digestOf(Buffer.from('{}')), size: 2 };
    expect(await code(src.fetch(desc))).toBe('KLN0862');
    expect(s.pulled()).toBeLessThan(8 << 20);
  });
});
