import { posix } from 'node:path';
import { copy, http, scratch, type State } from '@kiln/llb-core';
import { resolveInRoot } from '@kiln/runtime';
import { gitContext, isArchive, isRemoteContext, parseGitRef, redactUrl, scrubError } from '@kiln/dockerfile';
import type { ProgressSink } from '@kiln/solver';
import { SolverBackend } from '../engine/backend.js';
import type { KilnEngine } from '../engine/engine.js';
import { parseSsh } from '../engine/session.js';
import type { SnapshotRef } from '../engine/snapshot-ref.js';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import type { Resolved } from './config.js';
import { BakeError } from './errors.js';
import { DEFAULT_BAKE_FILES, type BakeFile } from './files.js';

/** The name BuildKit saves a download under (buildx's detectHttpContext). */
const HTTP_FILE = 'context';
/** buildx's maxBakeDefinitionSize: a downloaded bake file that is no archive. */
const MAX_DEFINITION_SIZE = 2 * 1024 * 1024;
/** buildx's variables for fetching a remote definition (and the targets built from it). */
export const GIT_SSH_ENV = 'BUILDX_BAKE_GIT_SSH';
export const GIT_AUTH_ENV = { GIT_AUTH_TOKEN: 'BUILDX_BAKE_GIT_AUTH_TOKEN', GIT_AUTH_HEADER: 'BUILDX_BAKE_GIT_AUTH_HEADER' } as const;

/** `kiln bake`'s arguments as buildx's bakeArgs reads them: `[URL [CMD-CONTEXT-URL]] [TARGET…]`. */
export interface BakeArgs {
  /** A git or http(s) URL to read the bake files from. */
  readonly url?: string;
  /** `BAKE_CMD_CONTEXT`: `cwd://`, or a second URL after the first. */
  readonly cmdContext: string;
  readonly targets: readonly string[];
}

/** buildx's bakeArgs: a first argument that is a URL is the definition, a second one the command context. */
export function bakeArgs(args: readonly string[]): BakeArgs {
  const [first, second] = args;
  if (first === undefined || !isRemoteContext(first)) return { cmdContext: 'cwd://', targets: args };
  if (second === undefined || !isRemoteContext(second)) return { url: first, cmdContext: 'cwd://', targets: args.slice(1) };
  return { url: first, cmdContext: second, targets: args.slice(2) };
}

/**
 * A bake definition read from a URL (buildx's ReadRemoteFiles). The targets' contexts are then
 * inside it: `.` is the URL itself, a relative path a directory of it (see {@link remotePath}).
 */
export interface RemoteDefinition {
  /** The URL as given (it may hold credentials: show {@link redactUrl} of it). */
  readonly url: string;
  /**
   * `git`: a repository (`#REF[:DIR]`); `archive`: a downloaded tarball, unpacked; `file`: one
   * downloaded bake file, whose targets' contexts stay local, as in buildx.
   */
  readonly kind: 'git' | 'archive' | 'file';
  /** The unpacked archive's directory, valid until the definition is released. */
  readonly dir?: string;
  /** A git remote reached over ssh: targets without `ssh` get the `default` agent, as buildx gives them. */
  readonly ssh: boolean;
  /** The bake files read from it, in the order of the names (or buildx's default list). */
  readonly files: readonly BakeFile[];
}

/** What {@link fetchRemoteDefinition} made; `release` ends the lease on the fetched tree. */
export interface FetchedDefinition {
  readonly definition: RemoteDefinition;
  release(): Promise<void>;
}

/** Whether a git URL reaches its remote over ssh (`ssh://…`, `git@HOST:…`). */
export function isSshGitUrl(url: string): boolean {
  const g = parseGitRef(url);
  return g !== undefined && !/^(https?|git):\/\//i.test(g.remote);
}

/**
 * Fetches `url` once through the engine's git or http source (the same sources, ssh handling and
 * URL credentials `kiln build URL` uses) and reads the bake files from it: `names` are paths in
 * it (buildx's defaults that exist when there are none). A download that is no archive is the
 * one bake file. Errors name the URL without its credentials.
 */
