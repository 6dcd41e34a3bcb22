import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { RegistryClient } from './client.js';
import { pushBlob } from './push.js';
import { parseReference } from './reference.js';

let root: string;
let server: Server | undefined;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-push-'));
});
afterEach(async () => {
  server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('pushBlob', () => {
  test('a 503 on the upload PUT restarts the upload session; the final bytes are complete', async () => {
    const blob = randomBytes(300_000);
    const digest = digestOf(blob);
    let sessions = 0;
    let puts = 0;
    let stored: Buffer | undefined;
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'HEAD') return void res.writeHead(404).end();
      if (req.method === 'POST') {
        sessions++;
        return void res.writeHead(202, { location: `/v2/a/b/blobs/uploads/s${sessions}?_state=x` }).end();
      }
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          puts++;
          expect(url.searchParams.get('digest')).toBe(digest);
          expect(url.searchParams.get('_state')).toBe('x');
          if (puts === 1) return void res.writeHead(503).end();
          stored = Buffer.concat(chunks);
          res.writeHead(201).end();
        });
        return;
      }
      res.writeHead(400).end();
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const store = await ContentStore.open(root);
    await store.writeBlob(blob);
    const st = await pushBlob(new RegistryClient({ retryBaseMs: 1 }), store, parseReference(`127.0.0.1:${port}/a/b`), { mediaType: 'application/octet-stream', digest, size: blob.length });
    expect(st).toBe('uploaded');
    expect(sessions).toBe(2);
    expect(stored?.equals(blob)).toBe(true);
  });

  test('a registry rejecting the digest → DIGEST_MISMATCH, not retried', async () => {
    let sessions = 0;
    server = createServer((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(404).end();
      if (req.method === 'POST') {
        sessions++;
        return void res.writeHead(202, { location: '/v2/a/b/blobs/uploads/x' }).end();
      }
      req.resume();
      req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] })));
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const store = await ContentStore.open(root);
    const info = await store.writeBlob(Buffer.from('abc'));
    await expect(pushBlob(new RegistryClient(), store, parseReference(`127.0.0.1:${port}/a/b`), { mediaType: 'x', ...info })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(sessions).toBe(1);
  });
});
