import { describe, expect, test } from 'vitest';
import { RegistryTransport } from './transport.js';

/** Resolves once `cond` holds (polled: no fixed delay to be too short on a loaded machine). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

/** A registry double: bearer auth whose tokens the test can revoke. */
function registry() {
  let issued = 0;
  const valid = new Set<string>();
  const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    if (url.pathname === '/token') {
      const token = `t${++issued}`;
      valid.add(token);
      return new Response(JSON.stringify({ token, expires_in: 300 }), { status: 200 });
    }
    const auth = new Headers(init?.headers).get('authorization');
    if (auth !== null && valid.has(auth.replace('Bearer ', ''))) return new Response('{}', { status: 200 });
    return new Response('', { status: 401, headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:9/token",service="reg"` } });
  }) as typeof globalThis.fetch;
  return { fetch, revokeAll: () => valid.clear(), issued: () => issued };
}

describe('RegistryTransport bearer tokens', () => {
  test('a token the registry rejects (401) is dropped and a new one fetched, not reused', async () => {
    const reg = registry();
    const t = new RegistryTransport({ fetch: reg.fetch, credentials: () => Promise.resolve({ kind: 'basic', username: 'u', password: 'p' }) });
    const req = { method: 'GET', url: '/v2/a/manifests/1', scopes: ['repository:a:pull'] } as const;
    expect((await t.request('127.0.0.1:9', req)).status).toBe(200);
    expect(reg.issued()).toBe(1);
    reg.revokeAll();
    expect((await t.request('127.0.0.1:9', req)).status).toBe(200);
    expect(reg.issued()).toBe(2);
  });
});

test('a 401 to a request sent without a token drops no token: parallel first requests ask the token service once', async () => {
  let issued = 0;
  let unauthenticated = 0;
  const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (new URL(String(input)).pathname === '/token') {
      issued++;
      await delay(40);
      return new Response(JSON.stringify({ token: 'ok', expires_in: 300 }), { status: 200 });
    }
    if (new Headers(init?.headers).get('authorization') === 'Bearer ok') return new Response('{}', { status: 200 });
    // the first requests' 401s arrive while the first token fetch is under way
    await delay(10 * unauthenticated++);
    return new Response('', { status: 401, headers: { 'www-authenticate': 'Bearer realm="http://127.0.0.1:9/token",service="reg"' } });
  }) as typeof globalThis.fetch;
  const t = new RegistryTransport({ fetch });
  const req = { method: 'GET', url: '/v2/a/manifests/1', scopes: ['repository:a:pull'] } as const;
  const res = await Promise.all([1, 2, 3].map(() => t.request('127.0.0.1:9', req)));
  expect(res.map((r) => r.status)).toEqual([200, 200, 200]);
  expect(issued).toBe(1);
});

