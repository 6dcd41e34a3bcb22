import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startGitDaemon } from './git-daemon.js';
import type { SourceOp } from '@kiln/llb-core';
import { LocalSnapshotter } from '@kiln/runtime';
import { GitSources, gitCacheKey, parseGitSource } from '../../src/worker/git.js';
import type { RuntimeWorkerDeps } from '../../src/worker/deps.js';

// Git sources against real repositories served by `git daemon` on 127.0.0.1 (git://), checked
// out into real overlay snapshots.

const source = (identifier: string, attrs: Record<string, string> = {}): SourceOp => ({ identifier, attrs: new Map(Object.entries(attrs)) }) as SourceOp;
const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };

describe('parseGitSource (BuildKit GitIdentifier rules)', () => {
  test('remote, ref and subdir from the identifier; git.fullurl keeps the transport', () => {
    expect(parseGitSource(source('git://github.com/moby/buildkit.git#v0.11.6:docs'))).toMatchObject({ remote: 'https://github.com/moby/buildkit.git', ref: 'v0.11.6', subdir: 'docs', keepGitDir: false });
    expect(parseGitSource(source('git://127.0.0.1:9418/r.git#main', { 'git.fullurl': 'git://127.0.0.1:9418/r.git', 'git.keepgitdir': 'true' }))).toMatchObject({ remote: 'git://127.0.0.1:9418/r.git', ref: 'main', subdir: '', keepGitDir: true });
    expect(parseGitSource(source('git://example.com/r.git#:/'))).toMatchObject({ ref: '', subdir: '' });
    expect(parseGitSource(source('git://example.com/r.git', { 'git.fullurl': 'example.com/r.git' })).remote).toBe('https://example.com/r.git');
  });

  test('a subdirectory that leaves the repository is refused', () => {
    for (const sub of ['../../etc', 'a/../../x', 'sub/../..']) {
      expect(() => parseGitSource(source(`git://example.com/r.git#main:${sub}`))).toThrow(/leaves the repository/);
    }
    expect(parseGitSource(source('git://example.com/r.git#main:a/../b')).subdir).toBe('a/../b');
  });

  test('cache key: the commit, .git when the git dir is kept, :subdir', () => {
    const sha = 'a'.repeat(40);
    expect(gitCacheKey(sha, { keepGitDir: false, subdir: '' })).toBe(sha);
    expect(gitCacheKey(sha, { keepGitDir: true, subdir: '' })).toBe(`${sha}.git`);
    expect(gitCacheKey(sha, { keepGitDir: true, subdir: 'sub' })).toBe(`${sha}.git:sub`);
  });
});

