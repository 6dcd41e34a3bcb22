import { existsSync, readdirSync, readFileSync, lstatSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { bareRepo, gitHttpBackend } from './git-repo.js';

// Git over smart HTTP with credentials, end to end: `git http-backend` (CGI) behind a node server
// on 127.0.0.1 that demands an Authorization header, fetched by `kiln build URL` and by ADD with
// the GIT_AUTH_TOKEN / GIT_AUTH_HEADER secrets (BuildKit's names and header forms) or with
// credentials in the URL. The token reaches the server and nothing else: not the output, the
// kiln root (history, cache, the shared repository's config) or the LLB. No runc: FROM scratch.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let server: Server;
let base: string;
let hostPort: string;
let served: string;
/** The Authorization headers of the requests since the last reset. */
let seen: (string | undefined)[] = [];
/** When set, the command lines (as `ps` shows them to any user) holding it while git asks the server. */
let watchArgv: string | undefined;
let argvHolding: string[] = [];

/** Every process's command line that holds `secret` (/proc/PID/cmdline is world-readable). */
function commandLinesHolding(secret: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      if (cmd.includes(secret)) out.push(cmd.replace(/\0/g, ' '));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
const TOKEN = `ghp_${token()}`;
const BEARER = `Bearer hdr-${token()}`;
const URL_PASSWORD = `pw-${token()}`;
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** What the server takes: the token as BuildKit sends it, the header secret, the URL's user. */
function allowed(auth: string | undefined): boolean {
  if (auth === undefined) return false;
  const [scheme = '', value = ''] = auth.split(' ', 2);
  if (auth === BEARER) return true;
  return scheme.toLowerCase() === 'basic' && (value === basic('x-access-token', TOKEN).split(' ')[1] || value === basic('kiln', URL_PASSWORD).split(' ')[1]);
}

beforeAll(async () => {
  served = join(sb.dir, 'served');
  const bare = join(served, 'app.git');
  const work = join(sb.dir, 'app-work');
  await bareRepo(bare, work, { Dockerfile: 'FROM scratch\nCOPY version /version\n', version: 'private\n' });
  server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    // git-remote-http is the client of this request: it is running now
    if (watchArgv !== undefined) argvHolding.push(...commandLinesHolding(watchArgv));
    if (!allowed(req.headers.authorization)) return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="kiln"' }).end();
    gitHttpBackend(served, req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hostPort = `127.0.0.1:${(server.address() as { port: number }).port}`;
  base = `http://${hostPort}`;
}, 60_000);

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

/** Every file under `dir` (gzip members unpacked, as history logs are) that holds `secret`. */
function filesHolding(dir: string, secret: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const raw = readFileSync(p);
        let text = raw.toString('latin1');
        if (raw[0] === 0x1f && raw[1] === 0x8b) {
          try {
            text += gunzipSync(raw).toString('latin1');
          } catch {
            // not gzip after all
          }
        }
        if (text.includes(secret)) out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}

test('kiln build http://…/app.git with GIT_AUTH_TOKEN: Basic x-access-token to the server, the token nowhere else', async () => {
  seen = [];
  const out = join(sb.dir, `out-${token()}`);
  // the header git sends is in its environment only (BuildKit passes it as `git -c …`, in `ps`)
  watchArgv = Buffer.from(`x-access-token:${TOKEN}`).toString('base64');
  argvHolding = [];
  const r = await runKiln(sb, ['build', `${base}/app.git#main`, '--root', sb.root, '--progress', 'plain', '--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_TOKEN', '-o', `type=local,dest=${out}`], { env: { KILN_TEST_TOKEN: TOKEN } }).finally(() => (watchArgv = undefined));
  expect(argvHolding).toEqual([]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'version'), 'utf8')).toBe('private\n');
  expect(seen).toContain(`basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`);
  for (const text of [r.stdout, r.stderr]) expect(text).not.toContain(TOKEN);
  // the kiln root: history (its LLB names the secret only), cache, the shared repository
  expect(filesHolding(sb.root, TOKEN)).toEqual([]);
  expect(filesHolding(sb.root, Buffer.from(`x-access-token:${TOKEN}`).toString('base64'))).toEqual([]);
}, 120_000);

test('without credentials the fetch fails, naming the URL; GIT_AUTH_HEADER.HOST:PORT wins over a wrong GIT_AUTH_TOKEN', async () => {
  const env = { KILN_TEST_HEADER: BEARER, KILN_TEST_WRONG: `wrong-${token()}` };
  for (const secret of [[], ['--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_WRONG']]) {
    const denied = await runKiln(sb, ['build', `${base}/app.git#main`, '--root', sb.root, '--progress', 'plain', ...secret], { env });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain(`cannot load the build context ${base}/app.git#main`);
    // what to do: give a token, or check the one given
    expect(denied.stderr).toContain(secret.length === 0 ? 'hint: a private repository: pass a token with --secret id=GIT_AUTH_TOKEN' : 'hint: the server refused the credentials given');
    // the refused token is not in the error either
    expect(denied.stderr).not.toContain(env.KILN_TEST_WRONG);
    expect(denied.stderr).not.toContain(Buffer.from(`x-access-token:${env.KILN_TEST_WRONG}`).toString('base64'));
  }

  // a token read from a file `echo` wrote: refused before git sends it, the token not shown
  const nl = await runKiln(sb, ['build', `${base}/app.git#main`, '--root', sb.root, '--progress', 'plain', '--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_NL'], { env: { KILN_TEST_NL: `${TOKEN}\n` } });
  expect(nl.code).not.toBe(0);
  expect(nl.stderr).toContain(`the secret GIT_AUTH_TOKEN (auth for ${base}/app.git) holds a line break`);
  expect(nl.stderr).toContain('hint: write it without one');
  expect(nl.stderr).not.toContain(TOKEN);

  seen = [];
  const r = await runKiln(sb, ['build', `${base}/app.git#main`, '--root', sb.root, '--progress', 'plain', '--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_WRONG', '--secret', `id=GIT_AUTH_HEADER.${hostPort},env=KILN_TEST_HEADER`], { env });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(seen.length).toBeGreaterThan(0);
  expect(seen.every((h) => h === BEARER)).toBe(true);
  expect(r.stderr).not.toContain(BEARER);
  expect(filesHolding(sb.root, BEARER)).toEqual([]);
}, 120_000);

test('ADD http://…/app.git in a Dockerfile fetches with the GIT_AUTH_TOKEN secret', async () => {
  const t = token();
  const ctx = join(sb.dir, `add-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM scratch\nADD ${base}/app.git#main /src\nLABEL t=${t}\n` });
  const out = join(sb.dir, `add-out-${t}`);
  seen = [];
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_TOKEN', '-o', `type=local,dest=${out}`], { env: { KILN_TEST_TOKEN: TOKEN } });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'src', 'version'), 'utf8')).toBe('private\n');
  expect(seen.length).toBeGreaterThan(0);
  expect(r.stderr).not.toContain(TOKEN);
  expect(filesHolding(sb.root, TOKEN)).toEqual([]);
}, 120_000);

