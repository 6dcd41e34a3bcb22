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

test('redirect: manual still hands the redirect to the caller, sent direct', async () => {
  restore = withProxyEnv({ HTTP_PROXY: proxy.url });
  const before = proxy.log.length;
  const res = await proxiedGlobalFetch(`http://127.0.0.1:${port(direct)}/b`, { redirect: 'manual' });
  expect(res.status).toBe(302);
  expect(proxy.log.length).toBe(before);
});
