/**
 * Git references in ADD sources, named contexts and remote build contexts, as BuildKit v0.11.6's
 * util/gitutil ParseGitRef reads them: `https://host/repo.git#ref:dir`, `git://…`, `ssh://…`,
 * `user@host:path`.
 */

/** A parsed git source. */
export interface GitRef {
  /** The remote without the fragment. */
  readonly remote: string;
  /** Branch, tag or commit (`''` for the default branch). */
  readonly commit: string;
  /** Subdirectory of the repository (`''` for the root). */
  readonly subDir: string;
}

/** BuildKit's sshutil.IsImplicitSSHTransport (`git@github.com:org/app.git`). */
const IMPLICIT_SSH = /^[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:.*$/;
/**
 * An http(s) URL is a repository only when the whole string ends in `.git`, or `.git#` and a
 * non-empty fragment (gitutil's gitURLPathWithFragmentSuffix): `…/app.git?x` and `…/app.git#`
 * are downloads there, not repositories.
 */
const GIT_SUFFIX = /\.git(?:#.+)?$/;

/** Parse `src` as a git reference; undefined when it is not one. */
export function parseGitRef(src: string): GitRef | undefined {
  if (/^https?:\/\//.test(src)) {
    if (!GIT_SUFFIX.test(src)) return undefined;
  } else if (!/^(git|ssh):\/\//.test(src) && !IMPLICIT_SSH.test(src)) {
    return undefined;
  }
  const hash = src.indexOf('#');
  const remote = hash < 0 ? src : src.slice(0, hash);
  if (remote === '') return undefined;
  const fragment = hash < 0 ? '' : src.slice(hash + 1);
  // `#:dir` is the default branch's dir (BuildKit v0.11.3+, moby/buildkit#3596).
  const colon = fragment.indexOf(':');
  return {
    remote,
    commit: colon < 0 ? fragment : fragment.slice(0, colon),
    subDir: colon < 0 ? '' : fragment.slice(colon + 1),
  };
}
