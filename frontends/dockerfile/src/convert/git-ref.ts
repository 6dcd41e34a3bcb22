/**
 * Git references in ADD sources (BuildKit util/gitutil ParseGitRef): `https://host/repo.git#ref:dir`,
 * `git://…`, `ssh://…`, `git@host:repo.git`. An HTTP(S) URL is a git ref only when its path
 * ends in `.git`.
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

const SCP_LIKE = /^[A-Za-z0-9_.+-]+@[A-Za-z0-9.-]+:[^/].*$/;

/** Parse `src` as a git reference; undefined when it is not one. */
export function parseGitRef(src: string): GitRef | undefined {
  const hash = src.indexOf('#');
  const remote = hash < 0 ? src : src.slice(0, hash);
  const fragment = hash < 0 ? '' : src.slice(hash + 1);
  let isGit = false;
  if (/^https?:\/\//.test(remote)) {
    try {
      isGit = new URL(remote).pathname.endsWith('.git');
    } catch {
      return undefined;
    }
  } else if (/^(git|ssh):\/\//.test(remote)) {
    isGit = true;
  } else if (SCP_LIKE.test(remote)) {
    isGit = true;
  }
  if (!isGit) return undefined;
  const colon = fragment.indexOf(':');
  return {
    remote,
    commit: colon < 0 ? fragment : fragment.slice(0, colon),
    subDir: colon < 0 ? '' : fragment.slice(colon + 1),
  };
}
