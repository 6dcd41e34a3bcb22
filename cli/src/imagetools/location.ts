import { resolve } from 'node:path';
import { formatReference, isDigest, parseReference, repositoryName, withTarget, type Digest, type ImageReference } from '@kiln/runtime';
import { ImagetoolsError } from './errors.js';

/**
 * Where `kiln imagetools` reads or writes an image, as buildx's `imagetools.Location`: a registry
 * reference, or an OCI image layout directory (`oci-layout://PATH[:TAG][@DIGEST]`).
 */
export type Location = RegistryLocation | LayoutLocation;

/** An image in a registry. */
export interface RegistryLocation {
  readonly kind: 'registry';
  readonly ref: ImageReference;
}

/** An image in an OCI layout directory, by tag (`org.opencontainers.image.ref.name`) or digest. */
export interface LayoutLocation {
  readonly kind: 'layout';
  /** The path as given (names print it so). */
  readonly path: string;
  /** The path resolved against the caller's working directory. */
  readonly dir: string;
  /** The tag: as given, `latest` when neither a tag nor a digest is (buildx's default). */
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

/** The scheme of OCI layout locations (buildx's `oci-layout://`). */
export const LAYOUT_SCHEME = 'oci-layout://';

// distribution/reference's TagRegexp and DigestRegexp, anchored (buildx's ocilayout.Parse).
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST_LIKE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

/** True for `oci-layout://…`. */
export function isLayoutName(s: string): boolean {
  return s.startsWith(LAYOUT_SCHEME);
}

/**
 * Parses `oci-layout://PATH[:TAG][@DIGEST]` as buildx's `ocilayout.Parse`: a digest after the
 * last `@`, then a tag after the last `:` (only when what follows is one, so `/a:b/c` stays a
 * path), `latest` when neither is given. A relative PATH is resolved against `cwd`.
 */
export function parseLayoutLocation(s: string, cwd: string): LayoutLocation {
  let rest = s.slice(LAYOUT_SCHEME.length);
  let digest: Digest | undefined;
  let tag: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && DIGEST_LIKE.test(rest.slice(at + 1))) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new ImagetoolsError('KLN0860', `${s}: invalid digest "${d}"`, { hint: 'a digest is sha256: and 64 lowercase hex digits' });
    digest = d;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && TAG.test(rest.slice(colon + 1))) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (rest === '') throw new ImagetoolsError('KLN0860', `${s}: no layout directory given`, { hint: 'use oci-layout://PATH[:TAG|@DIGEST]' });
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { kind: 'layout', path: rest, dir: resolve(cwd, rest), ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** A registry reference or an `oci-layout://` location (KLN0860 when the reference does not parse). */
export function parseLocation(s: string, cwd: string): Location {
  if (isLayoutName(s)) return parseLayoutLocation(s, cwd);
  try {
    return { kind: 'registry', ref: parseReference(s) };
  } catch (e) {
    throw new ImagetoolsError('KLN0860', `invalid reference "${s}"`, { hint: (e as { hint?: string }).hint, cause: e });
  }
}

/** The location as buildx prints it: `host/repo:tag`, or `oci-layout://PATH:TAG` / `…@DIGEST`. */
export function locationName(loc: Location): string {
  if (loc.kind === 'registry') return formatReference(loc.ref);
  return `${LAYOUT_SCHEME}${loc.path}${loc.tag === undefined ? '' : `:${loc.tag}`}${loc.digest === undefined ? '' : `@${loc.digest}`}`;
}

/**
 * The same repository or layout at `digest`. A registry reference keeps its tag (buildx prints
 * `name:tag@digest` for the children of an index); a layout location drops it, as buildx's
 * `Location.WithDigest` does.
 */
export function withDigest(loc: Location, digest: Digest): Location {
  if (loc.kind === 'registry') return { kind: 'registry', ref: withTarget(loc.ref, { ...(loc.ref.tag === undefined ? {} : { tag: loc.ref.tag }), digest }) };
  return { kind: 'layout', path: loc.path, dir: loc.dir, digest };
}

/** What two locations share when they hold the same content: a registry repository, or a layout directory. */
export function repositoryKey(loc: Location): string {
  return loc.kind === 'registry' ? repositoryName(loc.ref) : `${LAYOUT_SCHEME}${loc.dir}`;
}
