import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parseRawJson, repo as kilnRepo, runKiln, startDaemon, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { startGitDaemon } from '../../../solver/test/integration/git-daemon.js';

// `kiln build URL` end to end (buildx's remote contexts), offline: a repository served by
// `git daemon` and over dumb http, tarballs and a bare Dockerfile from an http server, all on
// 127.0.0.1; real runc, the real CLI, and once through a running `kiln daemon`.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let gitd: ChildProcess;
let gitUrl: string;
let work: string;
let bare: string;
let http: Server;
let httpBase: string;
/** What the http server serves, by path (tests may replace entries). */
let files: Map<string, Buffer>;
const gitEnv = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' };
const git = (cwd: string, ...args: string[]): string => execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv }).trim();

/** Commits the work tree and publishes it to the bare repository the servers serve. */
function publish(message: string): void {
  git(work, 'add', '-A');
  git(work, 'commit', '-qm', message);
  git(work, 'push', '-q', bare, 'main');
  // the dumb http protocol reads info/refs and objects/info/packs
  git(bare, 'update-server-info');
}

beforeAll(async () => {
  const served = join(sb.dir, 'git');
  bare = join(served, 'app.git');
  work = join(sb.dir, 'app-work');
  mkdirSync(bare, { recursive: true });
  git(bare, '-c', 'init.defaultBranch=main', 'init', '-q', '--bare');
  mkdirSync(work);
  git(work, '-c', 'init.defaultBranch=main', 'init', '-q');
  await writeTree(work, {
    Dockerfile: 'FROM busybox\nCOPY . /src\nRUN cat /src/version > /seen\n',
    version: 'one\n',
    // excludes nothing of a remote context (BuildKit applies it to local sources only)
    '.dockerignore': 'version\n',
    'svc/Dockerfile.svc': 'FROM busybox\nCOPY . /svc\n',
    'svc/file': 'svc\n',
  });
  publish('one');
  ({ url: gitUrl, process: gitd } = await startGitDaemon(served, 'app.git'));

  // tarballs and a bare Dockerfile; the bare repository as static files (git's dumb http)
  const tarDir = join(sb.dir, 'tar-src');
  await writeTree(tarDir, { Dockerfile: 'FROM busybox\nCOPY . /ctx\n', 'hello.txt': 'hello\n', 'alt/Dockerfile': 'FROM busybox\nCOPY hello.txt /alt\n' });
  files = new Map<string, Buffer>([
    ['/ctx.tar.gz', execFileSync('tar', ['-C', tarDir, '-cz', '.'])],
    ['/ctx.tar', execFileSync('tar', ['-C', tarDir, '-c', '.'])],
    ['/Dockerfile', Buffer.from('FROM busybox\nRUN echo bare > /bare\n')],
    ['/page.html', Buffer.from('<!DOCTYPE html>\n<html><body>not a Dockerfile</body></html>\n')],
  ]);
  http = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] as string));
    const body = files.get(path) ?? (path.startsWith('/app.git/') ? readFileOrUndefined(join(served, path)) : undefined);
    res.writeHead(body === undefined ? 404 : 200).end(body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpBase = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
}, 60_000);

function readFileOrUndefined(p: string): Buffer | undefined {
  try {
    return readFileSync(p);
  } catch {
    return undefined;
  }
}

afterAll(async () => {
  gitd.kill();
  await new Promise((r) => http.close(r));
});

