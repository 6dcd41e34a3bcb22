import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startProxy, type TestProxy } from '../../../runtime/test/helpers/proxy.js';
import { parseRawJson, runKiln, token, unpackLayout, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { bareRepo, gitHttpBackend } from './git-repo.js';

// kiln's own requests behind a proxy, end to end: an ADD URL and a git remote context reach
// servers on 127.0.0.1 under names only the test proxy resolves (files.proxy.test,
// git.proxy.test), so they succeed only through it. The proxy's password never shows. And the
// predefined proxy build args reach RUN, as in BuildKit, without entering the history or the cache key.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
const PROXY_PASSWORD = `pp-${token()}`;
const GIT_PASSWORD = `gp-${token()}`;
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
let proxy: TestProxy;
let proxyUrl: string;
let files: Server;
let git: Server;
let filesHost: string;
let gitHost: string;
/** Authorization headers the git server got. */
const gitAuth: (string | undefined)[] = [];

beforeAll(async () => {
  files = createServer((req, res) => void res.writeHead(req.url === '/hello.txt' ? 200 : 404).end('hello through the proxy\n'));
  const served = join(sb.dir, 'served');
  await bareRepo(join(served, 'app.git'), join(sb.dir, 'app-work'), { Dockerfile: 'FROM scratch\nCOPY version /version\n', version: 'via proxy\n' });
  // smart http: `git http-backend` as CGI, behind basic auth
  git = createServer((req, res) => {
    gitAuth.push(req.headers.authorization);
    if (req.headers.authorization !== basic('kiln', GIT_PASSWORD)) return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="kiln"' }).end();
    gitHttpBackend(served, req, res);
  });
  await Promise.all([files, git].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const port = (s: Server): number => (s.address() as { port: number }).port;
  proxy = await startProxy({ hosts: { 'files.proxy.test': port(files), 'git.proxy.test': port(git) }, credentials: `bob:${PROXY_PASSWORD}` });
  proxyUrl = `http://bob:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`;
  filesHost = `files.proxy.test:${port(files)}`;
  gitHost = `git.proxy.test:${port(git)}`;
}, 60_000);

afterAll(async () => {
  await Promise.all([proxy?.stop(), ...[files, git].map((s) => new Promise((r) => s?.close(r)))]);
});

/** Files under `dir` that hold `secret`. */
function filesHolding(dir: string, secret: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...filesHolding(p, secret));
    else if (st.isFile() && readFileSync(p).includes(secret)) out.push(p);
  }
  return out;
}

test('ADD URL and a git remote context go through the proxy (its credentials, git auth through it); the password shows nowhere', async () => {
  const ctx = join(sb.dir, 'add-ctx');
  await writeTree(ctx, { Dockerfile: `FROM scratch\nADD http://${filesHost}/hello.txt /hello.txt\n` });
  const out = join(sb.dir, 'add-out');
  // kiln (Go's rules) reads HTTP_PROXY; git (curl) reads the lower-case http_proxy only
  const env = { HTTP_PROXY: proxyUrl, http_proxy: proxyUrl };
  const add = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '-o', `type=local,dest=${out}`], { env });
  expect(add.stderr).not.toContain(PROXY_PASSWORD);
  expect(add.code).toBe(0);
  expect(readFileSync(join(out, 'hello.txt'), 'utf8')).toBe('hello through the proxy\n');

  const gitOut = join(sb.dir, 'git-out');
  const remote = await runKiln(sb, ['build', `http://kiln:${GIT_PASSWORD}@${gitHost}/app.git#main`, '--root', sb.root, '--progress=plain', '-o', `type=local,dest=${gitOut}`], { env });
  expect(remote.stderr).not.toContain(PROXY_PASSWORD);
  expect(remote.code).toBe(0);
  expect(readFileSync(join(gitOut, 'version'), 'utf8')).toBe('via proxy\n');
  // the credential helper's user and password reached the server through the proxy
  expect(gitAuth).toContain(basic('kiln', GIT_PASSWORD));

  const lines = proxy.log.map((l) => l.line);
  expect(lines).toContain(`GET http://${filesHost}/hello.txt`);
  expect(lines).toContain(`GET http://${gitHost}/app.git/info/refs?service=git-upload-pack`);
  expect(lines).toContain(`POST http://${gitHost}/app.git/git-upload-pack`);
  // kiln sends the proxy's credentials with its request; git (curl, CURLAUTH_ANY) first asks
  // without them and sends them after the proxy's 407
  const auth = basic('bob', PROXY_PASSWORD);
  expect(proxy.log.find((l) => l.line.includes(filesHost))?.authorization).toBe(auth);
  expect(proxy.log.filter((l) => l.authorization !== auth).every((l) => l.line.endsWith('/info/refs?service=git-upload-pack'))).toBe(true);
  expect(proxy.log.some((l) => l.line.startsWith(`POST http://${gitHost}`) && l.authorization === auth)).toBe(true);
  expect(filesHolding(sb.root, PROXY_PASSWORD)).toEqual([]);
});