export async function fetchRemoteDefinition(engine: KilnEngine, url: string, names: readonly string[], io: CliIo, opts: { readonly progress: ProgressSink; readonly signal: AbortSignal }): Promise<FetchedDefinition> {
  const shown = redactUrl(url);
  const git = gitContext(url, false);
  const env = callerEnv(io);
  // Only an ssh remote needs an agent (buildx attaches one to every git fetch, unused otherwise).
  const ssh = git !== undefined && isSshGitUrl(url) ? await sshAgents(url, env, callerPath(io, '.')) : { sockets: {}, close: async () => undefined };
  const secrets: Record<string, Uint8Array> = {};
  for (const [id, name] of Object.entries(GIT_AUTH_ENV)) {
    const v = env[name];
    if (git !== undefined && v !== undefined) secrets[id] = new TextEncoder().encode(v);
  }
  const solver = engine.solver({ localDirs: {}, secrets, ssh: ssh.sockets });
  const backend = new SolverBackend(engine, solver, { progress: opts.progress, signal: opts.signal, secrets, ssh: ssh.sockets });
  const solve = async (st: State): Promise<SnapshotRef> => {
    try {
      return await backend.solve(await st.marshal(), { signal: opts.signal });
    } catch (cause) {
      if (opts.signal.aborted) throw cause;
      // The step's error, without the URL's credentials, is the message; it is not kept as the
      // cause, which the report would print instead (as a failed step of a build).
      const clean = scrubError(cause, url);
      throw new BakeError('KLN0850', `cannot load the bake definition ${shown}: ${(clean instanceof Error ? clean.message : String(clean)).split('\n')[0] ?? ''}`, {
        hint: hintOf(clean) ?? (git !== undefined ? 'check the repository URL, the branch, tag or commit after # and that the host answers' : 'check the URL and that its server answers'),
      });
    }
  };
  try {
    if (git !== undefined) {
      const tree = await solve(git);
      const files = await filesOf(tree, names, shown, 'git');
      // The targets fetch their contexts from the URL again (the checkout stays in the cache).
      await backend.release();
      return { definition: { url, kind: 'git', ssh: isSshGitUrl(url), files }, release: async () => undefined };
    }
    // buildx's detectHttpContext: the download is sniffed; an archive is unpacked and read as a tree.
    const download = http(url, { filename: HTTP_FILE, customName: '[internal] load remote build context' });
    const ref = await solve(download);
    if (isArchive(await ref.readFile(HTTP_FILE, { length: 1024 }))) {
      const tree = await solve(scratch().file(copy(download, `/${HTTP_FILE}`, '/', { attemptUnpack: true })));
      const files = await filesOf(tree, names, shown, 'archive');
      return { definition: { url, kind: 'archive', dir: await tree.path(), ssh: false, files }, release: () => backend.release() };
    }
    const size = (await ref.statFile(HTTP_FILE)).size;
    if (size > MAX_DEFINITION_SIZE) {
      throw new BakeError('KLN0850', `the bake definition ${shown} is ${size} bytes: a downloaded bake file that is no archive may have 2 MiB at most`, { hint: 'serve a tarball (plain, gzip, bzip2 or xz) of the files instead' });
    }
    const text = new TextDecoder().decode(await ref.readFile(HTTP_FILE));
    await backend.release();
    // A web page instead of the raw file (or of a repository without .git): say so, not an HCL syntax error.
    if (/^\s*</.test(text)) {
      throw new BakeError('KLN0850', `the bake definition ${shown} is neither a tar archive (plain, gzip, bzip2, xz) nor a bake file: it starts with ${JSON.stringify(text.trimStart().slice(0, 40))}`, {
        hint: 'check the URL (a web page instead of the raw file?); a git repository URL ends in .git',
      });
    }
    return { definition: { url, kind: 'file', ssh: false, files: [{ name: shown, text }] }, release: async () => undefined };
  } catch (e) {
    await backend.release();
    throw e;
  } finally {
    // The agent kiln started for BUILDX_BAKE_GIT_SSH key files served the fetch only.
    await ssh.close();
  }
}

/**
 * buildx's git session for a remote definition: `BUILDX_BAKE_GIT_SSH` (sockets or key files,
 * comma-separated), else `SSH_AUTH_SOCK`, as the `default` agent.
 */
async function sshAgents(url: string, env: Readonly<Record<string, string | undefined>>, cwd: string): Promise<{ sockets: Record<string, string>; close: () => Promise<void> }> {
  const paths = env[GIT_SSH_ENV] ?? '';
  try {
    return await parseSsh([paths === '' ? 'default' : `default=${paths}`], env, cwd);
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^--ssh default: /, '') : String(e);
    throw new BakeError('KLN0850', `cannot fetch the bake definition ${redactUrl(url)} over ssh: ${why}`, {
      hint: `start an agent that holds the key (eval $(ssh-agent); ssh-add), or set ${GIT_SSH_ENV}=/path/to/key-or-socket`,
    });
  }
}

