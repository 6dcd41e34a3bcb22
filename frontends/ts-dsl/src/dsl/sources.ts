/**
 * Source states: images, scratch, local directories, git, http and OCI layouts, each one
 * llb-core source (Go `llb.Image`, `llb.Local`, …) with the DSL's option names.
 */
import {
  parseDigest,
  parseImageReference,
  git as llbGit,
  http as llbHttp,
  image as llbImage,
  local as llbLocal,
  ociLayout as llbOciLayout,
  resolveImage,
  scratch as llbScratch,
  LlbError,
} from '@kiln/llb-core';
import type { ResolveMode } from '@kiln/llb-core';
import { State, checkPlatform } from './state.js';
import { callerLocation, withBuildLocation } from './source-location.js';
import { TsDslError } from '../errors.js';
import { bool, checkArg, checkOptions, oneOf, permissions, str, strings } from './options.js';

/** Throws KLN0805 (at the DSL call, so the build file line is on the stack) with `what`'s message. */
function invalid(fn: string, message: string, hint: string): never {
  throw new TsDslError('KLN0805', `${fn}: ${message}`, { hint });
}

/** Options of {@link image}. */
export interface ImageOpts {
  /** Platform of the image (`linux/arm64`); default: the build's target platform. */
  readonly platform?: string;
  /** Resolve now: pin the digest and take the config's Env and WorkingDir (as Dockerfile's FROM). */
  readonly resolve?: boolean;
  /** Registry lookup mode (`pull` always asks the registry, `local` prefers the store). */
  readonly resolveMode?: ResolveMode;
  /** Name shown in progress output. */
  readonly name?: string;
}

/** An image (`docker-image://…`, the reference normalized as Docker does: `busybox` is `docker.io/library/busybox:latest`). */
export function image(ref: string, opts: ImageOpts = {}): State {
  checkArg('image', 'the reference', ref, str);
  checkOptions('image', opts, { platform: str, resolve: bool, resolveMode: oneOf('default', 'pull', 'local'), name: str });
  try {
    parseImageReference(ref);
  } catch (e) {
    invalid('image', e instanceof Error ? e.message : `invalid image reference "${ref}"`, 'a reference as docker pull takes it: busybox, alpine:3.20, registry:5000/team/app@sha256:…');
  }
  if (opts.platform !== undefined) checkPlatform(opts.platform);
  const o = {
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
    ...(opts.resolveMode === undefined ? {} : { resolveMode: opts.resolveMode }),
    ...(opts.name === undefined ? {} : { customName: opts.name }),
  };
  // where the build names the image: a pull failure at solve time points here (op source map)
  const at = callerLocation();
  return new State(
    async (c) => {
      const mode = opts.resolveMode ?? c.resolveMode;
      const o2 = { ...o, ...(mode === undefined ? {} : { resolveMode: mode }), ...c.locate(at) };
      if (opts.resolve !== true) return llbImage(ref, o2);
      if (c.resolver === undefined) throw new LlbError('LLB_INVALID_STATE', `image ${ref}: resolve needs a build context (marshal it through the kiln/ts frontend)`);
      const resolver = c.resolver;
      return resolveImage(ref, { ...o2, metaResolver: resolver, ...(c.platform === undefined ? {} : { defaultPlatform: c.platform }) }).catch((e: unknown) => {
        throw withBuildLocation(e, at);
      });
    },
    { ref, platform: opts.platform, at },
  );
}

/** The empty filesystem (Go `llb.Scratch`). */
export function scratch(): State {
  return new State(async () => llbScratch(), undefined);
}

/** The client directory that is the build context (BuildKit's DefaultLocalNameContext). */
const CONTEXT = 'context';

/** Options of {@link local}. */
export interface LocalOpts {
  /** Transfer only paths matching these patterns. */
  readonly include?: readonly string[];
  /** Do not transfer paths matching these patterns (after the `.dockerignore` ones, so a `!pattern` here can bring a file back). */
  readonly exclude?: readonly string[];
  /**
   * Apply the directory's `.dockerignore` (default true), as a Dockerfile build does: for the
   * build context `<build file>.dockerignore` next to the build file, else the context's
   * `.dockerignore`; for a `--build-context NAME=DIR`, `DIR/.dockerignore`. False sends every file.
   */
  readonly dockerignore?: boolean;
  /** Paths (and the symlinks on the way) the build needs. */
  readonly followPaths?: readonly string[];
  /** Cache key hint shared across builds. */
  readonly sharedKeyHint?: string;
  /** Name shown in progress output. */
  readonly name?: string;
}

