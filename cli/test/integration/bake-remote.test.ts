import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';
import { bareRepo, gitIn } from './git-repo.js';
import { startGitDaemon } from '../../../solver/test/integration/git-daemon.js';

// `kiln bake URL` (buildx's remote definitions) end to end, offline: a repository served by `git
// daemon` and tarballs from an http server on 127.0.0.1, through the real CLI. The Dockerfiles
// are FROM scratch + COPY, so no case starts a container.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let gitd: ChildProcess;
let gitUrl: string;
let http: Server;
let httpBase: string;
/** Written into the repository and the tarball: each run of the file has its own. */
const t = token();

const BAKE_HCL = `variable "GREETING" {
  default = "hi"
  description = "what to say"
}
variable "N" { default = 3 }
group "default" {
  description = "all"
  targets = ["app", "svc"]
}
target "_common" {
  args = { G = GREETING }
}
target "app" {
  inherits = ["_common"]
  description = "the app"
  output = ["type=local,dest=out/app"]
}
target "svc" {
  context = "svc"
  dockerfile = "Dockerfile.svc"
  contexts = { extra = "extra" }
  output = ["type=local,dest=out/svc"]
}
target "mine" {
  context = BAKE_CMD_CONTEXT
  dockerfile-inline = "FROM scratch\\nCOPY mine.txt /mine.txt\\n"
  output = ["type=local,dest=out/mine"]
}
target "out" {
  context = "../x"
}
`;

/** Targets of the tarball that ask for more than their directory: a privileged one reading beside the caller's directory, and one whose context is a symlink out of the tree. */
const PRIV_HCL = `target "priv" {
  entitlements = ["security.insecure"]
  contexts = { up = "cwd://../up-ctx" }
  dockerfile-inline = "FROM scratch\\nCOPY hello.txt /hello.txt\\nCOPY --from=up up.txt /up.txt\\n"
  output = ["type=local,dest=out/priv"]
}
target "evil" {
  context = "evil"
  dockerfile-inline = "FROM scratch\\nCOPY secret.txt /secret.txt\\n"
  output = ["type=local,dest=out/evil"]
}
`;

beforeAll(async () => {
  const served = join(sb.dir, 'git');
  const bare = join(served, 'app.git');
  const work = join(sb.dir, 'app-work');
  await bareRepo(bare, work, {
    'docker-bake.hcl': BAKE_HCL,
    'ci.hcl': 'target "app" {\n  tags = ["ci/app"]\n}\n',
    Dockerfile: 'FROM scratch\nCOPY version /version\n',
    version: `${t}\n`,
    'svc/Dockerfile.svc': 'FROM scratch\nCOPY file /svc-file\nCOPY --from=extra e.txt /e.txt\n',
    'svc/file': 'svc\n',
    'extra/e.txt': 'extra\n',
    'deploy/docker-bake.hcl': 'target "default" {}\n',
  });
  // git's dumb http protocol reads info/refs and objects/info/packs
  gitIn(bare, 'update-server-info');
  ({ url: gitUrl, process: gitd } = await startGitDaemon(served, 'app.git'));

  const tarDir = join(sb.dir, 'tar-src');
  await writeTree(tarDir, {
    'docker-bake.hcl': `target "default" {\n  output = ["type=local,dest=out/tar"]\n}\ntarget "sub" {\n  context = "sub"\n}\n${PRIV_HCL}`,
    Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n',
    'hello.txt': `hello ${t}\n`,
    'sub/Dockerfile': 'FROM scratch\n',
  });
  // a link out of the tree to a directory of this machine; and that directory, and one beside the callers' directories
  await writeTree(join(sb.dir, 'host-dir'), { 'secret.txt': `host secret ${t}\n` });
  await writeTree(join(sb.dir, 'up-ctx'), { 'up.txt': `up ${t}\n` });
  symlinkSync(join(sb.dir, 'host-dir'), join(tarDir, 'evil'));
  const tarball = execFileSync('tar', ['-C', tarDir, '-cz', '.']);
  const files = new Map<string, Buffer>([
    ['/def.tar.gz', tarball],
    ['/page.html', Buffer.from('<!DOCTYPE html>\n<html><body>a repository page</body></html>\n')],
    ['/plain-bake.hcl', Buffer.from('target "plain" {\n  context = "ctx"\n  dockerfile-inline = "FROM scratch\\nCOPY f /f\\n"\n  output = ["type=local,dest=out/plain"]\n}\n')],
  ]);
  const basic = `Basic ${Buffer.from('user:pw').toString('base64')}`;
  // the git source's header for a GIT_AUTH_TOKEN secret (BuildKit's, GitHub's form)
  const tokenAuth = `basic ${Buffer.from('x-access-token:tok-123').toString('base64')}`;
  http = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/private/app.git/')) {
      const file = join(served, path.slice('/private'.length));
      if (req.headers.authorization !== tokenAuth) res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      else if (!existsSync(file)) res.writeHead(404).end();
      else res.writeHead(200).end(readFileSync(file));
      return;
    }
    if (path === '/private.tar.gz') {
      res.writeHead(req.headers.authorization === basic ? 200 : 401).end(req.headers.authorization === basic ? tarball : undefined);
      return;
    }
    const body = files.get(path);
    res.writeHead(body === undefined ? 404 : 200).end(body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpBase = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
}, 60_000);

