import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { SourceOp } from '@kiln/llb-core';
import { onKilnGone } from '@kiln/runtime';
import { SolverError } from '../errors.js';
import type { WorkerOpContext } from '../llb/worker.js';
import type { WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { withFileLock } from './file-lock.js';
import { sessionOf } from './session.js';
import { commitNew, dirSize, hasSnapshot, withLeases, withMounted } from './snapshots.js';

/** A git source as BuildKit's GitIdentifier: remote, ref, subdirectory and options. */
export interface GitSpec {
  readonly remote: string;
  /** Branch, tag or full commit sha; empty means the remote's default branch. */
  readonly ref: string;
  /** Subdirectory of the repository to use as the root ('' for all of it). */
  readonly subdir: string;
  readonly keepGitDir: boolean;
  /** Secret ids whose values authenticate HTTP(S) fetches (BuildKit's defaults: GIT_AUTH_TOKEN, GIT_AUTH_HEADER). */
  readonly authTokenSecret: string;
  readonly authHeaderSecret: string;
  /** known_hosts lines for ssh remotes ('' means host keys are not checked, as in BuildKit). */
  readonly knownSshHosts: string;
  /** ssh agent id to use for ssh remotes ('' for none). */
  readonly mountSshSock: string;
}

const GIT_TRANSPORTS = ['http://', 'https://', 'git://', 'ssh://', 'git@'];
const isGitTransport = (s: string): boolean => GIT_TRANSPORTS.some((p) => s.startsWith(p));
const isCommitSha = (s: string): boolean => /^[a-f0-9]{40}$/.test(s);

/**
 * Parses a `git://` source op as BuildKit does: the identifier after `git://` is `remote#ref:subdir`
 * (a remote without a transport means https), and the `git.fullurl` attribute, when set, is the
 * remote to fetch (so `git://host/repo` and `http://` remotes keep their transport).
 */
export function parseGitSource(op: SourceOp): GitSpec {
  const id = (op.identifier ?? '').replace(/^git:\/\//, '');
  const hash = id.indexOf('#');
  let remote = hash < 0 ? id : id.slice(0, hash);
  const fragment = hash < 0 ? '' : id.slice(hash + 1);
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  let subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  if (subdir !== '') {
    const clean = posix.normalize(subdir);
    if (clean === '/' || clean === '.' || clean === './') subdir = '';
    // The checkout is made on the host: a subdirectory must name a place inside the repository.
    else if (clean.split('/').includes('..')) {
      throw new SolverError('SOLVER_GIT_FAILED', `git subdirectory ${JSON.stringify(subdir)} leaves the repository`, { hint: 'use a path inside the repository after #ref:' });
    }
  }
  if (!isGitTransport(remote)) remote = `https://${remote}`;
  const attr = (k: string): string => op.attrs?.get(k) ?? '';
  const full = attr('git.fullurl');
  if (full !== '') remote = isGitTransport(full) ? full : `https://${full}`;
  return {
    remote,
    ref,
    subdir,
    keepGitDir: attr('git.keepgitdir') === 'true',
    authTokenSecret: attr('git.authtokensecret'),
    authHeaderSecret: attr('git.authheadersecret'),
    knownSshHosts: attr('git.knownsshhosts'),
    mountSshSock: attr('git.mountsshsock'),
  };
}

/** BuildKit's git cache key: the commit sha, `.git` when the .git directory is kept, `:subdir` for a subdirectory. */
export function gitCacheKey(sha: string, spec: Pick<GitSpec, 'keepGitDir' | 'subdir'>): string {
  return `${sha}${spec.keepGitDir ? '.git' : ''}${spec.subdir === '' ? '' : `:${spec.subdir}`}`;
}

/** A remote URL with any user:password removed, for messages. */
export function redactRemote(remote: string): string {
  // up to the authority's last `@` (a password may hold one, as Go's url.Parse reads it)
  return remote.replace(/^([a-z+]+:\/\/)[^/]*@/i, '$1');
}

/**
 * git's own message with the credentials of `remote` taken out: git names the remote in its
 * errors (`unable to look up user:secret@host`, `repository 'https://tok@host/…' not found`),
 * which go to the step error and the history record.
 */
function scrubRemote(text: string, remote: string): string {
  const userinfo = /^[a-z+]+:\/\/([^/]*)@/i.exec(remote)?.[1];
  let out = text.replace(/([a-z+]+:\/\/)[^/\s'"]*@/gi, '$1');
  if (userinfo !== undefined && userinfo !== '') out = out.split(`${userinfo}@`).join('').split(userinfo).join('***');
  return out;
}

/** A resolved git ref: the commit, and the ref to fetch it by. */
interface Resolved {
  readonly sha: string;
  readonly ref: string;
}

/** The remote's default branch name (`ls-remote --symref origin HEAD`). */
async function defaultBranch(git: GitRun): Promise<string> {
  const out = await run(git, ['ls-remote', '--symref', 'origin', 'HEAD']);
  const name = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(out)?.[1];
  if (name === undefined) throw new SolverError('SOLVER_GIT_FAILED', `could not find the default branch of ${redactRemote(git.remote)}`, { hint: 'name a branch or tag after # in the git URL' });
  return name;
}

/** How git runs: the repository (GIT_DIR), and an environment carrying auth (never in argv, never on disk). */
interface GitRun {
  readonly gitDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly signal: AbortSignal | undefined;
  readonly remote: string;
  /** Whether git was given http credentials (an auth secret or the URL's user:password). */
  readonly httpAuth?: boolean;
  /** The ssh agents git's ssh authenticates with (absent: none), asked again for each git command. */
  readonly ssh?: SshAgents;
  cleanup(): Promise<void>;
}

/** The agents of one ssh id: every attached build's, first joined first, as they are at the time of asking. */
interface SshAgents {
  readonly id: string;
  sockets(): readonly string[];
  /** Whether the agent at `socket` accepts connections but answers nothing (asked once per repository use). */
  silent(socket: string): Promise<boolean>;
}

/**
 * `git://` sources (ADD <git url>, llb.Git): the commit a ref names is resolved with `git ls-remote`
 * for the cache key; the checkout is fetched into one bare repository per remote under
 * `<root>/solver/git/` (shallow, shared by builds and processes under a file lock) and checked out
 * into a snapshot named by the cache key, with submodules. As in BuildKit, `keepGitDir` keeps a
 * `.git` whose origin is the remote, and a subdirectory becomes the snapshot's root.
 */
export class GitSources {
  readonly #deps: RuntimeWorkerDeps;
  /** remote#ref → the commit and the ref to fetch it by (the default branch's name for an empty ref). */
  readonly #resolved = new Map<string, Promise<Resolved>>();

  constructor(deps: RuntimeWorkerDeps) {
    this.#deps = deps;
  }

  async cacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string> {
    const spec = parseGitSource(op);
    return gitCacheKey((await this.#resolve(spec, ctx)).sha, spec);
  }

  async snapshot(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef> {
    const spec = parseGitSource(op);
    const { sha, ref } = await this.#resolve(spec, ctx);
    const key = gitCacheKey(sha, spec);
    const id = `git-${createHash('sha256').update(`${spec.remote}\n${key}`).digest('hex').slice(0, 48)}`;
    const s = this.#deps.snapshotter;
    return withLeases(this.#deps, ctx.signal, async (leases) => {
      leases.hold(id); // before the lookup: a prune meanwhile keeps it
      if (!(await hasSnapshot(s, id))) {
        await this.#withRepo(spec, ctx, async (git) => {
          if (await hasSnapshot(s, id)) return;
          await this.#fetch(git, ref, sha);
          await commitNew(s, id, ctx.signal, (root) => this.#checkout(git, spec, ref, sha, root));
        });
      }
      const size = await withMounted(s, id, ctx.signal, (root) => dirSize(root)).catch(() => 0);
      return { snapshot: id, size };
    });
  }

  /** The commit `spec.ref` names now (a full sha is used as is), once per build and remote#ref. */
  #resolve(spec: GitSpec, ctx: WorkerOpContext): Promise<Resolved> {
    if (isCommitSha(spec.ref)) return Promise.resolve({ sha: spec.ref, ref: spec.ref });
    const k = `${spec.remote}#${spec.ref}`;
    let p = this.#resolved.get(k);
    if (p === undefined) {
      p = this.#withRepo(spec, ctx, async (git) => {
        // No ref: the remote's default branch, by name (BuildKit's getDefaultBranch), so the fetch is shallow.
        const ref = spec.ref === '' ? await defaultBranch(git) : spec.ref;
        return { sha: await this.#lsRemote(git, ref), ref };
      });
      p.catch(() => this.#resolved.delete(k));
      this.#resolved.set(k, p);
    }
    return p;
  }

  async #lsRemote(git: GitRun, ref: string): Promise<string> {
    const out = await run(git, ['ls-remote', 'origin', ref]);
    const tab = out.indexOf('\t');
    if (tab < 0) throw new SolverError('SOLVER_GIT_FAILED', `repository ${redactRemote(git.remote)} does not contain ref ${ref}`, { hint: 'check the branch or tag after # in the git URL' });
    const sha = out.slice(0, tab);
    if (!isCommitSha(sha)) throw new SolverError('SOLVER_GIT_FAILED', `invalid commit sha ${JSON.stringify(sha)} for ${ref}`);
    return sha;
  }

  /** Makes `sha` present in the bare repository (a shallow fetch of the ref, or the commit). */
  async #fetch(git: GitRun, ref: string, sha: string): Promise<void> {
    // Present with everything it reaches (git's own connectivity check): a fetch cut off while
    // git unpacked (Ctrl-C, a cancelled build) leaves the commit without its tree or blobs, and
    // took for complete, the repository failed every later checkout. Objects reachable from a
    // ref are complete (git moves refs last), so `--not --all` makes this one lookup there.
    const have = await run(git, ['rev-list', '--quiet', '--objects', sha, '--not', '--all']).then(
      () => true,
      () => false,
    );
    if (have) return;
    await rm(join(git.gitDir, 'shallow.lock'), { force: true });
    await removeStaleTmp(git.gitDir, Date.now());
    const args = isCommitSha(ref) ? ['fetch', ...((await exists(join(git.gitDir, 'shallow'))) ? ['--unshallow'] : []), 'origin'] : ['fetch', '--depth=1', '--no-tags', 'origin', '--force', `${ref}:tags/${ref}`];
    await run(git, args);
    await run(git, ['reflog', 'expire', '--all', '--expire=now']);
  }

  async #checkout(git: GitRun, spec: GitSpec, ref: string, sha: string, root: string): Promise<void> {
    const subdir = spec.subdir === '' ? '.' : posix.normalize(spec.subdir).replace(/^\/+/, '');
    if (spec.keepGitDir && subdir === '.') {
      // A real clone (through file://, which disables the local-clone shortcuts) whose origin
      // is the remote, checked out at the commit.
      const dotGit = join(root, '.git');
      const inTree: GitRun = { ...git, gitDir: dotGit };
      await run(inTree, ['-c', 'init.defaultBranch=master', 'init'], root);
      await run(inTree, ['remote', 'add', 'origin', `file://${git.gitDir}`], root);
      // As BuildKit: the branch or tag exists in the clone too (`git describe` works); a commit
      // is fetched through a temporary ref.
      const annotated = (await run(git, ['cat-file', '-t', ref]).catch(() => '')).trim() === 'tag';
      let pull = `${ref}:${ref}`;
      if (annotated) pull = `${ref}:refs/tags/${ref}`;
      else if (isCommitSha(ref)) {
        pull = `refs/kiln/${sha}`;
        await run(git, ['update-ref', pull, sha]);
      }
      await run(inTree, ['fetch', '-u', '--depth=1', 'origin', pull], root);
      await run(inTree, ['checkout', 'FETCH_HEAD'], root);
      await run(inTree, ['remote', 'set-url', 'origin', redactRemote(spec.remote)], root);
      if (isCommitSha(ref)) await run(git, ['update-ref', '-d', pull]);
      await run(inTree, ['reflog', 'expire', '--all', '--expire=now'], root);
      await rm(join(dotGit, 'FETCH_HEAD'), { force: true });
      await run(inTree, ['submodule', 'update', '--init', '--recursive', '--depth=1'], root);
      return;
    }
    const into = subdir === '.' ? root : await mkdtemp(join(root, 'checkout'));
    await run(git, ['--work-tree', into, 'checkout', sha, '--', '.'], into);
    await run(git, ['--work-tree', into, 'submodule', 'update', '--init', '--recursive', '--depth=1'], into);
    if (subdir !== '.') {
      // Resolved for real: a symlink in the repository must not lead the move out of the checkout.
      const base = await realpath(into);
      const from = await realpath(join(into, subdir)).catch(() => undefined);
      const names = from === undefined || !from.startsWith(`${base}/`) ? undefined : await readdir(from).catch(() => undefined);
      if (from === undefined || names === undefined) {
        throw new SolverError('SOLVER_GIT_FAILED', `${redactRemote(spec.remote)}#${spec.ref}: subdirectory ${spec.subdir} is not a directory inside the repository`);
      }
      for (const n of names) await rename(join(from, n), join(root, n));
      await rm(into, { recursive: true, force: true });
    }
  }

  /**
   * Runs `fn` with this remote's bare repository, locked against other builds and processes. Auth
   * from the build's secrets and ssh agents goes into git's environment (GIT_CONFIG_* and
   * GIT_SSH_COMMAND), so it never reaches argv, the repository config or the cache.
   */
  async #withRepo<T>(spec: GitSpec, ctx: WorkerOpContext, fn: (git: GitRun) => Promise<T>): Promise<T> {
    const base = gitReposDir(this.#deps.root);
    const gitDir = join(base, createHash('sha256').update(spec.remote).digest('hex').slice(0, 32));
    await mkdir(base, { recursive: true });
    return withFileLock(`${gitDir}.lock`, ctx.signal, async () => {
      const git = await this.#gitEnv(spec, gitDir, ctx);
      try {
        if (!(await exists(join(gitDir, 'HEAD')))) {
          await rm(gitDir, { recursive: true, force: true });
          await mkdir(gitDir, { recursive: true });
          await run(git, ['-c', 'init.defaultBranch=master', 'init', '--bare']);
          await run(git, ['remote', 'add', 'origin', storedRemote(spec.remote)]);
        } else {
          await run(git, ['remote', 'set-url', 'origin', storedRemote(spec.remote)]);
        }
        return await fn(git);
      } finally {
        await git.cleanup();
        // The repository's mtime is its last use, for `kiln du` and `kiln prune --keep-storage`.
        const now = new Date();
        await utimes(gitDir, now, now).catch(() => undefined);
      }
    });
  }

  async #gitEnv(spec: GitSpec, gitDir: string, ctx: WorkerOpContext): Promise<GitRun> {
    const signal = ctx.signal;
    const config: [string, string][] = [['protocol.file.allow', 'user']];
    // A git source is shared by the builds that need it: auth comes from one still attached.
    const session = sessionOf(this.#deps, ctx);
    // First: a refused secret leaves no temporary HOME behind.
    const auth = authorization(spec, (id) => session.secret(id));
    if (auth !== undefined) config.push([`http.${tokenScope(redactRemote(spec.remote))}.extraheader`, `Authorization: ${auth}`]);
    // The repository's config names the remote without its credentials (see #withRepo): git
    // gets them back through its environment, for the remote's host. Not as a url.insteadOf to
    // the URL with them: git hands the URL it fetches to git-remote-http(s) as an argument, which
    // every user of the host reads in `ps`. A credential helper that prints two variables of
    // git's environment keeps them out of every command line.
    const extra: NodeJS.ProcessEnv = {};
    const rewrite = credentialRewrite(spec.remote);
    const creds = urlCredentials(spec.remote);
    if (creds !== undefined && rewrite !== undefined) {
      config.push([`credential.${rewrite.stored}.helper`, CREDENTIAL_HELPER]);
      extra[CREDENTIAL_USER_VAR] = creds.username;
      extra[CREDENTIAL_PASSWORD_VAR] = creds.password;
    } else if (rewrite !== undefined) {
      config.push([`url.${rewrite.real}.insteadOf`, rewrite.stored]);
    }
    const home = await mkdtemp(join(tmpdir(), 'kiln-git-'));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: home,
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_COUNT: String(config.length),
      ...proxyEnv(),
      ...extra,
    };
    config.forEach(([k, v], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = k;
      env[`GIT_CONFIG_VALUE_${i}`] = v;
    });
    const ssh = ['ssh', '-F', '/dev/null'];
    if (spec.knownSshHosts !== '') {
      const file = join(home, 'known_hosts');
      await writeFile(file, spec.knownSshHosts);
      ssh.push('-o', `UserKnownHostsFile=${file}`);
    } else {
      ssh.push('-o', 'StrictHostKeyChecking=no');
    }
    // kiln never prompts: a password or passphrase question would go to the terminal of `kiln
    // build`, once for each agent tried (GIT_TERMINAL_PROMPT=0 is git's half of this).
    ssh.push('-o', 'BatchMode=yes');
    env['GIT_SSH_COMMAND'] = ssh.join(' ');
    const cleanup = (): Promise<void> => rm(home, { recursive: true, force: true });
    const httpAuth = auth !== undefined || creds !== undefined;
    if (spec.mountSshSock === '') return { gitDir, env, signal, remote: spec.remote, httpAuth, cleanup };
    const id = spec.mountSshSock;
    if (session.sshSockets(id).length === 0) {
      await cleanup();
      throw new SolverError('SOLVER_GIT_FAILED', `no SSH agent "${id}" for ${redactRemote(spec.remote)}`, { hint: `pass --ssh ${id}` });
    }
    // The agent is chosen per ssh connection among the builds attached then (see run), not once
    // here: the build that started the fetch may leave, or its agent lack the key, while another
    // attached build's agent has it.
    const checked = new Map<string, Promise<boolean>>();
    const silent = (socket: string): Promise<boolean> => {
      let p = checked.get(socket);
      if (p === undefined) checked.set(socket, (p = agentSilent(socket, agentTimeoutMs(), signal)));
      return p;
    };
    return { gitDir, env, signal, remote: spec.remote, httpAuth, ssh: { id, sockets: () => session.sshSockets(id), silent }, cleanup };
  }
}

