import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { startProxy, withProxyEnv, type TestProxy } from '../../test/helpers/proxy.js';
import { proxiedGlobalFetch } from './proxy-fetch.js';

// A redirect is a new request: Go's transport asks its Proxy func for each hop, so a hop the
// environment sends direct may redirect to a host it sends through the proxy (an internal
// server in NO_PROXY handing out a presigned storage URL outside).

let proxy: TestProxy;
let direct: Server;
let files: Server;
let restore: (() => void) | undefined;
const port = (s: Server): number => (s.address() as { port: number }).port;

beforeAll(async () => {
  files = createServer((req, res) => void res.writeHead(200).end(`file ${req.url ?? ''}`));
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  // 127.0.0.1 is always reached direct (Go's rule); it redirects to a name only the proxy resolves
  direct = createServer((req, res) => void res.writeHead(302, { location: `http://files.proxy.test:${port(files)}/blob${req.url ?? ''}` }).end());
  await new Promise<void>((r) => direct.listen(0, '127.0.0.1', r));
  proxy = await startProxy({ hosts: { 'files.proxy.test': port(files) } });
});
afterEach(() => {
  restore?.();
  restore = undefined;
});
afterAll(async () => {
  await Promise.all([proxy?.stop(), ...[direct, files].map((s) => new Promise((r) => s?.close(r)))]);
});

test('a redirect from a host reached direct to one the environment proxies goes through the proxy', async () => {
  restore = withProxyEnv({ HTTP_PROXY: proxy.url });
  const res = await proxiedGlobalFetch(`http://127.0.0.1:${port(direct)}/a?x=1`);
  expect(await res.text()).toBe('file /blob/a?x=1');
  expect(res.redirected).toBe(true);
  expect(proxy.log.map((l) => l.line)).toContain(`GET http://files.proxy.test:${port(files)}/blob/a?x=1`);
});

test('a redirect hop that fails at its proxy is a KLN0880 naming that proxy and that hop', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const refusing = port(closed);
  await new Promise((r) => closed.close(r));
  restore = withProxyEnv({ HTTP_PROXY: `http://u:pw-secret@127.0.0.1:${refusing}` });
  const e = await proxiedGlobalFetch(`http://127.0.0.1:${port(direct)}/c`).catch((x: unknown) => x);
  expect(e).toMatchObject({
    code: 'KLN0880',
    message: `proxy http://127.0.0.1:${refusing} (from HTTP_PROXY) refused the connection`,
    hint: 'start the proxy or correct HTTP_PROXY; to reach files.proxy.test without a proxy, add it to NO_PROXY',
  });
  restore();
  // a variable that names no proxy, met at a hop of its scheme
  restore = withProxyEnv({ HTTP_PROXY: proxy.url, HTTPS_PROXY: 'ftp://u:pw-secret@proxy.corp' });
  const toHttps = createServer((_, res) => void res.writeHead(302, { location: 'https://files.proxy.test/x' }).end());
  await new Promise<void>((r) => toHttps.listen(0, '127.0.0.1', r));
  const bad = await proxiedGlobalFetch(`http://127.0.0.1:${port(toHttps)}/`).catch((x: unknown) => x);
  await new Promise((r) => toHttps.close(r));
  expect(bad).toMatchObject({ code: 'KLN0880', message: 'HTTPS_PROXY is not a proxy URL' });
});

test('redirect: manual still hands the redirect to the caller, sent direct', async () => {
  restore = withProxyEnv({ HTTP_PROXY: proxy.url });
  const before = proxy.log.length;
  const res = await proxiedGlobalFetch(`http://127.0.0.1:${port(direct)}/b`, { redirect: 'manual' });
  expect(res.status).toBe(302);
  expect(proxy.log.length).toBe(before);
});

test('a POST to a host reached direct is sent once, its redirect followed as fetch does (never replayed)', async () => {
  let posts = 0;
  const form = createServer((req, res) => {
    if (req.method === 'POST') posts++;
    req.resume();
    req.on('end', () => void res.writeHead(req.method === 'POST' ? 303 : 200, req.method === 'POST' ? { location: '/done' } : {}).end(req.method === 'POST' ? '' : 'done'));
  });
  await new Promise<void>((r) => form.listen(0, '127.0.0.1', r));
  restore = withProxyEnv({ HTTP_PROXY: proxy.url });
  try {
    const res = await proxiedGlobalFetch(`http://127.0.0.1:${port(form)}/submit`, { method: 'POST', body: 'a=1' });
    expect(await res.text()).toBe('done');
    expect(posts).toBe(1);
  } finally {
    await new Promise((r) => form.close(r));
  }
});
