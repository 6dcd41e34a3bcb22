import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/**
 * Serves one request with `git http-backend` (CGI) for the repositories under `projectRoot`:
 * request body in, `Status:` and headers parsed off its output, the rest streamed back.
 */
export function gitHttpBackend(projectRoot: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const header = (k: string): string => String(req.headers[k] ?? '');
  const cgi = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: header('content-type'),
      ...(req.headers['content-length'] === undefined ? {} : { CONTENT_LENGTH: header('content-length') }),
      ...(req.headers['content-encoding'] === undefined ? {} : { HTTP_CONTENT_ENCODING: header('content-encoding') }),
      ...(req.headers['git-protocol'] === undefined ? {} : { GIT_PROTOCOL: header('git-protocol') }),
      REMOTE_USER: 'kiln',
      REMOTE_ADDR: '127.0.0.1',
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let started = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (started) return void res.write(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    started = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      const [k, v] = [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
      if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10);
      else res.setHeader(k, v);
    }
    res.writeHead(status);
    res.write(head.subarray(end + 4));
  });
  cgi.once('close', () => res.end());
}