test('a git URL builds the repository; the same commit is a cache hit, a new commit on the branch runs again', async () => {
  const out = join(sb.dir, `git-out-${token()}`);
  const first = await runKiln(sb, ['build', `${gitUrl}#main`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(first.stderr).not.toContain('kiln: error');
  expect(first.code).toBe(0);
  expect(first.stderr).toContain(`[internal] load git source ${gitUrl}#main`);
  expect(readFileSync(join(out, 'seen'), 'utf8')).toBe('one\n');
  // the repository's .dockerignore excluded nothing, and .git stays out
  expect(existsSync(join(out, 'src', 'version'))).toBe(true);
  expect(existsSync(join(out, 'src', '.git'))).toBe(false);

  const started = await sb.containersStarted();
  const again = await runKiln(sb, ['build', `${gitUrl}#main`, '--root', sb.root, '--progress', 'plain']);
  expect(again.code).toBe(0);
  expect(await sb.containersStarted()).toBe(started);

  writeFileSync(join(work, 'version'), 'two\n');
  publish('two');
  const moved = await runKiln(sb, ['build', `${gitUrl}#main`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-2`]);
  expect(moved.code).toBe(0);
  expect(await sb.containersStarted()).toBe(started + 1);
  expect(readFileSync(join(`${out}-2`, 'seen'), 'utf8')).toBe('two\n');
}, 180_000);

test('--build-context NAME=GIT-URL and NAME=https URL: named contexts the Dockerfile frontend fetches, as buildx passes them', async () => {
  const t = token();
  const ctx = join(sb.dir, `named-remote-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nCOPY --from=repo /version /from-git\nCOPY --from=web /Dockerfile /from-http\nRUN echo ${t}\n` });
  const out = join(sb.dir, `named-remote-out-${t}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--build-context', `repo=${gitUrl}#main`, '--build-context', `web=${httpBase}/Dockerfile`, '-o', `type=local,dest=${out}`]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'from-git'), 'utf8')).toBe(readFileSync(join(work, 'version'), 'utf8'));
  expect(readFileSync(join(out, 'from-http'), 'utf8')).toBe('FROM busybox\nRUN echo bare > /bare\n');
  const bad = await runKiln(sb, ['build', ctx, '--root', sb.root, '--build-context', 'repo=ftp://127.0.0.1/x']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid --build-context "repo=ftp://127.0.0.1/x": supported sources: a directory, docker-image://, oci-layout://, a git URL');
}, 180_000);

test('kiln bake: a target whose context is a git URL builds the repository; its dockerfile is a path inside it', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-remote-${t}`);
  const out = join(dir, 'out');
  await writeTree(dir, {
    'docker-bake.json': JSON.stringify({ target: { app: { context: `${gitUrl}#main:svc`, dockerfile: 'Dockerfile.svc', output: [`type=local,dest=${out}`] } } }),
  });
  const r = await runKiln(sb, ['bake', 'app', '-f', join(dir, 'docker-bake.json'), '--root', sb.root, '--progress', 'plain'], { cwd: dir });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'svc', 'file'), 'utf8')).toBe('svc\n');
  const bad = await runKiln(sb, ['bake', 'app', '-f', join(dir, 'docker-bake.json'), '--root', sb.root, '--set', 'app.context=ftp://127.0.0.1/x'], { cwd: dir });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('target "app": context "ftp://127.0.0.1/x" is not supported');
}, 180_000);