afterAll(async () => {
  gitd.kill();
  await new Promise((r) => http.close(r));
});

/** `kiln bake ARGS` in `cwd` (its own directory under the sandbox by default). */
function bake(cwd: string, args: readonly string[], env: Record<string, string> = {}): Promise<KilnRun> {
  return runKiln(sb, ['bake', '--root', sb.root, '--progress', 'plain', ...args], { cwd, env });
}

async function workDir(name: string, files: Readonly<Record<string, string>> = {}): Promise<string> {
  const dir = join(sb.dir, `${name}-${token()}`);
  mkdirSync(dir, { recursive: true });
  await writeTree(dir, files);
  return dir;
}

interface Printed {
  group: Record<string, { targets: string[] }>;
  target: Record<string, { context?: string; dockerfile?: string; args?: Record<string, string>; contexts?: Record<string, string>; tags?: string[] }>;
}

test('--print and --list of a git remote: contexts are the URL or inside it, -f names files of it, cwd:// files of yours, and --list format=json is buildx\'s', async () => {
  const dir = await workDir('print', { 'local.hcl': 'target "app" {\n  args = { G = "local" }\n}\n' });
  const r = await bake(dir, [`${gitUrl}#main`, 'app', 'svc', '--print']);
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(`[internal] load git source ${gitUrl}#main`);
  const p = JSON.parse(r.stdout) as Printed;
  expect(p.target['app']).toMatchObject({ context: `${gitUrl}#main`, dockerfile: 'Dockerfile', args: { G: 'hi' } });
  expect(p.target['svc']).toMatchObject({ context: 'svc', dockerfile: 'Dockerfile.svc', contexts: { extra: 'extra' } });

  // -f: a file of the remote, then one of the working directory over it
  const f = await bake(dir, ['-f', 'docker-bake.hcl', '-f', 'ci.hcl', '-f', 'cwd://local.hcl', `${gitUrl}#main`, 'app', '--print']);
  expect(f.code).toBe(0);
  expect((JSON.parse(f.stdout) as Printed).target['app']).toMatchObject({ tags: ['ci/app'], args: { G: 'local' } });

  // #REF:DIR: the files of the subdirectory, and the context is that directory of the repository
  const sub = await bake(dir, [`${gitUrl}#main:deploy`, '--print']);
  expect(sub.code).toBe(0);
  expect((JSON.parse(sub.stdout) as Printed).target['default']?.context).toBe(`${gitUrl}#main:deploy`);

  // a second URL is BAKE_CMD_CONTEXT
  const cmd = await bake(dir, [`${gitUrl}#main`, `${httpBase}/def.tar.gz`, 'mine', '--print']);
  expect((JSON.parse(cmd.stdout) as Printed).target['mine']?.context).toBe(`${httpBase}/def.tar.gz`);

  const targets = await bake(dir, [`${gitUrl}#main`, '--list', 'type=targets,format=json']);
  expect(targets.code).toBe(0);
  expect(targets.stdout.endsWith(']\n')).toBe(true);
  expect(JSON.parse(targets.stdout)).toEqual([
    { name: 'app', description: 'the app' },
    { name: 'default', description: 'all (app, svc)', group: true },
    { name: 'mine' },
    { name: 'out' },
    { name: 'svc' },
  ]);
  const vars = await bake(dir, [`${gitUrl}#main`, '--list', 'type=variables,format=json', '--var', 'GREETING=<yo>']);
  expect(vars.code).toBe(0);
  // Go's encoder escapes <, > and &
  expect(vars.stdout).toContain('"value": "\\u003cyo\\u003e"');
  expect(JSON.parse(vars.stdout)).toEqual([
    { name: 'GREETING', description: 'what to say', value: '<yo>' },
    { name: 'N', value: '3' },
  ]);
}, 60_000);