/** A directory of the client (`local://name`; `context` is the build context). */
export function local(name: string, opts: LocalOpts = {}): State {
  checkArg('local', 'the name', name, str);
  checkOptions('local', opts, { include: strings, exclude: strings, followPaths: strings, sharedKeyHint: str, name: str, dockerignore: bool });
  if (name === '') invalid('local', 'the name is empty', 'local("context") is the build context; other names are --build-context names');
  // dockerui's MainContext names the build context's cache key hint "context": the same attrs as a Dockerfile build
  const sharedKeyHint = opts.sharedKeyHint ?? (name === CONTEXT ? CONTEXT : undefined);
  const o = {
    ...(opts.include === undefined ? {} : { includePatterns: opts.include }),
    ...(opts.followPaths === undefined ? {} : { followPaths: opts.followPaths }),
    ...(sharedKeyHint === undefined ? {} : { sharedKeyHint }),
    ...(opts.name === undefined ? {} : { customName: opts.name }),
  };
  const at = callerLocation();
  return new State(async (c) => {
    // the ignore file's patterns first, as dockerui's ExcludePatterns; the build's own after them
    const ignored = opts.dockerignore === false || c.dockerignore === undefined ? [] : await c.dockerignore(name);
    const excludePatterns = [...ignored, ...(opts.exclude ?? [])];
    return llbLocal(name, { ...o, ...(excludePatterns.length === 0 ? {} : { excludePatterns }), ...c.locate(at) });
  }, undefined);
}

/** Options of {@link git}. */
export interface GitOpts {
  /** Branch, tag or commit. */
  readonly ref?: string;
  /** Keep the `.git` directory. */
  readonly keepGitDir?: boolean;
  /** Only this subdirectory of the checkout. */
  readonly subdir?: string;
}

/** A git repository (`git://host/path#ref[:subdir]`). */
export function git(url: string, opts: GitOpts = {}): State {
  checkArg('git', 'the URL', url, str);
  checkOptions('git', opts, { ref: str, keepGitDir: bool, subdir: str });
  if (url.trim() === '') invalid('git', 'the URL is empty', 'git("https://github.com/org/repo.git", { ref: "main" })');
  const ref = opts.subdir === undefined ? (opts.ref ?? '') : `${opts.ref ?? ''}:${opts.subdir}`;
  const at = callerLocation();
  return new State(async (c) => llbGit(url, ref, { ...(opts.keepGitDir === true ? { keepGitDir: true } : {}), ...c.locate(at) }), undefined);
}

/** Options of {@link http}. */
export interface HttpOpts {
  /** Expected digest (`sha256:…`). */
  readonly checksum?: string;
  /** File name to save as. */
  readonly filename?: string;
  /** Permission bits. */
  readonly chmod?: number;
}

/** A file downloaded over HTTP(S). */
export function http(url: string, opts: HttpOpts = {}): State {
  checkArg('http', 'the URL', url, str);
  checkOptions('http', opts, { checksum: str, filename: str, chmod: permissions });
  if (!/^https?:\/\//.test(url)) invalid('http', `"${url}" is not an http:// or https:// URL`, 'http("https://example.com/file.tgz", { checksum: "sha256:…" })');
  if (opts.checksum !== undefined) {
    try {
      parseDigest(opts.checksum);
    } catch {
      invalid('http', `invalid checksum "${opts.checksum}"`, 'a digest: sha256:<64 hex digits>');
    }
  }
  const o = {
    ...(opts.checksum === undefined ? {} : { checksum: opts.checksum }),
    ...(opts.filename === undefined ? {} : { filename: opts.filename }),
    ...(opts.chmod === undefined ? {} : { chmod: opts.chmod }),
  };
  const at = callerLocation();
  return new State(async (c) => llbHttp(url, { ...o, ...c.locate(at) }), undefined);
}

/** An image from an OCI layout store of the client (`oci-layout://ref`). */
export function ociLayout(ref: string, opts: { platform?: string } = {}): State {
  checkArg('ociLayout', 'the reference', ref, str);
  checkOptions('ociLayout', opts, { platform: str });
  if (opts.platform !== undefined) checkPlatform(opts.platform);
  const at = callerLocation();
  return new State(async (c) => llbOciLayout(ref, { ...(opts.platform === undefined ? {} : { platform: opts.platform }), ...c.locate(at) }), undefined);
}