test('#REF:DIR makes a subdirectory the context, -f is relative to it; BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 keeps .git', async () => {
  const out = join(sb.dir, `git-sub-${token()}`);
  const sub = await runKiln(sb, ['build', `${gitUrl}#main:svc`, '-f', 'Dockerfile.svc', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(sub.stderr).not.toContain('kiln: error');
  expect(sub.code).toBe(0);
  expect(readFileSync(join(out, 'svc', 'file'), 'utf8')).toBe('svc\n');
  expect(existsSync(join(out, 'svc', 'version'))).toBe(false);
  // the history records the URL and the Dockerfile's path inside it
  const ls = await runKiln(sb, ['history', 'ls', '--root', sb.root]);
  const id = ls.stdout.split('\n')[1]?.split(/\s+/)[0] ?? '';
  const inspect = await runKiln(sb, ['history', 'inspect', id, '--root', sb.root]);
  expect(inspect.stdout).toMatch(new RegExp(`Context:\\s+${gitUrl.replace(/[.]/g, '\\.')}#main:svc\n`));
  expect(inspect.stdout).toMatch(/Dockerfile:\s+Dockerfile\.svc\n/);

  const kept = await runKiln(sb, ['build', gitUrl, '-f', 'svc/Dockerfile.svc', '--build-arg', 'BUILDKIT_CONTEXT_KEEP_GIT_DIR=1', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-git`]);
  expect(kept.code).toBe(0);
  expect(existsSync(join(`${out}-git`, 'svc', '.git', 'HEAD'))).toBe(true);
}, 180_000);

test('-f - and an absolute -f send the caller\'s Dockerfile; the context stays the repository', async () => {
  const t = token();
  const out = join(sb.dir, `git-stdin-${t}`);
  const r = await runKiln(sb, ['build', gitUrl, '-f', '-', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`], { stdin: `FROM busybox\nCOPY svc/file /from-stdin\nRUN echo ${t}\n` });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'from-stdin'), 'utf8')).toBe('svc\n');

  const local = join(sb.dir, `local-df-${t}`, 'Dockerfile.local');
  await writeTree(join(sb.dir, `local-df-${t}`), { 'Dockerfile.local': 'FROM busybox\nCOPY svc/file /from-local\n' });
  const abs = await runKiln(sb, ['build', gitUrl, '-f', local, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-abs`]);
  expect(abs.code).toBe(0);
  expect(readFileSync(join(`${out}-abs`, 'from-local'), 'utf8')).toBe('svc\n');
}, 180_000);

test('http(s): a repository URL ending in .git is cloned (dumb http), a tarball is unpacked, a plain file is the Dockerfile', async () => {
  const out = join(sb.dir, `http-${token()}`);
  const cloned = await runKiln(sb, ['build', `${httpBase}/app.git#main:svc`, '-f', 'Dockerfile.svc', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-git`]);
  expect(cloned.stderr).not.toContain('kiln: error');
  expect(cloned.code).toBe(0);
  expect(readFileSync(join(`${out}-git`, 'svc', 'file'), 'utf8')).toBe('svc\n');

  for (const name of ['ctx.tar.gz', 'ctx.tar']) {
    const r = await runKiln(sb, ['build', `${httpBase}/${name}`, '--root', sb.root, '--progress', 'rawjson', '-o', `type=local,dest=${out}-${name}`]);
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    expect(parseRawJson(r.stderr).map((v) => v.name)).toEqual(expect.arrayContaining(['[internal] load remote build context', 'copy /context /']));
    expect(readFileSync(join(`${out}-${name}`, 'ctx', 'hello.txt'), 'utf8')).toBe('hello\n');
  }
  const alt = await runKiln(sb, ['build', `${httpBase}/ctx.tar.gz`, '-f', 'alt/Dockerfile', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-alt`]);
  expect(alt.code).toBe(0);
  expect(readFileSync(join(`${out}-alt`, 'alt'), 'utf8')).toBe('hello\n');

  const bareFile = await runKiln(sb, ['build', `${httpBase}/Dockerfile`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-bare`]);
  expect(bareFile.stderr).not.toContain('kiln: error');
  expect(bareFile.code).toBe(0);
  expect(readFileSync(join(`${out}-bare`, 'bare'), 'utf8')).toBe('bare\n');
}, 240_000);

test('a tarball context: the same bytes are a cache hit, new bytes run again', async () => {
  const t = token();
  const dir = join(sb.dir, `tar-run-${t}`);
  await writeTree(dir, { Dockerfile: `FROM busybox\nCOPY . /ctx\nRUN ls /ctx > /list && echo ${t}\n`, a: 'a\n' });
  files.set('/run.tar.gz', execFileSync('tar', ['-C', dir, '-cz', '.']));
  const url = `${httpBase}/run.tar.gz`;
  const out = join(sb.dir, `tar-run-out-${t}`);
  expect((await runKiln(sb, ['build', url, '--root', sb.root, '--progress', 'plain'])).code).toBe(0);
  const started = await sb.containersStarted();
  expect((await runKiln(sb, ['build', url, '--root', sb.root, '--progress', 'plain'])).code).toBe(0);
  expect(await sb.containersStarted()).toBe(started);
  writeFileSync(join(dir, 'b'), 'b\n');
  files.set('/run.tar.gz', execFileSync('tar', ['-C', dir, '-cz', '.']));
  const changed = await runKiln(sb, ['build', url, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(changed.code).toBe(0);
  expect(await sb.containersStarted()).toBe(started + 1);
  expect(readFileSync(join(out, 'list'), 'utf8')).toBe('Dockerfile\na\nb\n');
}, 180_000);

test('errors name the URL and what to do, without a stack trace', async () => {
  const dead = `git://127.0.0.1:1/app.git`;
  const cases: Array<[string[], RegExp]> = [
    [[`${gitUrl}#no-such-branch`], /cannot load the build context .*#no-such-branch: .*does not contain ref no-such-branch \[KLN0504\]\nhint: check the branch or tag after # in the git URL/],
    // an ssh remote without --ssh and without SSH_AUTH_SOCK (buildx implies --ssh default): before the build
    [['git@127.0.0.1:app.git#main'], /the build context git@127\.0\.0\.1:app\.git#main is fetched over ssh with your agent \(an implied --ssh default, as buildx\): SSH_AUTH_SOCK is not set\nhint: start an agent/],
    [[dead], /cannot load the build context git:\/\/127\.0\.0\.1:1\/app\.git: .*\[KLN0504\]\nhint: .*host answers/],
    [[gitUrl, '-f', 'nope/Dockerfile'], /the build context git:\/\/127\.0\.0\.1:\d+\/app\.git has no nope\/Dockerfile \[KLN0504\]\nhint: pass -f PATH relative to the repository/],
    [[`${httpBase}/page.html`], /the build context http:\/\/127\.0\.0\.1:\d+\/page\.html is neither a tar archive \(plain, gzip, bzip2, xz\) nor a Dockerfile: it starts with "<!DOCTYPE html>" \[KLN0504\]/],
    [[`${httpBase}/missing.tar.gz`], /cannot download the build context http:\/\/127\.0\.0\.1:\d+\/missing\.tar\.gz: .*HTTP 404 \[KLN0504\]/],
    [['https://exa mple.com/app.git'], /context "https:\/\/exa mple\.com\/app\.git" is not a valid URL\nhint: e\.g\. https:\/\/HOST/],
    [['ftp://127.0.0.1/ctx.tar'], /context "ftp:\/\/127\.0\.0\.1\/ctx\.tar" is not supported\nhint: pass a directory, -/],
    // a refused URL is named without its password
    [['ftp://user:s3cret@127.0.0.1/ctx.tar'], /^kiln: error KLN0702: context "ftp:\/\/user@127\.0\.0\.1\/ctx\.tar" is not supported\n/m],
    [[gitUrl, '--frontend', 'kiln/ts'], /kiln\/ts cannot build the remote context git:\/\/127\.0\.0\.1:\d+\/app\.git: it reads its files from a local directory\nhint: clone or download it first/],
    [[`${httpBase}/ctx.tar`, '--frontend', 'kiln/buildpacks'], /kiln\/buildpacks cannot build the remote context/],
    [[gitUrl, '-f', 'kiln.build.ts'], /kiln\/ts cannot build the remote context/],
    [[`${httpBase}/Dockerfile`, '-f', '-'], /the build context http:\/\/127\.0\.0\.1:\d+\/Dockerfile is a Dockerfile, not an archive/],
  ];
  for (const [args, want] of cases) {
    const r = await runKiln(sb, ['build', ...args, '--root', sb.root, '--progress', 'plain'], { env: { SSH_AUTH_SOCK: '' }, ...(args.includes('-') ? { stdin: 'FROM busybox\n' } : {}) });
    expect(r.code, args.join(' ')).toBe(1);
    expect(r.stderr).toMatch(want);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }
}, 240_000);

test('a remote Dockerfile whose # syntax= names kiln/ts is refused by that frontend', async () => {
  const t = token();
  const served = join(sb.dir, `syntax-${t}`);
  const src = join(served, 'ts.git');
  mkdirSync(src, { recursive: true });
  git(src, '-c', 'init.defaultBranch=main', 'init', '-q');
  await writeTree(src, { Dockerfile: '# syntax=kiln/ts\nexport default {};\n' });
  git(src, 'add', '-A');
  git(src, 'commit', '-qm', 'ts');
  const d = await startGitDaemon(served, 'ts.git');
  try {
    const r = await runKiln(sb, ['build', d.url, '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('kiln/ts cannot build the remote context');
  } finally {
    d.process.kill();
  }
}, 120_000);

test('through a running kiln daemon (Perl client): the URL is not taken for a path of the caller', async () => {
  const socket = join(sb.dir, `run-${token()}`, 'kilnd.sock');
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const cwd = join(sb.dir, `client-${token()}`);
    mkdirSync(cwd);
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(join(kilnRepo, 'cli/bin/kiln'), ['build', `${gitUrl}#main:svc`, '-f', 'Dockerfile.svc', '--root', sb.root, '--progress', 'plain', '-o', 'type=local,dest=out'], {
        cwd,
        env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    expect(await readFile(join(cwd, 'out', 'svc', 'file'), 'utf8')).toBe('svc\n');
    expect(d.log()).toMatch(/build: client pid \d+ → exit 0/);
  } finally {
    const gone = new Promise((r) => d.child.once('exit', r));
    d.child.kill('SIGTERM');
    await gone;
  }
}, 180_000);