describe('RegistryTransport token service failures', () => {
  /** A registry whose token service answers with `token`'s result. */
  const challenged = (token: (init?: RequestInit) => Promise<Response>) =>
    (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      if (new URL(String(input)).pathname === '/token') return token(init);
      if (new Headers(init?.headers).get('authorization') === 'Bearer ok') return new Response('{}', { status: 200 });
      return new Response('', { status: 401, headers: { 'www-authenticate': `Bearer realm="http://127.0.0.1:9/token",service="reg"` } });
    }) as typeof globalThis.fetch;
  const req = { method: 'GET', url: '/v2/a/manifests/1', scopes: ['repository:a:pull'] } as const;

  test('a body that is not JSON is named, never quoted (JSON.parse quotes the text around the fault)', async () => {
    const secret = 'SECRETTOKENVALUE123';
    const t = new RegistryTransport({ fetch: challenged(async () => new Response(`{"token":${secret}}`, { status: 200 })) });
    const e = await t.request('127.0.0.1:9', req).then(() => undefined, (x: unknown) => x as Error);
    expect(e).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('answered with a body that is not JSON (200)') });
    expect(JSON.stringify({ m: e?.message, h: (e as { hint?: string }).hint })).not.toMatch(/SECRET|TOKENVALUE|VALUE123/);
  });

  test('an aborted request stops waiting for a token service that never answers', async () => {
    const t = new RegistryTransport({ fetch: challenged(() => new Promise<Response>(() => undefined)) });
    const ac = new AbortController();
    const pending = t.request('127.0.0.1:9', { ...req, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('interrupted')), 20);
    await expect(pending).rejects.toThrow('interrupted');
  });

  test('a token fetch every waiter gave up on is cancelled and forgotten: the next request asks again (a daemon served none for that scope after one hung fetch)', async () => {
    const asked: (AbortSignal | undefined)[] = [];
    const t = new RegistryTransport({
      fetch: challenged((init) => {
        asked.push(init?.signal ?? undefined);
        // the first token request hangs until it is cancelled; the next one answers
        if (asked.length === 1) return new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
        return Promise.resolve(new Response(JSON.stringify({ token: 'ok' }), { status: 200 }));
      }),
    });
    const first = new AbortController();
    const pending = t.request('127.0.0.1:9', { ...req, signal: first.signal });
    await until(() => asked.length === 1);
    first.abort(new Error('interrupted'));
    await expect(pending).rejects.toThrow('interrupted');
    expect(asked[0]?.aborted).toBe(true);
    const second = await t.request('127.0.0.1:9', { ...req, signal: AbortSignal.timeout(2000) });
    expect(second.status).toBe(200);
    expect(asked).toHaveLength(2);
  });

  test('a shared token fetch goes on while one of its waiters is still there', async () => {
    let answer: ((r: Response) => void) | undefined;
    let fetches = 0;
    const t = new RegistryTransport({
      fetch: challenged((init) => {
        fetches++;
        return new Promise<Response>((resolve, reject) => {
          answer = resolve;
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
        });
      }),
    });
    const leaving = new AbortController();
    const a = t.request('127.0.0.1:9', { ...req, signal: leaving.signal });
    await until(() => fetches === 1);
    // b comes once the challenge is known and a's token fetch is under way: it waits for that one
    const b = t.request('127.0.0.1:9', req);
    await new Promise((r) => setTimeout(r, 20));
    leaving.abort(new Error('interrupted'));
    await expect(a).rejects.toThrow('interrupted');
    answer?.(new Response(JSON.stringify({ token: 'ok' }), { status: 200 }));
    expect((await b).status).toBe(200);
    expect(fetches).toBe(1);
  });

  test('a request that joined a token fetch in flight stops waiting when aborted too', async () => {
    let answer: ((r: Response) => void) | undefined;
    const t = new RegistryTransport({ fetch: challenged(() => new Promise<Response>((resolve) => (answer = resolve))) });
    const a = t.request('127.0.0.1:9', req);
    await until(() => answer !== undefined);
    const joining = new AbortController();
    const b = t.request('127.0.0.1:9', { ...req, signal: joining.signal });
    await new Promise((r) => setTimeout(r, 20));
    joining.abort(new Error('interrupted'));
    await expect(b).rejects.toThrow('interrupted');
    answer?.(new Response(JSON.stringify({ token: 'ok' }), { status: 200 }));
    expect((await a).status).toBe(200);
  });
});