test('a proxy that refuses: a KLN0880 hint naming the proxy and its variable, without the password', async () => {
  const ctx = join(sb.dir, 'refused-ctx');
  await writeTree(ctx, { Dockerfile: `FROM scratch\nADD http://${filesHost}/hello.txt?refused /hello.txt\n` });
  // a port nothing listens on (not a fixed one: something may listen on 9)
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain'], { env: { HTTP_PROXY: `http://bob:${PROXY_PASSWORD}@127.0.0.1:${port}` } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`proxy http://127.0.0.1:${port} (from HTTP_PROXY) refused the connection`);
  expect(r.stderr).toContain(`hint: start the proxy or correct HTTP_PROXY; to reach files.proxy.test without a proxy, add it to NO_PROXY`);
  expect(r.stderr).not.toContain(PROXY_PASSWORD);
});

test('the predefined proxy build args reach RUN in both cases, but not the image history or the cache key (as BuildKit)', async () => {
  const ctx = join(sb.dir, 'args-ctx');
  await writeTree(ctx, { Dockerfile: 'FROM busybox\nRUN echo "$HTTP_PROXY|$http_proxy|$HTTPS_PROXY|$no_proxy" > /p\n' });
  const out = join(sb.dir, 'args-out');
  const first = await runKiln(sb, [
    'build', ctx, '--root', sb.root, '--progress=plain', '-o', `type=local,dest=${out}`,
    '--build-arg', 'HTTP_PROXY=http://u:one@proxy.example:3128', '--build-arg', 'https_proxy=http://proxy.example:3129', '--build-arg', 'NO_PROXY=internal.example',
  ]);
  expect(first.code).toBe(0);
  expect(readFileSync(join(out, 'p'), 'utf8')).toBe('http://u:one@proxy.example:3128|http://u:one@proxy.example:3128|http://proxy.example:3129|internal.example\n');
  // another proxy value: the RUN is a cache hit, and the image's history does not name the proxy
  const tar = join(sb.dir, 'args.tar');
  const second = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=rawjson', '-o', `type=oci,dest=${tar}`, '--build-arg', 'HTTP_PROXY=http://u:two@other.example:8080']);
  expect(second.code).toBe(0);
  const run = parseRawJson(second.stderr).find((v) => v.name.includes('RUN echo'));
  expect(run?.cached).toBe(true);
  const layout = await unpackLayout(tar);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): string => readFileSync(join(layout, 'blobs', ...d.split(':')), 'utf8');
  const manifest = JSON.parse(blob(index.manifests[0]?.digest ?? '')) as { config: { digest: string } };
  const config = blob(manifest.config.digest);
  expect(config).toContain('RUN /bin/sh -c echo');
  expect(config).not.toMatch(/proxy\.example|other\.example/);
});
