import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, type KilnSandbox } from './build-helpers.js';
import { startGitOverSsh, type GitOverSsh } from './git-over-ssh.js';

// `kiln build ssh://…` end to end: the repository is fetched over ssh from a real sshd on
// 127.0.0.1 with the key of the ssh agent passed as `--ssh default=SOCKET`, or SSH_AUTH_SOCK's
// without any --ssh (buildx adds --ssh default for an ssh context), as buildx does.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let agentSock: string;
let url: string;
let server: GitOverSsh | undefined;

beforeAll(async () => {
  server = await startGitOverSsh(join(sb.dir, 'ssh'), { Dockerfile: 'FROM busybox\nCOPY msg /msg\n', msg: 'over ssh\n' });
  agentSock = server.agentSock;
  url = server.url;
}, 60_000);

afterAll(() => server?.stop());

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
