/** Stable codes of `kiln imagetools` errors. */
export type ImagetoolsErrorCode =
  | 'KLN0860' // bad arguments: no source, no -t without --dry-run, bad --annotation/--format/descriptor, repository not inferable
  | 'KLN0861' // a reference or digest is not in its registry (or the kiln image store with --local)
  | 'KLN0862' // the registry failed: unreachable, authentication, access denied, digest mismatch
  | 'KLN0863' // two different manifests for one platform in the new index
  | 'KLN0864' // a target or source that is neither a registry reference nor oci-layout:// (docker-daemon:, oci:, a bare path)
  | 'KLN0865' // content kiln cannot combine: schema 1, unknown media type, malformed manifest
  | 'KLN0866' // an oci-layout:// directory that is no OCI layout (no index.json, not an index) or is damaged (a blob of the wrong size or digest)
  | 'KLN0867'; // an oci-layout:// target that cannot be written (a file where its directory should be, no permission, disk full)

/** An error of `kiln imagetools`: stable code, one-line message, optional hint. */
export class ImagetoolsError extends Error {
  override readonly name = 'ImagetoolsError';
  readonly code: ImagetoolsErrorCode;
  readonly hint: string | undefined;

  constructor(code: ImagetoolsErrorCode, message: string, opts: { hint?: string | undefined; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
  }
}

/**
 * A runtime (registry / content store) error as an imagetools error: its message and hint kept,
 * its code mapped onto the KLN086x range (the runtime's own code stays readable in `cause`).
 */
export function asImagetoolsError(e: unknown): unknown {
  if (e instanceof ImagetoolsError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  const hint = (e as { hint?: unknown }).hint;
  const h = typeof hint === 'string' ? hint : undefined;
  switch (code) {
    case 'MANIFEST_UNKNOWN':
    case 'BLOB_NOT_FOUND':
    case 'IMAGE_NOT_FOUND':
      return new ImagetoolsError('KLN0861', e.message, { hint: h ?? 'check the name and tag (skopeo list-tags docker://REPO lists the tags)', cause: e });
    case 'REFERENCE_INVALID':
      return new ImagetoolsError('KLN0860', e.message, { hint: h, cause: e });
    case 'MANIFEST_INVALID':
      return new ImagetoolsError('KLN0865', e.message, { hint: h, cause: e });
    case 'UNAUTHORIZED':
    case 'DENIED':
    case 'REGISTRY_ERROR':
    case 'REGISTRY_UNREACHABLE':
    case 'DIGEST_MISMATCH':
    case 'SIZE_MISMATCH':
      return new ImagetoolsError('KLN0862', e.message, { hint: h, cause: e });
    default:
      return e;
  }
}

/** JSON from a registry (a config, an in-toto statement): a parse error is KLN0865, not an uncoded SyntaxError. */
export function parseJsonContent(bytes: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw new ImagetoolsError('KLN0865', `${what} is not JSON (${(e as Error).message})`, { cause: e });
  }
}