test('credentials in the URL fetch the repository; no command line and not the shared repository\'s config holds them', async () => {
  const out = join(sb.dir, `url-out-${token()}`);
  const gitRepos = join(sb.root, 'solver', 'git');
  const reposBefore = new Set(existsSync(gitRepos) ? readdirSync(gitRepos) : []);
  seen = [];
  watchArgv = URL_PASSWORD;
  argvHolding = [];
  const r = await runKiln(sb, ['build', `http://kiln:${URL_PASSWORD}@${hostPort}/app.git#main`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]).finally(() => (watchArgv = undefined));
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'version'), 'utf8')).toBe('private\n');
  expect(seen).toContain(basic('kiln', URL_PASSWORD));
  // git-remote-http's arguments hold the URL git fetches: with a url.insteadOf to the URL with
  // them, that one, for any user's `ps` to read. kiln's own command line holds what it was given.
  expect(argvHolding.length).toBeGreaterThan(0);
  expect(argvHolding.filter((c) => !c.includes('/bin/kiln.js build '))).toEqual([]);
  expect(r.stderr).not.toContain(URL_PASSWORD);
  // the password is in the LLB (the source's identifier, as in BuildKit), but nothing under the
  // kiln root keeps it: not the history, not the shared bare repository's config (BuildKit's does)
  expect(filesHolding(join(sb.root, 'solver', 'git'), `url = http://${hostPort}/app.git`).map((p) => p.split('/').pop())).toContain('config');
  expect(filesHolding(sb.root, URL_PASSWORD)).toEqual([]);
  const du = await runKiln(sb, ['du', '--root', sb.root, '--verbose']);
  expect(du.stdout).not.toContain(URL_PASSWORD);

  // a shared repository an older kiln made kept them in its config: the next use rewrites it
  const made = readdirSync(gitRepos).filter((n) => !reposBefore.has(n) && !n.endsWith('.lock'));
  expect(made).toHaveLength(1);
  const config = join(gitRepos, made[0] ?? '', 'config');
  expect(readFileSync(config, 'utf8')).toContain(`url = http://${hostPort}/app.git`);
  writeFileSync(config, readFileSync(config, 'utf8').replace(`url = http://${hostPort}/app.git`, `url = http://kiln:${URL_PASSWORD}@${hostPort}/app.git`));
  const again = await runKiln(sb, ['build', `http://kiln:${URL_PASSWORD}@${hostPort}/app.git#main`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-2`]);
  expect(again.code).toBe(0);
  expect(filesHolding(sb.root, URL_PASSWORD)).toEqual([]);
}, 120_000);