test('a build from a git remote: the default context is the repository, a relative one a directory of it, cwd:// (BAKE_CMD_CONTEXT) the working directory', async () => {
  const dir = await workDir('build', { 'mine.txt': `mine ${t}\n` });
  const r = await bake(dir, [`${gitUrl}#main`, 'app', 'svc', 'mine']);
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, 'out/app/version'), 'utf8')).toBe(`${t}\n`);
  expect(readFileSync(join(dir, 'out/svc/svc-file'), 'utf8')).toBe('svc\n');
  expect(readFileSync(join(dir, 'out/svc/e.txt'), 'utf8')).toBe('extra\n');
  expect(readFileSync(join(dir, 'out/mine/mine.txt'), 'utf8')).toBe(`mine ${t}\n`);
}, 60_000);

test('a tarball over http: unpacked, its files read and its tree the contexts; credentials in the URL authenticate and are never printed; a plain downloaded bake file keeps local contexts', async () => {
  const dir = await workDir('tar', { 'ctx/f': `plain ${t}\n` });
  const r = await bake(dir, [`${httpBase}/def.tar.gz`]);
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, 'out/tar/hello.txt'), 'utf8')).toBe(`hello ${t}\n`);

  const priv = await bake(dir, [`http://user:pw@${httpBase.slice('http://'.length)}/private.tar.gz`, 'sub', '--print']);
  expect(priv.stderr).not.toContain('error');
  expect(priv.code).toBe(0);
  expect((JSON.parse(priv.stdout) as Printed).target['sub']?.context).toBe('sub');
  expect(priv.stdout + priv.stderr).not.toContain('user:pw');
  const denied = await bake(dir, [`http://user:s3cret@${httpBase.slice('http://'.length)}/private.tar.gz`, '--print']);
  expect(denied.code).toBe(1);
  expect(denied.stderr).toContain('KLN0850');
  expect(denied.stderr).toContain(`${httpBase}/private.tar.gz`);
  expect(denied.stdout + denied.stderr).not.toContain('s3cret');

  const plain = await bake(dir, [`${httpBase}/plain-bake.hcl`, 'plain']);
  expect(plain.stderr).not.toContain('error');
  expect(plain.code).toBe(0);
  expect(readFileSync(join(dir, 'out/plain/f'), 'utf8')).toBe(`plain ${t}\n`);
}, 60_000);

test('entitlements: a remote definition asking for security.insecure and a directory beside yours is refused before anything runs, and runs with --allow; a symlink out of a tarball is its own tree', async () => {
  const dir = await workDir('allow');
  const denied = await bake(dir, [`${httpBase}/def.tar.gz`, 'priv']);
  expect(denied.code).toBe(1);
  expect(denied.stderr).toContain('error KLN0858');
  expect(denied.stderr).toContain('privileged containers that can change the host (target "priv")');
  expect(denied.stderr).toContain('hint: pass --allow=security.insecure --allow=fs.read=../up-ctx to grant them');
  expect(denied.stderr).not.toMatch(/\n\s+at /);
  // nothing of the target ran or was written
  expect(denied.stderr).not.toContain('[priv]');
  expect(existsSync(join(dir, 'out'))).toBe(false);

  const r = await bake(dir, [`${httpBase}/def.tar.gz`, 'priv', '--allow', 'security.insecure', '--allow', 'fs.read=../up-ctx']);
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, 'out/priv/hello.txt'), 'utf8')).toBe(`hello ${t}\n`);
  expect(readFileSync(join(dir, 'out/priv/up.txt'), 'utf8')).toBe(`up ${t}\n`);

  // evil -> (this machine's) host-dir is host-dir inside the tree, which the tarball does not hold
  const evil = await bake(dir, [`${httpBase}/def.tar.gz`, 'evil']);
  expect(evil.stdout + evil.stderr).not.toContain('host secret');
  expect(existsSync(join(dir, 'out/evil/secret.txt'))).toBe(false);
  expect(evil.code).toBe(1);
}, 60_000);

