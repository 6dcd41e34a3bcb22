import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { SSHD, startSshd, until } from '../../../solver/test/integration/sshd.js';

// `kiln bake ssh://…` end to end: the definition and the target's context come over ssh from a
// real sshd on 127.0.0.1, with the agent buildx's way (SSH_AUTH_SOCK, or BUILDX_BAKE_GIT_SSH).
// FROM scratch: no container.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let sshd: ChildProcess;
let agent: ChildProcess;
let agentSock: string;
let url: string;
const t = token();

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
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: repo, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' } });
  git('-c', 'init.defaultBranch=main', 'init', '-q');
  await writeTree(repo, {
    'docker-bake.hcl': 'target "default" {\n  output = ["type=local,dest=out"]\n}\n',
    Dockerfile: 'FROM scratch\nCOPY msg /msg\n',
    msg: `over ssh ${t}\n`,
  });
  git('add', '-A');
  git('commit', '-qm', 'one');
  writeFileSync(join(work, 'authorized_keys'), readFileSync(join(work, 'user.pub'), 'utf8'));
  const started = await startSshd(work);
  sshd = started.process;
  agentSock = join(work, 'agent.sock');
  rmSync(agentSock, { force: true });
  agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
  await until('the ssh agent', () => existsSync(agentSock));
  execFileSync('ssh-add', ['-q', join(work, 'user')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  url = `ssh://${user}@127.0.0.1:${started.port}${repo}#main`;
}, 60_000);

afterAll(() => {
  agent?.kill();
  sshd?.kill();
});

test('an ssh remote: fetched and built with the agent of BUILDX_BAKE_GIT_SSH (the target gets it as its default agent); without an agent, KLN0850 says how to give one', async () => {
  const dir = join(sb.dir, `ssh-bake-${token()}`);
  mkdirSync(dir);
  const env = { SSH_AUTH_SOCK: '', BUILDX_BAKE_GIT_SSH: agentSock };
  // the target forwards that agent: buildx's ssh entitlement
  const denied = await runKiln(sb, ['bake', url, '--root', sb.root, '--progress', 'plain'], { cwd: dir, env });
  expect(denied.code).toBe(1);
  expect(denied.stderr).toContain('error KLN0858: the bake definition asks for privileges you have not granted: your default ssh agent (target "default")');
  expect(denied.stderr).toContain('hint: pass --allow=ssh to grant them');
  const r = await runKiln(sb, ['bake', url, '--allow', 'ssh', '--root', sb.root, '--progress', 'plain'], { cwd: dir, env });
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, 'out/msg'), 'utf8')).toBe(`over ssh ${t}\n`);

  const without = await runKiln(sb, ['bake', url, '--root', sb.root, '--print'], { cwd: dir, env: { SSH_AUTH_SOCK: '' } });
  expect(without.code).toBe(1);
  expect(without.stderr).toMatch(/error KLN0850: cannot fetch the bake definition ssh:\/\/.*#main over ssh: SSH_AUTH_SOCK is not set\nhint: .*BUILDX_BAKE_GIT_SSH=/);
}, 60_000);
