import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { SSHD, startSshd, until } from '../../../solver/test/integration/sshd.js';

// `kiln build ssh://…` end to end: the repository is fetched over ssh from a real sshd on
// 127.0.0.1 with the key of the ssh agent passed as `--ssh default=SOCKET`, or SSH_AUTH_SOCK's
// without any --ssh (buildx adds --ssh default for an ssh context), as buildx does.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let sshd: ChildProcess;
let agent: ChildProcess;
let agentSock: string;
let url: string;

const gitIn = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' } }).trim();


beforeAll(async () => {
  for (const bin of [SSHD, 'ssh-agent', 'ssh-keygen']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is required for this test: apt-get install -y openssh-server openssh-client`);
    }
  }
  const work = join(sb.dir, 'ssh');
  mkdirSync(work);
  for (const k of ['host', 'user']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', join(work, k)]);
  const repo = join(work, 'app');
  mkdirSync(repo);
  gitIn(repo, '-c', 'init.defaultBranch=main', 'init', '-q');
  await writeTree(repo, { Dockerfile: 'FROM busybox\nCOPY msg /msg\n', msg: 'over ssh\n' });
  gitIn(repo, 'add', '-A');
  gitIn(repo, 'commit', '-qm', 'one');
  writeFileSync(join(work, 'authorized_keys'), readFileSync(join(work, 'user.pub'), 'utf8'));
  const started = await startSshd(work);
  sshd = started.process;
  const port = started.port;
  agentSock = join(work, 'agent.sock');
  rmSync(agentSock, { force: true });
  agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
  await until('the ssh agent', () => existsSync(agentSock));
  execFileSync('ssh-add', ['-q', join(work, 'user')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  url = `ssh://${user}@127.0.0.1:${port}${repo}`;
}, 60_000);

afterAll(() => {
  agent?.kill();
  sshd?.kill();
});

test('an ssh:// context is fetched with the --ssh agent, or SSH_AUTH_SOCK\'s without --ssh; without a default agent the error says to pass it', async () => {
  const out = join(sb.dir, `ssh-out-${token()}`);
  const r = await runKiln(sb, ['build', `${url}#main`, '--ssh', `default=${agentSock}`, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(out, 'msg'), 'utf8')).toBe('over ssh\n');

  // no --ssh at all: the SSH_AUTH_SOCK agent, as buildx adds --ssh default for an ssh context
  // (resolving the branch to a commit asks the server again, which needs the agent)
  const implied = await runKiln(sb, ['build', `${url}#main`, '--root', sb.root, '--progress', 'plain'], { env: { SSH_AUTH_SOCK: agentSock } });
  expect(implied.stderr).not.toContain('kiln: error');
  expect(implied.code).toBe(0);

  const other = await runKiln(sb, ['build', `${url}#main`, '--ssh', `other=${agentSock}`, '--root', sb.root, '--progress', 'plain']);
  expect(other.code).toBe(1);
  expect(other.stderr).toMatch(/cannot load the build context ssh:\/\/.*#main: no SSH agent "default" .*\[KLN0504\]\nhint: pass --ssh default/);
}, 180_000);
