import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { writeTree } from './build-helpers.js';

const gitEnv = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' };

/** `git ARGS` in `cwd`, without the user's config, with a fixed author; its output trimmed. */
export const gitIn = (cwd: string, ...args: string[]): string => execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv }).trim();

/** Makes `dir` a repository whose branch `main` has one commit of `files`. */
export async function commitRepo(dir: string, files: Record<string, string>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  gitIn(dir, '-c', 'init.defaultBranch=main', 'init', '-q');
  await writeTree(dir, files);
  gitIn(dir, 'add', '-A');
  gitIn(dir, 'commit', '-qm', 'one');
}

/** A bare repository `bare` (to serve) holding `main` with one commit of `files`, made in `work`. */
export async function bareRepo(bare: string, work: string, files: Record<string, string>): Promise<void> {
  await commitRepo(work, files);
  mkdirSync(bare, { recursive: true });
  gitIn(bare, '-c', 'init.defaultBranch=main', 'init', '-q', '--bare');
  gitIn(work, 'push', '-q', bare, 'main');
}
