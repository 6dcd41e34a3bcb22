import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startGitDaemon } from './git-daemon.js';
import type { SourceOp } from '@kiln/llb-core';
import { LocalSnapshotter } from '@kiln/runtime';
import { GitSources } from '../../src/worker/git.js';
import type { RuntimeWorkerDeps } from '../../src/worker/deps.js';

// A fetch interrupted while git unpacks (Ctrl-C, a cancelled build, a killed kiln) leaves the
// objects written so far in the shared bare repository: the commit comes first, its tree and
// blobs after. The next build must fetch again, not take the lone commit for a complete one.

const source = (identifier: string, attrs: Record<string, string> = {}): SourceOp => ({ identifier, attrs: new Map(Object.entries(attrs)) }) as SourceOp;
const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };
const gitEnv = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' };
const git = (cwd: string, args: readonly string[], input?: string): string => execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv, ...(input === undefined ? {} : { input }) }).trim();

let work: string;
let daemon: ChildProcess;
let url: string;
let repo: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kiln-git-cut-'));
  const served = join(work, 'served');
  repo = join(served, 'repo.git');
  mkdirSync(repo, { recursive: true });
  git(repo, ['-c', 'init.defaultBranch=main', 'init', '-q']);
  writeFileSync(join(repo, 'a.txt'), 'a\n');
  git(repo, ['add', '.']);
  git(repo, ['commit', '-qm', 'one']);
  ({ url, process: daemon } = await startGitDaemon(served));
}, 60_000);

afterAll(() => {
  daemon.kill();
  rmSync(work, { recursive: true, force: true });
});

test('a bare repository holding the commit without its tree (a fetch cut off) is fetched again and checks out', async () => {
  const root = join(work, 'root');
  const snapshotter = new LocalSnapshotter({ root });
  await snapshotter.init();
  const sources = new GitSources({ root, snapshotter, localDirs: {} } as unknown as RuntimeWorkerDeps);
  const op = source('git://127.0.0.1/repo.git#main', { 'git.fullurl': url });
  // The cache key's ls-remote makes the bare repository and fetches nothing.
  const sha = await sources.cacheKey(op, ctx);
  expect(sha).toBe(git(repo, ['rev-parse', 'HEAD']));
  const reposDir = join(root, 'solver', 'git');
  const bare = readdirSync(reposDir, { withFileTypes: true }).filter((e) => e.isDirectory());
  expect(bare).toHaveLength(1);
  const gitDir = join(reposDir, bare[0]?.name ?? '');
  // What an unpack-objects stopped after its first object leaves: the commit alone, no ref.
  const written = git(gitDir, ['hash-object', '-t', 'commit', '-w', '--stdin'], `${git(repo, ['cat-file', 'commit', sha])}\n`);
  expect(written).toBe(sha);
  expect(() => git(gitDir, ['cat-file', '-e', `${sha}^{tree}`])).toThrow();

  const ref = await sources.snapshot(op, ctx);
  const m = await snapshotter.mount(ref.snapshot);
  try {
    expect(readFileSync(join(m.path, 'a.txt'), 'utf8')).toBe('a\n');
  } finally {
    await m.release();
  }
}, 60_000);

test("git's temporary object and pack files a cut-off fetch left are removed before the next fetch; one written to in the last minutes is kept", async () => {
  const root = join(work, 'root-tmp');
  const snapshotter = new LocalSnapshotter({ root });
  await snapshotter.init();
  const sources = new GitSources({ root, snapshotter, localDirs: {} } as unknown as RuntimeWorkerDeps);
  const op = (ref: string): SourceOp => source(`git://127.0.0.1/repo.git#${ref}`, { 'git.fullurl': url });
  await sources.snapshot(op('main'), ctx);
  const reposDir = join(root, 'solver', 'git');
  const gitDir = join(reposDir, readdirSync(reposDir, { withFileTypes: true }).find((e) => e.isDirectory())?.name ?? '');
  // What git leaves when it is stopped mid-fetch: a loose object being written (unpack-objects),
  // a pack and its index being written (index-pack). An hour old, and one just written.
  const objects = join(gitDir, 'objects');
  mkdirSync(join(objects, 'ab'), { recursive: true });
  const stale = [join(objects, 'ab', 'tmp_obj_Xa1b2c'), join(objects, 'pack', 'tmp_pack_Qz9y8x'), join(objects, 'pack', 'tmp_idx_Qz9y8x')];
  const fresh = join(objects, 'pack', 'tmp_pack_Fresh1');
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const f of stale) {
    writeFileSync(f, Buffer.alloc(4096, 1));
    utimesSync(f, hourAgo, hourAgo);
  }
  writeFileSync(fresh, 'being written');
  // A commit the repository has not fetched: the fetch runs, and what it left goes first.
  const wc = join(work, 'wc-tmp');
  git(work, ['clone', '-q', repo, wc]);
  writeFileSync(join(wc, 'b.txt'), 'b\n');
  git(wc, ['add', '.']);
  git(wc, ['commit', '-qm', 'two']);
  git(wc, ['push', '-q', 'origin', 'HEAD:refs/heads/two']);
  const ref = await sources.snapshot(op('two'), ctx);
  expect(stale.filter((f) => existsSync(f))).toEqual([]);
  expect(existsSync(fresh)).toBe(true);
  const m = await snapshotter.mount(ref.snapshot);
  try {
    expect(readFileSync(join(m.path, 'b.txt'), 'utf8')).toBe('b\n');
  } finally {
    await m.release();
  }
}, 60_000);
