import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A `git daemon` serving the repositories under `served` on 127.0.0.1; `url` (of `repo`) answers once it returns. */
export async function startGitDaemon(served: string, repo = 'repo.git'): Promise<{ readonly url: string; readonly process: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const daemon = spawn('git', ['daemon', '--reuseaddr', `--base-path=${served}`, '--export-all', '--listen=127.0.0.1', `--port=${port}`, served], { stdio: 'ignore' });
  const url = `git://127.0.0.1:${port}/${repo}`;
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('git', ['ls-remote', url], { stdio: 'ignore', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, process: daemon };
}