describe('GitSources with git daemon', () => {
  let work: string;
  let daemon: ChildProcess;
  let url: string;
  let sources: GitSources;
  let snapshotter: LocalSnapshotter;
  const git = (cwd: string, ...args: string[]): string =>
    execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' } }).trim();
  let repo: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'kiln-git-src-'));
    const served = join(work, 'served');
    repo = join(served, 'repo.git');
    mkdirSync(repo, { recursive: true });
    git(repo, '-c', 'init.defaultBranch=main', 'init', '-q');
    writeFileSync(join(repo, 'hello.txt'), 'v1\n');
    mkdirSync(join(repo, 'sub'));
    writeFileSync(join(repo, 'sub', 'inner.txt'), 'inner v1\n');
    // A symlink in the repository pointing out of it (at a directory of the host).
    mkdirSync(join(work, 'host-secret'));
    writeFileSync(join(work, 'host-secret', 'key'), 'host only\n');
    symlinkSync(join(work, 'host-secret'), join(repo, 'escape'));
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', 'one');
    git(repo, 'tag', 'v1');
    git(repo, 'tag', '-a', 'v1-annotated', '-m', 'annotated');
    ({ url, process: daemon } = await startGitDaemon(served));
    const root = join(work, 'root');
    snapshotter = new LocalSnapshotter({ root });
    await snapshotter.init();
    sources = new GitSources({ root, snapshotter, localDirs: {} } as unknown as RuntimeWorkerDeps);
  }, 60_000);

  afterAll(() => {
    daemon.kill();
    rmSync(work, { recursive: true, force: true });
  });

  /** The files of a snapshot (path → content), .git excluded. */
  async function files(id: string): Promise<Record<string, string>> {
    const m = await snapshotter.mount(id);
    try {
      const out: Record<string, string> = {};
      const walk = (d: string, rel: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          if (e.name === '.git' || e.isSymbolicLink()) continue;
          if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
          else out[`${rel}${e.name}`] = readFileSync(join(d, e.name), 'utf8');
        }
      };
      walk(m.path, '');
      return out;
    } finally {
      await m.release();
    }
  }

  test('a tag, a branch and the default branch resolve to their commits and check out', async () => {
    const sha = git(repo, 'rev-parse', 'HEAD');
    const tag = source(`git://127.0.0.1/repo.git#v1`, { 'git.fullurl': url });
    expect(await sources.cacheKey(tag, ctx)).toBe(sha);
    const ref = await sources.snapshot(tag, ctx);
    expect(await files(ref.snapshot)).toEqual({ 'hello.txt': 'v1\n', 'sub/inner.txt': 'inner v1\n' });
    expect(ref.size).toBeGreaterThan(0);
    // Same commit through the default branch: same key, same snapshot.
    const dflt = source(`git://127.0.0.1/repo.git`, { 'git.fullurl': url });
    expect(await sources.cacheKey(dflt, ctx)).toBe(sha);
    expect((await sources.snapshot(dflt, ctx)).snapshot).toBe(ref.snapshot);
  });

  test('a new commit on the branch changes its key (a new build sees it); the tag keeps its commit', async () => {
    writeFileSync(join(repo, 'hello.txt'), 'v2\n');
    git(repo, 'commit', '-qam', 'two');
    const sha2 = git(repo, 'rev-parse', 'HEAD');
    const fresh = new GitSources({ root: join(work, 'root'), snapshotter, localDirs: {} } as unknown as RuntimeWorkerDeps);
    const main = source(`git://127.0.0.1/repo.git#main`, { 'git.fullurl': url });
    expect(await fresh.cacheKey(main, ctx)).toBe(sha2);
    expect((await files((await fresh.snapshot(main, ctx)).snapshot))['hello.txt']).toBe('v2\n');
    const tag = source(`git://127.0.0.1/repo.git#v1`, { 'git.fullurl': url });
    expect((await files((await fresh.snapshot(tag, ctx)).snapshot))['hello.txt']).toBe('v1\n');
    // A full commit sha needs no ls-remote and checks out that commit.
    const first = git(repo, 'rev-parse', 'v1');
    const bySha = source(`git://127.0.0.1/repo.git#${first}`, { 'git.fullurl': url });
    expect(await fresh.cacheKey(bySha, ctx)).toBe(first);
    expect((await files((await fresh.snapshot(bySha, ctx)).snapshot))['hello.txt']).toBe('v1\n');
  });

  test('a subdirectory becomes the root; keep-git-dir keeps a .git whose origin is the remote', async () => {
    const sub = source(`git://127.0.0.1/repo.git#v1:sub`, { 'git.fullurl': url });
    expect(await sources.cacheKey(sub, ctx)).toMatch(/^[a-f0-9]{40}:sub$/);
    expect(await files((await sources.snapshot(sub, ctx)).snapshot)).toEqual({ 'inner.txt': 'inner v1\n' });
    const keep = source(`git://127.0.0.1/repo.git#v1`, { 'git.fullurl': url, 'git.keepgitdir': 'true' });
    expect(await sources.cacheKey(keep, ctx)).toMatch(/^[a-f0-9]{40}\.git$/);
    const ref = await sources.snapshot(keep, ctx);
    const m = await snapshotter.mount(ref.snapshot);
    try {
      expect(existsSync(join(m.path, '.git', 'HEAD'))).toBe(true);
      expect(git(m.path, 'remote', 'get-url', 'origin')).toBe(url);
      expect(git(m.path, 'rev-parse', 'HEAD')).toBe(git(repo, 'rev-parse', 'v1'));
      expect(git(m.path, 'status', '--porcelain')).toBe('');
    } finally {
      await m.release();
    }
  });

  test('a subdirectory that is a symlink out of the repository is refused and the host directory is untouched', async () => {
    const esc = source(`git://127.0.0.1/repo.git#v1:escape`, { 'git.fullurl': url });
    await expect(sources.snapshot(esc, ctx)).rejects.toMatchObject({ code: 'SOLVER_GIT_FAILED', message: expect.stringContaining('not a directory inside the repository') });
    expect(readFileSync(join(work, 'host-secret', 'key'), 'utf8')).toBe('host only\n');
  });

  test('the default branch is fetched by name, shallow; keep-git-dir keeps the tag so git describe works', async () => {
    const own = new LocalSnapshotter({ root: join(work, 'root-dflt') });
    await own.init();
    const fresh = new GitSources({ root: join(work, 'root-dflt'), snapshotter: own, localDirs: {} } as unknown as RuntimeWorkerDeps);
    const dflt = source(`git://127.0.0.1/repo.git`, { 'git.fullurl': url });
    await fresh.snapshot(dflt, ctx);
    const bare = readdirSync(join(work, 'root-dflt', 'solver', 'git')).find((n) => !n.endsWith('.lock')) as string;
    const bareDir = join(work, 'root-dflt', 'solver', 'git', bare);
    expect(git(bareDir, 'rev-list', '--count', '--all'), readdirSync(bareDir).join(' ')).toBe('1');
    expect(existsSync(join(bareDir, 'shallow'))).toBe(true);
    const keep = source(`git://127.0.0.1/repo.git#v1-annotated`, { 'git.fullurl': url, 'git.keepgitdir': 'true' });
    const m = await snapshotter.mount((await sources.snapshot(keep, ctx)).snapshot);
    try {
      expect(git(m.path, 'describe', '--tags')).toBe('v1-annotated');
    } finally {
      await m.release();
    }
  });

  test('a missing ref or repository is a clear SOLVER_GIT_FAILED error', async () => {
    await expect(sources.cacheKey(source('git://127.0.0.1/repo.git#nope', { 'git.fullurl': url }), ctx)).rejects.toMatchObject({ code: 'SOLVER_GIT_FAILED', message: expect.stringContaining('does not contain ref nope') });
    await expect(sources.cacheKey(source('git://127.0.0.1/missing.git#main', { 'git.fullurl': url.replace('repo.git', 'missing.git') }), ctx)).rejects.toMatchObject({ code: 'SOLVER_GIT_FAILED', message: expect.stringContaining('git ls-remote failed for git://127.0.0.1') });
  });

  test('credentials of the remote stay out of the error, git\'s own words included (it names the remote it could not reach)', async () => {
    for (const remote of ['https://tok:s3cret@nosuch.invalid/r.git', 'http://user:p@ss@127.0.0.1:1/r.git', 'git://user:s3cret@127.0.0.1:1/r.git']) {
      const err = await sources.cacheKey(source(`${remote.replace(/^[a-z]+:\/\/[^/]*@/, 'git://')}#main`, { 'git.fullurl': remote }), ctx).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err).toMatchObject({ code: 'SOLVER_GIT_FAILED' });
      expect(err?.message).not.toMatch(/s3cret|p@ss|ss@/);
    }
  });
});
