import { isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';

/** The scheme of OCI layout locations (buildx's and BuildKit's `oci-layout://`). */
export const OCI_LAYOUT_SCHEME = 'oci-layout://';

/** `oci-layout://PATH[:TAG][@DIGEST]`, parsed: an image of the OCI layout directory PATH. */
export interface OciLayoutRef {
  /** The directory as given (relative paths are the caller's to resolve). */
  readonly path: string;
  /** The tag: as given, `latest` when neither a tag nor a digest is (buildx's default). */
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

// distribution/reference's TagRegexp and DigestRegexp, anchored (buildx's ocilayout.Parse).
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST_LIKE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

/** True for `oci-layout://…`. */
export function isOciLayoutRef(s: string): boolean {
  return s.startsWith(OCI_LAYOUT_SCHEME);
}

/**
 * Parses `oci-layout://PATH[:TAG][@DIGEST]` as buildx's `ocilayout.Parse` (imagetools): a digest
 * after the last `@` when what follows looks like one, then a tag after the last `:` when what
 * follows is one, so `/a:b/c` and `/a/@/b` stay paths; `latest` when neither is given.
 * REFERENCE_INVALID for no path or a digest-like suffix that is no sha256 digest.
 *
 * buildx splits a `--build-context NAME=oci-layout://…` at the first `@` and `:` instead, so a
 * path with a `:` in it cannot be named there; kiln uses these rules for both.
 */
export function parseOciLayoutRef(s: string): OciLayoutRef {
  let rest = s.startsWith(OCI_LAYOUT_SCHEME) ? s.slice(OCI_LAYOUT_SCHEME.length) : s;
  let digest: Digest | undefined;
  let tag: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && DIGEST_LIKE.test(rest.slice(at + 1))) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new ImageStoreError('REFERENCE_INVALID', `${s}: invalid digest "${d}"`, { hint: 'a digest is sha256: and 64 lowercase hex digits' });
    digest = d;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && TAG.test(rest.slice(colon + 1))) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (rest === '') throw new ImageStoreError('REFERENCE_INVALID', `${s}: no layout directory given`, { hint: 'use oci-layout://PATH[:TAG|@DIGEST]' });
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { path: rest, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** The reference as buildx prints it (`ocilayout.Ref.String`): `oci-layout://PATH[:TAG][@DIGEST]`. */
export function formatOciLayoutRef(ref: OciLayoutRef): string {
  return `${OCI_LAYOUT_SCHEME}${ref.path}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}
