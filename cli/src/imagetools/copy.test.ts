import { describe, expect, test } from 'vitest';
import { digestOf, parseReference, RegistryClient, type Descriptor } from '@kiln/runtime';
import { copyBlob, copySources, registryReader, registryWriter } from './copy.js';

const OM = 'application/vnd.oci.image.manifest.v1+json';

describe('copySources', () => {
  test('when one source fails, the copies still running are aborted (kiln would otherwise wait for them, or a daemon keep uploading)', async () => {
    const layer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(Buffer.from('big')), size: 1 << 30 };
    const cfg = Buffer.from('{}');
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OM, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: cfg.length }, layers: [layer] }));
    let putAborted = false;
    let putStarted!: () => void;
    const started = new Promise<void>((r) => (putStarted = r));
    const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = new URL(String(input));
      const method = init?.method ?? 'GET';
      const p = url.pathname;
      if (method === 'HEAD') return new Response(null, { status: 404 });
      if (method === 'GET' && p === `/v2/b/manifests/${digestOf(manifest)}`) return new Response(manifest, { status: 200, headers: { 'content-type': OM } });
      if (method === 'GET' && p.startsWith('/v2/a/manifests/')) {
        await started;
        return new Response('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', { status: 404 });
      }
      if (method === 'POST') return new Response(null, { status: 202, headers: { location: `/v2/t/blobs/uploads/${Math.random()}` } });
      if (method === 'GET' && p === `/v2/b/blobs/${digestOf(cfg)}`) return new Response(cfg, { status: 200 });
      if (method === 'GET' && p === `/v2/b/blobs/${layer.digest}`) return new Response(new ReadableStream({ pull: () => new Promise(() => undefined) }), { status: 200 });
      if (method === 'PUT' && url.searchParams.get('digest') === digestOf(cfg)) return new Response(null, { status: 201 });
      if (method === 'PUT') {
        putStarted();
        return new Promise<Response>((_, reject) => {
          init?.signal?.addEventListener('abort', () => {
            putAborted = true;
            reject(init.signal?.reason as Error);
          });
        });
      }
      return new Response(null, { status: 500 });
    }) as typeof globalThis.fetch;
    const client = new RegistryClient({ fetch, retries: 0 });
    const d = (b: Buffer): Descriptor => ({ mediaType: OM, digest: digestOf(b), size: b.length });
    const sources = [
      { from: registryReader(client, parseReference('127.0.0.1:1/a:1')), desc: d(Buffer.from('missing')) },
      { from: registryReader(client, parseReference('127.0.0.1:1/b:1')), desc: d(manifest) },
    ];
    await expect(copySources(sources, registryWriter(client, parseReference('127.0.0.1:2/t:1')), {})).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await new Promise((r) => setTimeout(r, 50));
    expect(putAborted).toBe(true);
  });
});

describe('copyBlob', () => {
  test('an endless error body from the target registry is not read to its end', async () => {
    let pulled = 0;
    const fetch = (async (_input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      if (init?.method === 'HEAD') return new Response(null, { status: 404 });
      if (init?.method === 'POST') return new Response(null, { status: 202, headers: { location: '/v2/t/blobs/uploads/1' } });
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          pulled += 1 << 20;
          c.enqueue(new Uint8Array(1 << 20).fill(0x20));
        },
      });
      return new Response(body, { status: 400 });
    }) as typeof globalThis.fetch;
    const client = new RegistryClient({ fetch, retries: 0 });
    const desc: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(Buffer.from('x')), size: 1 };
    await expect(copyBlob(client, registryReader(client, parseReference('127.0.0.1:1/a:1')), desc, parseReference('127.0.0.1:2/t:1'))).rejects.toMatchObject({ code: 'KLN0862' });
    expect(pulled).toBeLessThan(8 << 20);
  }, 20_000);
});