/** buildx's filesFromRef: the named files (each must exist), or the default names that exist. */
async function filesOf(tree: SnapshotRef, names: readonly string[], shown: string, kind: 'git' | 'archive'): Promise<BakeFile[]> {
  const isDefault = names.length === 0;
  const out: BakeFile[] = [];
  for (const name of isDefault ? DEFAULT_BAKE_FILES : names) {
    const path = insidePath(name, shown, '-f', 'KLN0850');
    let data: Uint8Array;
    try {
      data = await tree.readFile(path);
    } catch (cause) {
      if (isDefault) continue;
      throw new BakeError('KLN0850', `the bake definition ${shown} has no file ${name}`, {
        hint: `-f names a file inside the ${kind === 'git' ? 'repository (or its #REF:DIR subdirectory)' : 'archive'}; cwd://${name} reads it from your directory`,
        cause,
      });
    }
    out.push({ name, text: new TextDecoder().decode(data) });
  }
  if (out.length === 0 && isDefault) {
    throw new BakeError('KLN0850', `the bake definition ${shown} holds no bake file (${DEFAULT_BAKE_FILES.join(', ')})`, {
      hint: kind === 'git' ? 'pass -f PATH inside the repository, or point #REF:DIR at the directory that holds it' : 'pass -f PATH inside the archive',
    });
  }
  return out;
}

/** A path of the remote tree (an absolute one from its root); `..` out of it is refused. */
function insidePath(p: string, shown: string, what: string, code: 'KLN0850' | 'KLN0853'): string {
  const rel = posix.normalize(p.replace(/^\/+/, '') || '.').replace(/(.)\/+$/, '$1');
  if (rel === '..' || rel.startsWith('../')) {
    throw new BakeError(code, `${what} "${p}" is outside the bake definition ${shown}`, { hint: 'name a path inside it, or cwd://PATH for one of your directory' });
  }
  return rel;
}

/**
 * A target's relative `context` (or `contexts` value) under a remote definition, as buildx's
 * updateContext: `.` is the URL itself; another path is that directory of it: of a git remote, the
 * same URL with the directory added to its `#REF:DIR` (the frontend fetches it from the same
 * repository); of an archive, the unpacked tree's directory, its symlinks resolved inside the
 * tree (buildx copies it out of the download's state, where `sub -> /etc` is the tree's /etc, not
 * the host's).
 */
export async function remotePath(def: RemoteDefinition, p: string, what: string): Promise<string> {
  const rel = insidePath(p, redactUrl(def.url), what, 'KLN0853');
  if (def.kind === 'archive' && def.dir !== undefined) return resolveInRoot(def.dir, rel);
  if (rel === '.') return def.url;
  const g = parseGitRef(def.url) ?? githubShorthand(def.url);
  if (g === undefined) {
    throw new BakeError('KLN0855', `${what} "${p}": kiln cannot name a directory of the remote ${redactUrl(def.url)}`, { hint: 'write the remote as REPO.git#REF (https://, git://, ssh:// or git@HOST:), or use cwd://PATH' });
  }
  return `${g.remote}#${g.commit}:${posix.join(g.subDir === '' ? '.' : g.subDir, rel)}`;
}

/**
 * `github.com/ORG/REPO[#REF[:DIR]]` without a scheme, a git remote for buildx (IsGitURL) and for
 * the Dockerfile frontend's contextGitRef, which parseGitRef (ADD's forms) does not read. As
 * contextGitRef, which @kiln/dockerfile does not export.
 */
function githubShorthand(url: string): { remote: string; commit: string; subDir: string } | undefined {
  if (!url.startsWith('github.com/')) return undefined;
  const [remote = url, fragment = ''] = url.split(/#(.*)/s);
  const colon = fragment.indexOf(':');
  return { remote, commit: colon < 0 ? fragment : fragment.slice(0, colon), subDir: colon < 0 ? '' : fragment.slice(colon + 1) };
}

/**
 * What `--print` shows of a remote definition's targets: a `.` context (or `contexts` value) is
 * the URL, without its credentials (buildx prints it as given); other paths stay as written.
 */
export function printView(r: Resolved, def: RemoteDefinition): Resolved {
  if (def.kind === 'file') return r;
  const shown = redactUrl(def.url);
  const dot = (v: string): string => (posix.normalize(v.replace(/^\/+/, '') || '.').replace(/\/$/, '') === '.' ? shown : v);
  const targets = new Map(
    [...r.targets].map(([name, rt]) => {
      const t = { ...rt.target };
      if (t.context !== undefined) t.context = dot(t.context);
      if (t.contexts !== undefined) t.contexts = Object.fromEntries(Object.entries(t.contexts).map(([k, v]) => [k, v === null ? v : dot(v)]));
      return [name, { ...rt, target: t }] as const;
    }),
  );
  return { targets, groups: r.groups };
}

/** The first hint along an error's cause chain (the git source's own, under the solver's wrapping). */
function hintOf(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
    const hint = (cur as { hint?: unknown }).hint;
    if (typeof hint === 'string' && hint !== '') return hint;
  }
  return undefined;
}