describe('RegistryTransport uploads', () => {
  test('a streamed upload is not kept in memory: 128 MiB go through with the chunks already sent collectable', async () => {
    const { createServer } = await import('node:http');
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let received = 0;
    const server = createServer((req, res) => {
      req.on('data', (d: Buffer) => (received += d.length));
      req.on('end', () => res.writeHead(201).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    gc();
    const base = process.memoryUsage().arrayBuffers;
    // What stays reachable of the chunks already sent, after a full collection every 8 MiB.
    let held = 0;
    try {
      const port = (server.address() as { port: number }).port;
      const t = new RegistryTransport({});
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 128; i++) {
          if (i % 8 === 0) {
            await new Promise((r) => setImmediate(r));
            gc();
            held = Math.max(held, process.memoryUsage().arrayBuffers - base);
          }
          yield new Uint8Array(1 << 20).fill(i);
        }
      }
      const res = await t.request(`127.0.0.1:${port}`, { method: 'PUT', url: '/v2/a/blobs/uploads/1', scopes: [], retry: false, body: async () => chunks() });
      expect(res.status).toBe(201);
      expect(received).toBe(128 << 20);
      // Following redirects, fetch kept every chunk to resend the body: ~130 MiB held by then
      // (about 33 MiB in flight otherwise: sockets, the last chunks).
      expect(held).toBeLessThan(64 << 20);
    } finally {
      server.close();
    }
  });
});

describe('RegistryTransport credentials stay with their registry', () => {
  test('an absolute URL on another host (an upload Location at a storage service) gets no Authorization; one on the registry does', async () => {
    const seen: { host: string; auth: string | null }[] = [];
    const fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = new URL(String(input));
      const auth = new Headers(init?.headers).get('authorization');
      seen.push({ host: url.host, auth });
      if (url.host === '127.0.0.1:9' && auth === null) return new Response('', { status: 401, headers: { 'www-authenticate': 'Basic realm="reg"' } });
      return new Response('', { status: 201 });
    }) as typeof globalThis.fetch;
    const t = new RegistryTransport({ fetch, credentials: () => Promise.resolve({ kind: 'basic', username: 'u', password: 'p' }) });
    const scopes = ['repository:a:push'];
    expect((await t.request('127.0.0.1:9', { method: 'POST', url: '/v2/a/blobs/uploads/', scopes })).status).toBe(201);
    seen.length = 0;
    expect((await t.request('127.0.0.1:9', { method: 'PUT', url: 'http://storage.invalid:8080/upload/1?digest=x', scopes })).status).toBe(201);
    expect((await t.request('127.0.0.1:9', { method: 'PUT', url: 'http://127.0.0.1:9/v2/a/blobs/uploads/2?digest=x', scopes })).status).toBe(201);
    expect(seen).toEqual([
      { host: 'storage.invalid:8080', auth: null },
      { host: '127.0.0.1:9', auth: `Basic ${Buffer.from('u:p').toString('base64')}` },
    ]);
  });

  test('a redirected streamed upload fails at once with what happened, not after retries with a plain-http hint', async () => {
    const { createServer } = await import('node:http');
    let puts = 0;
    const server = createServer((req, res) => {
      puts++;
      req.resume();
      res.writeHead(307, { location: '/elsewhere' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const t = new RegistryTransport({});
      async function* chunks(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array(1024);
      }
      const err = await t.request(`127.0.0.1:${port}`, { method: 'PUT', url: '/v2/a/blobs/uploads/1', scopes: [], body: async () => chunks() }).catch((e: unknown) => e as Error & { hint?: string });
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain('the registry redirected an upload');
      expect((err as { hint?: string }).hint).not.toMatch(/plain-http/);
      expect(puts).toBe(1);
    } finally {
      server.close();
    }
  });
});

describe('RegistryTransport: a registry that cannot be reached at all', () => {
  // Before: both got the hint to set http = true in the kiln config (https), or none (http).
  test('a name that does not resolve says so, not "speaks plain http"', async () => {
    const t = new RegistryTransport({ retries: 0 });
    const err = await t.request('nosuch.invalid', { method: 'HEAD', url: '/v2/', scopes: [] }).catch((e: unknown) => e as Error & { code?: string; hint?: string });
    expect(err).toMatchObject({ code: 'REGISTRY_UNREACHABLE', hint: expect.stringMatching(/^nosuch\.invalid does not resolve: check the registry name/) });
  });

  test('a port nobody listens on says so', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const t = new RegistryTransport({ retries: 0 });
    const err = await t.request(`127.0.0.1:${port}`, { method: 'HEAD', url: '/v2/', scopes: [] }).catch((e: unknown) => e as Error & { code?: string; hint?: string });
    expect(err).toMatchObject({ code: 'REGISTRY_UNREACHABLE', hint: `nothing accepts connections at 127.0.0.1:${port}: check the registry's host and port, and that it is running` });
  });

  // Before: "fetch failed (bad port)" and no hint, for a registry docker and skopeo reach.
  test('a port fetch refuses (6000) says it is the port, and what to do', async () => {
    // and at once: it is refused the same way every time (4 retries with backoff took ~2.5 s)
    const t = new RegistryTransport({ retries: 4 });
    const t0 = Date.now();
    const err = await t.request('127.0.0.1:6000', { method: 'HEAD', url: '/v2/', scopes: [] }).catch((e: unknown) => e as Error & { code?: string; hint?: string });
    expect(err).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining('(bad port)') as unknown, hint: expect.stringMatching(/never connects to port 6000 \(a blocked port of the fetch standard\): serve the registry on another port/) as unknown });
    expect(Date.now() - t0).toBeLessThan(500);
  });
});
