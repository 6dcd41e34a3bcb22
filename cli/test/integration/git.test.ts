import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// `ADD <git url>` end to end: a repository served by `git daemon` on 127.0.0.1, real runc.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let daemon: ChildProcess;
let url: string;
let repo: string;
const git = (...args: string[]): string =>
  execFileSync('git', args, { cwd: repo, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' } }).trim();

beforeAll(async () => {
  const served = join(sb.dir, 'git');
  repo = join(served, 'app.git');
  mkdirSync(repo, { recursive: true });
  git('-c', 'init.defaultBranch=main', 'init', '-q');
  writeFileSync(join(repo, 'version'), 'one\n');
  git('add', '.');
  git('commit', '-qm', 'one');
  // Port 0 is not accepted by git daemon: find a free one first.
  const port = 20000 + Math.floor(Math.random() * 20000);
  daemon = spawn('git', ['daemon', '--reuseaddr', `--base-path=${served}`, '--export-all', '--listen=127.0.0.1', `--port=${port}`, served], { stdio: 'ignore' });
  url = `git://127.0.0.1:${port}/app.git`;
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('git', ['ls-remote', url], { stdio: 'ignore' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`git daemon did not start on ${port}`);
}, 60_000);

afterAll(() => {
  daemon.kill();
});

test('ADD of a git branch checks it out; a rebuild is cached until the branch moves', async () => {
  const t = token();
  const ctx = join(sb.dir, `git-${t}`);
  const out = join(sb.dir, `git-out-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nADD ${url}#main /src\nADD --keep-git-dir=true ${url}#main /kept\nRUN cat /src/version > /seen && echo ${t}\n` });
  const first = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(first.stderr).not.toContain('kiln: error');
  expect(first.code).toBe(0);
  expect(readFileSync(join(out, 'seen'), 'utf8')).toBe('one\n');
  expect(existsSync(join(out, 'kept', '.git', 'HEAD'))).toBe(true);
  expect(existsSync(join(out, 'src', '.git'))).toBe(false);

  const started = await sb.containersStarted();
  const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
  expect(again.code).toBe(0);
  expect(await sb.containersStarted()).toBe(started);

  writeFileSync(join(repo, 'version'), 'two\n');
  git('commit', '-qam', 'two');
  const moved = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}-2`]);
  expect(moved.code).toBe(0);
  expect(await sb.containersStarted()).toBe(started + 1);
  expect(readFileSync(join(`${out}-2`, 'seen'), 'utf8')).toBe('two\n');
}, 180_000);

test('ADD of a missing git ref fails with the Dockerfile line and the ref', async () => {
  const ctx = join(sb.dir, `git-missing-${token()}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nADD ${url}#no-such-branch /src\n` });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('does not contain ref no-such-branch');
  expect(r.stderr).toMatch(/Dockerfile:2/);
}, 120_000);

test('kiln du lists the shared git repository; kiln prune removes it and a later build fetches again', async () => {
  const ctx = join(sb.dir, `git-du-${token()}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nADD ${url}#main /src\n` });
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet'])).code).toBe(0);
  const du = await runKiln(sb, ['du', '--root', sb.root, '-v']);
  expect(du.stdout).toContain(`shared git repo for ${url}`);
  const pruned = await runKiln(sb, ['prune', '--root', sb.root, '-v']);
  expect(pruned.code).toBe(0);
  expect(pruned.stdout).toContain(`shared git repo for ${url}`);
  expect((await runKiln(sb, ['du', '--root', sb.root, '-v'])).stdout).not.toContain('shared git repo');
  const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
  expect(again.code).toBe(0);
  expect((await runKiln(sb, ['du', '--root', sb.root, '-v'])).stdout).toContain(`shared git repo for ${url}`);
}, 180_000);
