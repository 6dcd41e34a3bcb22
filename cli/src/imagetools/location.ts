import { resolve } from 'node:path';
import { formatOciLayoutRef, formatReference, isOciLayoutRef, OCI_LAYOUT_SCHEME, parseOciLayoutRef, parseReference, repositoryName, withTarget, type Digest, type ImageReference, type OciLayoutRef } from '@kiln/runtime';
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

/** An image in an OCI layout directory, by tag (`org.opencontainers.image.ref.name`) or digest; `path` as given (names print it so). */
export interface LayoutLocation extends OciLayoutRef {
  readonly kind: 'layout';
  /** The path resolved against the caller's working directory. */
  readonly dir: string;
}

/** True for `oci-layout://…`. */
export const isLayoutName = isOciLayoutRef;

/**
 * Parses `oci-layout://PATH[:TAG][@DIGEST]` with the runtime's parser (buildx's `ocilayout.Parse`;
 * KLN0860 when it is refused); a relative PATH is resolved against `cwd`.
 */
export function parseLayoutLocation(s: string, cwd: string): LayoutLocation {
  let ref: OciLayoutRef;
  try {
    ref = parseOciLayoutRef(s);
  } catch (e) {
    throw new ImagetoolsError('KLN0860', (e as Error).message, { hint: (e as { hint?: string }).hint, cause: e });
  }
  return { kind: 'layout', ...ref, dir: resolve(cwd, ref.path) };
}

/** A registry reference or an `oci-layout://` location (KLN0860 when the reference does not parse). */
export function parseLocation(s: string, cwd: string): Location {
  if (isLayoutName(s)) return parseLayoutLocation(s, cwd);
  try {
    return { kind: 'registry', ref: parseReference(s) };
  } catch (e) {
    // the parser's reason (`bad tag`, `bad registry host "oci-layout:"…`) says which part is wrong
    const why = e instanceof Error ? e.message.replace(/^invalid image reference "[^]*?": /, '') : '';
    throw new ImagetoolsError('KLN0860', `invalid reference "${s}"${why === '' ? '' : `: ${why}`}`, { hint: (e as { hint?: string }).hint, cause: e });
  }
}

/** The location as buildx prints it: `host/repo:tag`, or `oci-layout://PATH:TAG` / `…@DIGEST`. */
export function locationName(loc: Location): string {
  if (loc.kind === 'registry') return formatReference(loc.ref);
  return formatOciLayoutRef(loc);
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
  return loc.kind === 'registry' ? repositoryName(loc.ref) : `${OCI_LAYOUT_SCHEME}${loc.dir}`;
}