/**
 * The proxy variables git (curl) reads, passed through from this process's environment as
 * BuildKit's gitutil passes them (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY, either case).
 * curl applies its own rules to them: the lower-case name wins, http_proxy counts only in lower
 * case, and ALL_PROXY serves any scheme without a variable of its own.
 */
function proxyEnv(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const n of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'all_proxy']) {
    const v = process.env[n];
    if (v !== undefined) out[n] = v;
  }
  return out;
}

/** Where the shared bare repositories of a kiln root live. */
function gitReposDir(root: string): string {
  return join(root, 'solver', 'git');
}

/** One shared bare repository of git sources (BuildKit lists these as "shared git repo for …"). */
export interface GitRepoUsage {
  readonly id: string;
  readonly remote: string;
  readonly size: number;
  readonly lastUsed: number;
}

/** The shared bare repositories under `root`, for `kiln du`. */
export async function gitRepoUsage(root: string): Promise<GitRepoUsage[]> {
  const base = gitReposDir(root);
  const names = await readdir(base).catch(() => [] as string[]);
  const out: GitRepoUsage[] = [];
  for (const name of names) {
    if (!/^[a-f0-9]{32}$/.test(name)) continue;
    const dir = join(base, name);
    const config = await readFile(join(dir, 'config'), 'utf8').catch(() => '');
    const remote = redactRemote(/\[remote "origin"\][^[]*?url = (.*)/.exec(config)?.[1]?.trim() ?? '');
    const st = await stat(dir).catch(() => undefined);
    if (st === undefined) continue;
    out.push({ id: `git-repo-${name}`, remote, size: await dirSize(dir), lastUsed: st.mtimeMs });
  }
  return out;
}

/** Removes one shared repository (by {@link GitRepoUsage.id}), waiting for a build using it. */
export async function removeGitRepo(root: string, id: string): Promise<void> {
  const name = id.replace(/^git-repo-/, '');
  if (!/^[a-f0-9]{32}$/.test(name)) return;
  const dir = join(gitReposDir(root), name);
  await withFileLock(`${dir}.lock`, undefined, () => rm(dir, { recursive: true, force: true }));
}

/**
 * The secrets that may authenticate the fetch, in BuildKit's order (source/git authSecretNames):
 * the header secret, then the token secret, for the remote's host (`GIT_AUTH_HEADER.HOST`, HOST
 * as Go's url.URL.Host has it: with its port, without user info), then without a host. A remote
 * that is no URL (`git@HOST:PATH`) has none, as Go's url.Parse fails on it there.
 */
export function authSecretNames(spec: Pick<GitSpec, 'remote' | 'authHeaderSecret' | 'authTokenSecret'>): { readonly name: string; readonly token: boolean }[] {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(spec.remote)?.[1];
  if (authority === undefined) return [];
  const host = authority.slice(authority.lastIndexOf('@') + 1);
  const out: { name: string; token: boolean }[] = [];
  if (spec.authHeaderSecret !== '') out.push({ name: `${spec.authHeaderSecret}.${host}`, token: false });
  if (spec.authTokenSecret !== '') out.push({ name: `${spec.authTokenSecret}.${host}`, token: true });
  if (spec.authHeaderSecret !== '') out.push({ name: spec.authHeaderSecret, token: false });
  if (spec.authTokenSecret !== '') out.push({ name: spec.authTokenSecret, token: true });
  return out;
}

/**
 * The Authorization value of the first secret of {@link authSecretNames} the build has: a header
 * secret as it is (`Bearer TOKEN`, `basic BASE64`), a token as BuildKit sends it, Basic auth of
 * the user `x-access-token` (GitHub's form; other hosts may want the header secret instead).
 */
export function authorization(spec: Pick<GitSpec, 'remote' | 'authHeaderSecret' | 'authTokenSecret'>, secret: (id: string) => Uint8Array | undefined): string | undefined {
  for (const s of authSecretNames(spec)) {
    const v = secret(s.name);
    if (v === undefined) continue;
    const text = Buffer.from(v).toString('utf8');
    // BuildKit sends it as it is: a token file written by `echo` fails with 401 there, a header
    // with a line break ends git's request headers early. Said here, with the secret's name.
    if (/[\r\n]/.test(text)) {
      throw new SolverError('SOLVER_GIT_FAILED', `the secret ${s.name} (auth for ${redactRemote(spec.remote)}) holds a line break, which would be sent as part of the ${s.token ? 'token' : 'Authorization header'}`, {
        hint: `write it without one: printf %s "$TOKEN" > FILE (echo adds a newline), or --secret id=${s.name},env=VARIABLE`,
      });
    }
    return s.token ? `basic ${Buffer.from(`x-access-token:${text}`).toString('base64')}` : text;
  }
  return undefined;
}

/**
 * For a remote with credentials in its URL (an http(s) URL's user info, a password in any
 * other): the prefix git is to fetch through (`https://user:token@host/`) and the one the
 * repository's config stores instead (`https://host/`), so that the config under the kiln root
 * (read by `kiln du`, kept after the build) holds no secret; BuildKit's cached repository keeps
 * them. The whole host is mapped, as the stored origin is: relative submodules of the
 * repository resolve against it. An ssh user alone (`ssh://git@host/…`) is no secret: kept.
 */
export function credentialRewrite(remote: string): { readonly real: string; readonly stored: string } | undefined {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i.exec(remote);
  const scheme = m?.[1] ?? '';
  const authority = m?.[2] ?? '';
  const at = authority.lastIndexOf('@');
  if (at < 0 || (!/^https?:\/\//i.test(scheme) && !authority.slice(0, at).includes(':'))) return undefined;
  return { real: `${scheme}${authority}/`, stored: `${scheme}${authority.slice(at + 1)}/` };
}

/** git's environment variables the {@link CREDENTIAL_HELPER} answers with. */
const CREDENTIAL_USER_VAR = 'KILN_GIT_USERNAME';
const CREDENTIAL_PASSWORD_VAR = 'KILN_GIT_PASSWORD';
/**
 * A git credential helper (run by git through sh) that answers `get` with the URL's user and
 * password from git's environment: its command line names the variables, not their values.
 */
const CREDENTIAL_HELPER = `!f() { test "$1" = get || exit 0; cat >/dev/null; printf 'username=%s\\npassword=%s\\n' "$${CREDENTIAL_USER_VAR}" "$${CREDENTIAL_PASSWORD_VAR}"; }; f`;

/**
 * The user and password of an http(s) remote's URL, percent-decoded as git's credential_from_url
 * decodes them (a user alone has an empty password: git sends `user:` for it too). Undefined for
 * a URL without user info and for other schemes (git:// and ssh:// send no password).
 */
export function urlCredentials(remote: string): { readonly username: string; readonly password: string } | undefined {
  const authority = /^https?:\/\/([^/?#]*)/i.exec(remote)?.[1];
  const at = authority?.lastIndexOf('@') ?? -1;
  if (authority === undefined || at < 0) return undefined;
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return { username: decode(colon < 0 ? userinfo : userinfo.slice(0, colon)), password: decode(colon < 0 ? '' : userinfo.slice(colon + 1)) };
}

/** The remote as the shared repository's config names it: without the credentials {@link credentialRewrite} maps. */
export function storedRemote(remote: string): string {
  const r = credentialRewrite(remote);
  return r === undefined ? remote : `${r.stored}${remote.slice(r.real.length)}`;
}

/** BuildKit's token scope: any github.com remote shares the github.com token. */
function tokenScope(remote: string): string {
  for (const p of ['https://github.com/', 'https://www.github.com/']) if (remote.startsWith(p)) return p;
  return remote;
}

/** How long a `tmp_*` file under objects/ must have been left alone to count as a cut-off fetch's. */
const STALE_TMP_MS = 10 * 60_000;

/**
 * Removes what fetches cut off (Ctrl-C, a cancelled build, a killed kiln) left in a bare
 * repository: git writes loose objects to `objects/XX/tmp_obj_*` and packs to
 * `objects/pack/tmp_pack_*` (`tmp_idx_*`, …) before renaming them, and only `git prune` (after
 * two weeks) removes one left behind, so they grew with every cut-off fetch. The repository is
 * under kiln's lock, and a file nobody wrote to for {@link STALE_TMP_MS} is no live git's.
 */
async function removeStaleTmp(gitDir: string, now: number): Promise<void> {
  const objects = join(gitDir, 'objects');
  const dirs = (await readdir(objects).catch(() => [] as string[])).filter((n) => n === 'pack' || /^[0-9a-f]{2}$/.test(n));
  for (const dir of [objects, ...dirs.map((d) => join(objects, d))]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith('tmp_')) continue;
      const st = await lstat(join(dir, name)).catch(() => undefined);
      if (st?.isFile() === true && now - st.mtimeMs > STALE_TMP_MS) await rm(join(dir, name), { force: true });
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** git's advice after any failed connection to a remote; the line before it says what went wrong. */
const GIT_REMOTE_ADVICE = new Set(['fatal: Could not read from remote repository.', 'Please make sure you have the correct access rights', 'and the repository exists.']);

/** What git (curl) prints when an http(s) server wants credentials it did not get or refused. */
const HTTP_AUTH_FAILED = /could not read (?:Username|Password)|Authentication failed|terminal prompts disabled/;

/** The hint for an http(s) remote that asked for credentials: how to give them, or to check them. */
function httpAuthHint(git: GitRun, stderr: string): { hint: string } | undefined {
  if (!/^https?:\/\//.test(git.remote) || !HTTP_AUTH_FAILED.test(stderr)) return undefined;
  if (git.httpAuth === true) return { hint: 'the server refused the credentials given: check the token (GIT_AUTH_TOKEN / GIT_AUTH_HEADER secret, or the URL\'s user:password)' };
  return { hint: 'a private repository: pass a token with --secret id=GIT_AUTH_TOKEN,env=VARIABLE (GIT_AUTH_TOKEN.<host> for one host), as BuildKit\'s git source reads, or use an ssh URL with --ssh' };
}

/** What ssh prints when the server took none of the keys offered (OpenSSH: `user@host: Permission denied (publickey).`). */
const SSH_DENIED = /^.*: Permission denied \((?:publickey|password|keyboard-interactive|hostbased|gssapi)[^)]*\)\.?\r?$/m;

/** The git subcommand in `args`, for messages. */
const subcommand = (args: readonly string[]): string | undefined => (args[0] === '-c' ? args[2] : args[0]);

/** git commands that may connect to the remote (and so ask the ssh agent). */
const CONNECTING = new Set(['ls-remote', 'fetch', 'submodule']);

/** How long an ssh agent may take to answer (`KILN_SSH_AGENT_TIMEOUT`, seconds; 10 by default). */
function agentTimeoutMs(): number {
  const s = Number(process.env['KILN_SSH_AGENT_TIMEOUT']);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10_000;
}

/** SSH_AGENTC_EXTENSION "query": every agent answers it (the extensions it has, or failure). */
const AGENT_PROBE = Buffer.concat([Buffer.from([0, 0, 0, 10, 27, 0, 0, 0, 5]), Buffer.from('query')]);

/**
 * Per agent socket, the git commands that connect with it running now. OpenSSH's agent answers
 * nobody while it asks its owner to confirm a key's use (`ssh-add -c`), or a security key waits
 * for a touch: a probe that waits behind another fetch's ssh is not a stuck agent's.
 */
const agentInUse = new Map<string, number>();

/**
 * Whether the agent at `socket` accepted a connection and then answered nothing for `ms` (stopped,
 * stuck on something): ssh would wait on it for ever, since it gives an agent no time limit. An
 * agent that is not there or closes the connection is not silent: ssh finds that out by itself.
 * The wait starts again while another git command of this process connects with the agent.
 */
function agentSilent(socket: string, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(socket);
    const done = (silent: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancel);
      c.destroy();
      resolve(silent);
    };
    const cancel = (): void => done(false);
    const expire = (): void => {
      if ((agentInUse.get(socket) ?? 0) > 0) timer = setTimeout(expire, ms);
      else done(true);
    };
    let timer = setTimeout(expire, ms);
    signal?.addEventListener('abort', cancel, { once: true });
    c.once('connect', () => c.write(AGENT_PROBE));
    c.once('data', () => done(false));
    c.once('error', () => done(false));
    c.once('close', () => done(false));
  });
}

/** Runs `fn` counted in {@link agentInUse} for `agent` (none: as is). */
async function inUse<T>(agent: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (agent === undefined) return fn();
  agentInUse.set(agent, (agentInUse.get(agent) ?? 0) + 1);
  try {
    return await fn();
  } finally {
    const n = (agentInUse.get(agent) ?? 1) - 1;
    if (n > 0) agentInUse.set(agent, n);
    else agentInUse.delete(agent);
  }
}

/**
 * Runs git; a failure names the command and what went wrong, with credentials redacted. With ssh
 * agents, each run is one ssh connection (ls-remote, fetch, a submodule update: git runs ssh
 * afresh each time) and takes the agents of the builds attached at that moment, first joined
 * first. When the server refuses the one tried (its agent is dead, or lacks the key), the next
 * attached build's agent is tried, so the fetch succeeds if any build still in the step can
 * authenticate. kiln runs this ssh itself and so sees its authentication fail, where the proxy of
 * a RUN's ssh mount can only see whether an agent answers. BuildKit's git source asks its session
 * group once, at fetch start, for the first session that forwards the id, and uses that agent
 * for every connection (source/git mountSSHAuthSock).
 */
async function run(git: GitRun, args: readonly string[], cwd?: string): Promise<string> {
  const what = `git ${subcommand(args)} failed for ${redactRemote(git.remote)}`;
  const ssh = git.ssh;
  if (ssh === undefined) {
    const out = await runOnce(git, args, cwd, undefined);
    if (typeof out === 'string') return out;
    throw new SolverError('SOLVER_GIT_FAILED', `${what}: ${out.denied}`, { hint: 'forward an SSH agent that holds the key with --ssh' });
  }
  const tried = new Set<string>();
  let denied = '';
  let silent = 0;
  const connects = CONNECTING.has(subcommand(args) ?? '');
  for (;;) {
    // Asked again each time: a build that left is not tried, one that joined since is. With no
    // agent left (the builds still attached forward none), git runs without one: most of its
    // commands do not connect at all.
    const agent = ssh.sockets().find((s) => !tried.has(s));
    if (agent === undefined && tried.size > 0) break;
    if (agent !== undefined) {
      tried.add(agent);
      // An agent that accepts and never answers would hold ssh, and the step, until cancelled:
      // the next attached build's is tried instead.
      if (connects && (await ssh.silent(agent))) {
        silent += 1;
        continue;
      }
    }
    const out = await inUse(connects ? agent : undefined, () => runOnce(git, args, cwd, agent));
    if (typeof out === 'string') return out;
    if (agent === undefined) {
      throw new SolverError('SOLVER_GIT_FAILED', `${what}: ${out.denied} (no build still attached forwards SSH agent "${ssh.id}")`, { hint: `pass --ssh ${ssh.id}` });
    }
    denied = out.denied;
  }
  const n = tried.size;
  const builds = `${n} attached build${n === 1 ? '' : 's'}`;
  const wait = `${agentTimeoutMs() / 1000} s`;
  if (denied === '') {
    throw new SolverError('SOLVER_GIT_FAILED', `${what}: the "${ssh.id}" SSH agent accepted the connection but did not answer within ${wait} (the agent of ${builds})`, {
      hint: `the agent passed with --ssh ${ssh.id} is stuck or stopped: check that \`ssh-add -l\` answers with its socket as SSH_AUTH_SOCK, restart it or pass another; KILN_SSH_AGENT_TIMEOUT=SECONDS waits longer`,
    });
  }
  const stuck = silent === 0 ? '' : `; ${silent} of them did not answer within ${wait}`;
  throw new SolverError('SOLVER_GIT_FAILED', `${what}: ${denied} (tried the "${ssh.id}" SSH agent of ${builds}${stuck})`, {
    hint: `add a key the server accepts to the agent passed with --ssh ${ssh.id} (ssh-add -l lists its keys)`,
  });
}

/** One git run with `agent` as its ssh agent; resolves with ssh's denial line when the server took none of its keys. */
function runOnce(git: GitRun, args: readonly string[], cwd: string | undefined, agent: string | undefined): Promise<string | { readonly denied: string }> {
  const env = { ...git.env, GIT_DIR: git.gitDir, ...(agent === undefined ? {} : { SSH_AUTH_SOCK: agent }) };
  const signal = git.signal;
  const cancelled = (): SolverError => new SolverError('SOLVER_CANCELLED', 'build cancelled', { cause: signal?.reason });
  if (signal?.aborted === true) return Promise.reject(cancelled());
  return new Promise((resolve, reject) => {
    // Its own process group (and session: no terminal for ssh to prompt on), so that a cancel
    // ends git's ssh too: killing git alone leaves ssh connected to the server for a build that
    // is gone, until the server ends it. SIGTERM lets git remove its lock files.
    const child = spawn('git', args, { env, cwd: cwd ?? git.gitDir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    // Its own group also means nothing ends it when kiln is SIGKILLed: the process helper does
    // (SIGTERM to the group; `exit 0` so that a group already gone is not retried, its id possibly
    // reused). Dropped as soon as git has ended.
    const drop = child.pid === undefined ? undefined : onKilnGone(['sh', '-c', 'kill -TERM "-$0" 2>/dev/null; exit 0', String(child.pid)]);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', (e: NodeJS.ErrnoException) => {
      drop?.();
      signal?.removeEventListener('abort', stop);
      if (e.code === 'ENOENT') reject(new SolverError('SOLVER_GIT_FAILED', 'git is not installed', { hint: 'apt-get install -y git' }));
      else reject(new SolverError('SOLVER_GIT_FAILED', `git ${subcommand(args)} failed for ${redactRemote(git.remote)}: ${scrubRemote(e.message, git.remote)}`));
    });
    child.once('close', (code, sig) => {
      drop?.();
      signal?.removeEventListener('abort', stop);
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve(stdout);
      if (signal?.aborted === true) return reject(cancelled());
      const stderr = Buffer.concat(err).toString('utf8');
      const denied = SSH_DENIED.exec(stderr);
      if (denied !== null) return resolve({ denied: scrubRemote(denied[0].trim(), git.remote) });
      const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !GIT_REMOTE_ADVICE.has(l));
      const last = scrubRemote(lines.pop() ?? (stderr.includes('Could not read from remote repository') ? 'could not read from the remote repository' : `exit ${code ?? sig}`), git.remote);
      reject(new SolverError('SOLVER_GIT_FAILED', `git ${subcommand(args)} failed for ${redactRemote(git.remote)}: ${last}`, httpAuthHint(git, stderr)));
    });
    function stop(): void {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // The group is gone already.
      }
    }
    signal?.addEventListener('abort', stop, { once: true });
  });
}
