import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commitRepo } from './git-repo.js';
import { SSHD, startSshd, until } from '../../../solver/test/integration/sshd.js';

/** A git repository served by a real sshd on 127.0.0.1, and an ssh agent holding the key it accepts. */
export interface GitOverSsh {
  /** `ssh://USER@127.0.0.1:PORT/…/app` (no ref: the tests add `#main`). */
  readonly url: string;
  readonly agentSock: string;
  stop(): void;
}

/**
 * Makes `work`/app a git repository of `files` committed on `main`, serves it over ssh (host and
 * user keys made for it) and starts an ssh agent with the user key. Fails naming the package
 * when sshd, ssh-agent or ssh-keygen is missing.
 */
export async function startGitOverSsh(work: string, files: Record<string, string>): Promise<GitOverSsh> {
  for (const bin of [SSHD, 'ssh-agent', 'ssh-keygen']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is required for this test: apt-get install -y openssh-server openssh-client`);
    }
  }
  mkdirSync(work);
  for (const k of ['host', 'user']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', join(work, k)]);
  const repo = join(work, 'app');
  await commitRepo(repo, files);
  writeFileSync(join(work, 'authorized_keys'), readFileSync(join(work, 'user.pub'), 'utf8'));
  const sshd = await startSshd(work);
  const agentSock = join(work, 'agent.sock');
  rmSync(agentSock, { force: true });
  const agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
  const stop = (): void => {
    agent.kill();
    sshd.process.kill();
  };
  try {
    await until('the ssh agent', () => existsSync(agentSock));
    execFileSync('ssh-add', ['-q', join(work, 'user')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
  } catch (e) {
    stop();
    throw e;
  }
  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  return { url: `ssh://${user}@127.0.0.1:${sshd.port}${repo}`, agentSock, stop };
}
