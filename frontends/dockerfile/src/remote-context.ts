/**
 * Remote build contexts, as BuildKit v0.11's Dockerfile builder reads them (dockerui
 * DetectGitContext / DetectHTTPContext): when the `context` option (or the option `contextkey`
 * names) is a git URL or an http(s) URL, the client sent no local context. A git repository is
 * the context and holds the Dockerfile; a downloaded archive is unpacked into the context; a
 * downloaded file that is not an archive is the Dockerfile itself, named `context`.
 * A remote context's `.dockerignore` excludes nothing (BuildKit applies it to local sources only).
 */
import { copy, git, http, scratch } from '@kiln/llb-core';
import type { FrontendClient, State } from '@kiln/llb-core';
import { parseGitRef, type GitRef } from './convert/git-ref.js';

// kiln bake reads a remote definition's files from the same git source a remote context is.
export { parseGitRef } from './convert/git-ref.js';
import { KilnError } from './errors.js';
import { parseGoBool } from './instructions/mount.js';
import { INSTRUCTION_NAMES } from './instructions/parse.js';

/** `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`: a git context keeps its `.git` directory. */
const KEEP_GIT_DIR_ARG = 'build-arg:BUILDKIT_CONTEXT_KEEP_GIT_DIR';
/** dockerui's `contextsubdir` option: the build context is this directory of a remote (or input) context. */
const CONTEXT_SUBDIR = 'contextsubdir';
/** The scheme-less prefix BuildKit's gitutil.ParseGitRef (and buildx) take for a github.com repository. */
const GITHUB_SHORTHAND = 'github.com/';
/** The name BuildKit saves a downloaded context under (and reads it as a Dockerfile by). */
const HTTP_CONTEXT_FILE = 'context';
/** BuildKit sniffs this many bytes of a download to tell an archive from a Dockerfile. */
const SNIFF_BYTES = 1024;

/** A main build context that is not a directory of the client. */
export interface RemoteContext {
  /** The URL as the client passed it (may carry credentials: print {@link redactUrl} of it). */
  readonly url: string;
  /** `git`: a repository; `archive`: a downloaded tarball; `file`: a downloaded Dockerfile. */
  readonly kind: 'git' | 'archive' | 'file';
  /** The build context, which also holds the Dockerfile. */
  readonly state: State;
  /** The Dockerfile's name in {@link state} when the URL fixes it (`context` for a downloaded file). */
  readonly filename?: string;
}

/**
 * Whether a `kiln build` context argument names a remote source (buildx IsRemoteURL): an
 * http(s) URL, or a git reference (`git://…`, `ssh://…`, `git@HOST:…`, `github.com/ORG/REPO`).
 * The caller checks for a local directory of that name first, as buildx does.
 */
export function isRemoteContext(ref: string): boolean {
  return /^https?:\/\//.test(ref) || contextGitRef(ref) !== undefined;
}

/**
 * A git reference as a build context: the forms ADD takes (parseGitRef), and also
 * `github.com/ORG/REPO[#REF[:DIR]]` without a scheme. BuildKit v0.11's gitutil.ParseGitRef reads
 * that prefix as a github.com repository (IndistinguishableFromLocal: deprecated, and ADD takes
 * such a source as a local path), llb.Git fetches it over https, and buildx (docker's urlutil
 * IsGitURL) sends it as a remote context when no local directory has that name. No other host
 * is read so: `gitlab.com/ORG/REPO` is a local path, missing unless there is such a directory.
 */
export function contextGitRef(ref: string): GitRef | undefined {
  const g = parseGitRef(ref);
  if (g !== undefined || !ref.startsWith(GITHUB_SHORTHAND)) return g;
  const hash = ref.indexOf('#');
  const fragment = hash < 0 ? '' : ref.slice(hash + 1);
  const colon = fragment.indexOf(':');
  return {
    remote: hash < 0 ? ref : ref.slice(0, hash),
    commit: colon < 0 ? fragment : fragment.slice(0, colon),
    subDir: colon < 0 ? '' : fragment.slice(colon + 1),
  };
}

/**
 * dockerui's DetectGitContext: a git reference (`REMOTE[#REF[:DIR]]`) as a git source of
 * `REF[:DIR]` named `[internal] load git source REF`; undefined when `ref` is not one. The name
 * leaves out credentials of the URL (BuildKit's keeps them): progress and history show it.
 */
