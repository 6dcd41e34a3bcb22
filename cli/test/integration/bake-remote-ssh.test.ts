import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, type KilnSandbox } from './build-helpers.js';
import { startGitOverSsh, type GitOverSsh } from './git-over-ssh.js';

// `kiln bake ssh://…` end to end: the definition and the target's context come over ssh from a
// real sshd on 127.0.0.1, with the agent buildx's way (SSH_AUTH_SOCK, or BUILDX_BAKE_GIT_SSH).
// FROM scratch: no container.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let agentSock: string;
let url: string;
let server: GitOverSsh | undefined;
const t = token();

beforeAll(async () => {
  server = await startGitOverSsh(join(sb.dir, 'ssh'), {
    'docker-bake.hcl': 'target "default" {\n  output = ["type=local,dest=out"]\n}\n',
    Dockerfile: 'FROM scratch\nCOPY msg /msg\n',
    msg: `over ssh ${t}\n`,
  });
  agentSock = server.agentSock;
  url = `${server.url}#main`;
}, 60_000);

afterAll(() => server?.stop());

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
