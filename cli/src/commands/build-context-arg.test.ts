import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { parseFlags, type BuildFlags } from './build.js';

// kiln build's context argument as parseFlags reads it (nothing is fetched or built): buildx's
// implied --ssh default for an ssh git context, and the hint for a HOST/ORG/REPO path.
let cwd: string;
let sock: string;
let agent: Server;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'kiln-context-arg-'));
  sock = join(cwd, 'agent.sock');
  agent = createServer();
  await new Promise<void>((r) => agent.listen(sock, r));
});
afterAll(async () => {
  await new Promise((r) => agent.close(r));
  await rm(cwd, { recursive: true, force: true });
});

const io = (env: Record<string, string>): CliIo => ({
  stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
  stdout: { write: () => true },
  stderr: { write: () => true },
  cwd,
  env,
});
const flags = (over: Partial<BuildFlags>): BuildFlags => ({
  buildArg: [], secret: [], ssh: [], output: [], tag: [], progress: 'auto', cache: true, cacheFilter: [], buildContext: [],
  allow: [], label: [], addHost: [], ulimit: [], ...over,
});

async function parse(context: string, over: Partial<BuildFlags>, env: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof parseFlags>>['req']> {
  const cleanup: (() => Promise<void>)[] = [];
  try {
    return (await parseFlags(context, flags(over), io(env), cleanup)).req;
  } finally {
    for (const c of cleanup) await c();
  }
}

test('an ssh git context without --ssh forwards the SSH_AUTH_SOCK agent as default (buildx IsGitSSH)', async () => {
  for (const ctx of ['ssh://git@example.com/org/app.git#main', 'git@example.com:org/app.git']) {
    expect((await parse(ctx, {}, { SSH_AUTH_SOCK: sock })).ssh).toEqual({ default: sock });
  }
  // not for other contexts, nor when --ssh is given (buildx adds it only to no --ssh at all)
  expect((await parse('git://example.com/app.git', {}, { SSH_AUTH_SOCK: sock })).ssh ?? {}).toEqual({});
  expect((await parse('ssh://git@example.com/app.git', { ssh: [`key=${sock}`] }, { SSH_AUTH_SOCK: sock })).ssh).toEqual({ key: sock });
});

test('without an agent the implied --ssh default says so, naming the context', async () => {
  await expect(parse('ssh://git:pw@example.com/app.git#main', {})).rejects.toMatchObject({
    code: 'KLN0702',
    message: 'the build context ssh://git@example.com/app.git#main is fetched over ssh with your agent (an implied --ssh default, as buildx): SSH_AUTH_SOCK is not set',
    hint: expect.stringContaining('ssh-agent') as unknown,
  });
});

test('a missing HOST/ORG/REPO context hints at its https git URL (only github.com is read so)', async () => {
  await expect(parse('gitlab.com/org/app#v1:svc', {})).rejects.toMatchObject({
    code: 'KLN0702',
    message: 'cannot use build context gitlab.com/org/app#v1:svc: no such directory',
    hint: 'to build the git repository, pass its URL: https://gitlab.com/org/app.git#v1:svc',
  });
  await expect(parse('git.example.com/org/app.git', {})).rejects.toMatchObject({ hint: 'to build the git repository, pass its URL: https://git.example.com/org/app.git' });
  // a plain missing path gets none
  for (const ctx of ['missing/dir/here', 'app.v2/src/x', './gitlab.com/org/app']) {
    await expect(parse(ctx, {})).rejects.toMatchObject({ message: `cannot use build context ${ctx}: no such directory`, hint: undefined });
  }
});