export function gitContext(ref: string, keepGitDir: boolean): State | undefined {
  const g = contextGitRef(ref);
  if (g === undefined) return undefined;
  const commit = g.commit + (g.subDir !== '' ? `:${g.subDir}` : '');
  return git(g.remote, commit, { ...(keepGitDir ? { keepGitDir: true } : {}), customName: `[internal] load git source ${redactUrl(ref)}` });
}

/**
 * Go's archive sniffing of the downloaded context (dockerui isArchive): bzip2, gzip or xz magic,
 * or a first tar header whose checksum holds. zstd is not among them (nor in BuildKit).
 */
export function isArchive(header: Uint8Array): boolean {
  const magics = [
    [0x42, 0x5a, 0x68],
    [0x1f, 0x8b, 0x08],
    [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
  ];
  if (magics.some((m) => header.length >= m.length && m.every((b, i) => header[i] === b))) return true;
  return isTarHeader(header);
}

/** A 512-byte tar header that is not all zeros and whose checksum (unsigned or signed sum) matches. */
function isTarHeader(b: Uint8Array): boolean {
  if (b.length < 512) return false;
  const block = b.subarray(0, 512);
  if (block.every((x) => x === 0)) return false;
  const field = new TextDecoder('latin1').decode(block.subarray(148, 156)).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const want = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return want === unsigned || want === signed;
}

/**
 * `url` without credentials: http(s) loses its whole user info (`https://TOKEN@host` is a
 * token), other schemes their password only (`ssh://git@host` stays as it is).
 */
export function redactUrl(url: string): string {
  const u = userInfoOf(url);
  if (u === undefined) return url;
  const rest = url.slice(u.scheme.length + u.userinfo.length + 1);
  if (/^https?:\/\//i.test(url)) return `${u.scheme}${rest}`;
  const colon = u.userinfo.indexOf(':');
  return colon < 0 ? url : `${u.scheme}${u.userinfo.slice(0, colon)}@${rest}`;
}

/** `text` with {@link redactUrl} applied to every URL in it (an ADD's step name, its history entry). */
export function redactUrlsIn(text: string): string {
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s/?#]*@[^\s]*/gi, (url) => redactUrl(url));
}

/**
 * The scheme (`https://`) and user info of a URL: up to the authority's last `@` (a password
 * may hold an unescaped one; Go's url.Parse and WHATWG URL split there too).
 */
function userInfoOf(url: string): { scheme: string; userinfo: string } | undefined {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i.exec(url);
  return m === null ? undefined : { scheme: m[1] ?? '', userinfo: m[2] ?? '' };
}

/**
 * The remote main context the client asked for, or undefined when the context is local (or an
 * input). A downloaded context is fetched here already: its first bytes decide what it is.
 */
export async function remoteContext(client: FrontendClient): Promise<RemoteContext | undefined> {
  const key = client.opts.get('contextkey') ?? 'context';
  const url = client.opts.get(key);
  if (url === undefined || url === '') return undefined;
  const keep = parseGoBool(client.opts.get(KEEP_GIT_DIR_ARG) ?? '') === true;
  const st = gitContext(url, keep);
  if (st !== undefined) return { url, kind: 'git', state: st };
  if (!/^https?:\/\//.test(url)) return undefined;
  const download = http(url, { filename: HTTP_CONTEXT_FILE, customName: '[internal] load remote build context' });
  let header: Uint8Array;
  try {
    const ref = await client.solve({ definition: await download.marshal(), evaluate: true });
    header = await ref.readFile(HTTP_CONTEXT_FILE, { length: SNIFF_BYTES });
  } catch (cause) {
    const clean = scrubError(cause, url);
    throw new KilnError('KLN0504', `cannot download the build context ${redactUrl(url)}: ${messageOf(clean)}`, {
      hint: 'check the URL and that its server answers; a git repository URL ends in .git (or use git://, ssh:// or git@HOST:…)',
      cause: clean,
    });
  }
  if (isArchive(header)) {
    const unpacked = scratch().file(copy(download, `/${HTTP_CONTEXT_FILE}`, '/', { attemptUnpack: true }));
    return { url, kind: 'archive', state: unpacked };
  }
  if (header.length >= 4 && header[0] === 0x28 && header[1] === 0xb5 && header[2] === 0x2f && header[3] === 0xfd) {
    throw new KilnError('KLN0504', `the build context ${redactUrl(url)} is a zstd archive, which is not unpacked as a context (BuildKit reads it as a Dockerfile)`, {
      hint: 'serve a plain, gzip, bzip2 or xz tar',
    });
  }
  return { url, kind: 'file', state: download, filename: HTTP_CONTEXT_FILE };
}

/**
 * The main build context with the `contextsubdir` option applied, as BuildKit v0.11's Dockerfile
 * builder scopes a remote or input context (scopeToSubDir): the directory's contents copied into
 * scratch. The Dockerfile is still read from the whole context. A local context is left as it
 * is (BuildKit applies the option to those two only).
 */
export function scopeContext(client: FrontendClient, st: State): State {
  const sub = client.opts.get(CONTEXT_SUBDIR);
  // Go tests the key's presence (`if sub, ok := opts[keyContextSubDir]; ok`), not its value.
  if (sub === undefined) return st;
  return scratch().file(copy(st, sub, '/', { copyDirContentsOnly: true }));
}

/**
 * Solves the remote context for reading its Dockerfile; a fetch that fails (unreachable host,
 * missing ref, no such repository) is an error naming the URL.
 */
export async function solveRemoteContext(client: FrontendClient, remote: RemoteContext): Promise<Awaited<ReturnType<FrontendClient['solve']>>> {
  try {
    return await client.solve({ definition: await remote.state.marshal(), evaluate: true });
  } catch (cause) {
    // The source's own hint is the more precise one (pass --ssh ID, check the ref after #).
    const own = hintOf(cause);
    const clean = scrubError(cause, remote.url);
    throw new KilnError('KLN0504', `cannot load the build context ${redactUrl(remote.url)}: ${messageOf(clean)}`, {
      hint:
        own ??
          (remote.kind === 'git'
            ? 'check the repository URL, the branch, tag or commit after # and that the host answers (an ssh remote needs --ssh default)'
            : 'check the URL and that its server answers'),
      cause: clean,
    });
  }
}

/**
 * A download that is no archive is read as a Dockerfile (BuildKit's rule). When its first line
 * is no instruction (an HTML page: a web page's URL instead of the raw file's), say what
 * happened rather than report an unknown instruction in a file named `context`.
 */
export function checkDownloadedDockerfile(remote: RemoteContext, dockerfile: Uint8Array): void {
  if (remote.kind !== 'file') return;
  const text = new TextDecoder().decode(dockerfile.subarray(0, 4096));
  const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  const word = first?.split(/\s/, 1)[0]?.toUpperCase() ?? '';
  if (first === undefined || INSTRUCTION_NAMES.includes(word as (typeof INSTRUCTION_NAMES)[number])) return;
  const shown = first.length > 60 ? `${first.slice(0, 60)}…` : first;
  throw new KilnError('KLN0504', `the build context ${redactUrl(remote.url)} is neither a tar archive (plain, gzip, bzip2, xz) nor a Dockerfile: it starts with ${JSON.stringify(shown)}`, {
    hint: 'check the URL (a web page instead of the raw file?); a git repository URL ends in .git',
  });
}

/** The Dockerfile of a remote context is missing: names the URL and where it looked. */
export function missingDockerfile(remote: RemoteContext, filename: string, cause: unknown): KilnError {
  const g = remote.kind === 'git' ? contextGitRef(remote.url) : undefined;
  const where = g !== undefined && g.subDir !== '' ? `${filename} in its subdirectory ${g.subDir}` : filename;
  return new KilnError('KLN0504', `the build context ${redactUrl(remote.url)} has no ${where}`, {
    hint: remote.kind === 'git' ? 'pass -f PATH relative to the repository (or to its #REF:DIR subdirectory), or -f - to send a Dockerfile' : 'pass -f PATH inside the archive, or -f - to send a Dockerfile',
    cause,
  });
}

/**
 * `cause` with the credentials of `url` taken out of its message: a source's error quotes the
 * URL as it was given (the http source's 'failed to fetch URL'), and the report prints the cause
 * and the history records it. Returned as it is when the message holds none.
 */
export function scrubError(cause: unknown, url: string): unknown {
  const userinfo = userInfoOf(url)?.userinfo;
  if (userinfo === undefined || redactUrl(url) === url) return cause;
  const kept = /^https?:/i.test(url) ? '' : `${userinfo.split(':')[0] ?? ''}@`;
  const message = messageOf(cause);
  if (!message.includes(`${userinfo}@`)) return cause;
  const clean = new Error(message.split(`${userinfo}@`).join(kept));
  const hint = hintOf(cause);
  return hint === undefined ? clean : Object.assign(clean, { hint });
}

/** The first hint along an error's cause chain (the solver's, under the gateway's wrapping). */
function hintOf(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
    const hint = (cur as { hint?: unknown }).hint;
    if (typeof hint === 'string' && hint !== '') return hint;
  }
  return undefined;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