test('an https git remote that wants a token: BUILDX_BAKE_GIT_AUTH_TOKEN authenticates the fetch and the target\'s build of the repository', async () => {
  const dir = await workDir('token');
  const remote = `${httpBase}/private/app.git#main`;
  const r = await bake(dir, [remote, 'app'], { BUILDX_BAKE_GIT_AUTH_TOKEN: 'tok-123' });
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, 'out/app/version'), 'utf8')).toBe(`${t}\n`);
  expect(r.stdout + r.stderr).not.toContain('tok-123');
  const without = await bake(dir, [remote, '--print']);
  expect(without.code).toBe(1);
  expect(without.stderr).toContain(`error KLN0850: cannot load the bake definition ${remote}`);
}, 60_000);

test('errors name the URL and what to do, without a stack trace', async () => {
  const dir = await workDir('errors');
  const cases: [readonly string[], string, RegExp][] = [
    [['git://127.0.0.1:1/none.git#main', '--print'], 'KLN0850', /cannot load the bake definition git:\/\/127\.0\.0\.1:1\/none\.git#main/],
    [[`${gitUrl}#nope`, '--print'], 'KLN0850', /does not contain ref nope/],
    [[`${gitUrl}#main:svc`, '--print'], 'KLN0850', /holds no bake file/],
    [['-f', 'missing.hcl', `${gitUrl}#main`, '--print'], 'KLN0850', /has no file missing\.hcl/],
    [['-f', '../x.hcl', `${gitUrl}#main`, '--print'], 'KLN0850', /"\.\.\/x\.hcl" is outside the bake definition/],
    [[`${gitUrl}#main`, 'out'], 'KLN0853', /target "out": context "\.\.\/x" is outside the bake definition/],
    [[`${httpBase}/none.tar.gz`, '--print'], 'KLN0850', /cannot load the bake definition http:\/\/127\.0\.0\.1:\d+\/none\.tar\.gz/],
    [[`${gitUrl}#main`, '--print', '--list', 'targets'], 'KLN0854', /--print and --list/],
    [[`${httpBase}/page.html`, '--print'], 'KLN0850', /is neither a tar archive .* nor a bake file: it starts with "<!DOCTYPE html>/],
  ];
  // independent processes: run at once
  const runs = await Promise.all(cases.map(([args]) => bake(dir, args)));
  for (const [i, [args, code, message]] of cases.entries()) {
    const r = runs[i] as KilnRun;
    expect(r.code, args.join(' ')).toBe(1);
    expect(r.stderr, args.join(' ')).toContain(`error ${code}`);
    expect(r.stderr, args.join(' ')).toMatch(message);
    expect(r.stderr, args.join(' ')).toContain('hint: ');
    expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
  }
}, 60_000);

test('through kiln daemon: the daemon fetches the remote; outputs land in the caller\'s directory', async () => {
  const dir = await workDir('daemon');
  const socket = join(sb.dir, `bake-remote-${token()}.sock`);
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const env = { KILN_HOST: `unix://${socket}` };
    const list = await bake(dir, [`${gitUrl}#main`, '--list', 'type=targets,format=json'], env);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((e) => e.name)).toEqual(['app', 'default', 'mine', 'out', 'svc']);
    const r = await bake(dir, [`${gitUrl}#main`, 'app'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'out/app/version'), 'utf8')).toBe(`${t}\n`);
    // both ran in the daemon
    await expect.poll(() => d.log().match(/bake: client pid \d+ → exit 0/g)?.length ?? 0, { timeout: 10_000 }).toBe(2);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 60_000);
