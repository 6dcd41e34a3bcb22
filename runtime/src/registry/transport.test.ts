import { describe, expect, test } from 'vitest';
import { RegistryTransport } from './transport.js';

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
