/**
 * Docker image references (distribution/reference): `ParseNormalizedNamed` plus
 * `TagNameOnly`, which is how client/llb turns `busybox` into
 * `docker.io/library/busybox:latest`.
 */
import { LlbError } from './errors.js';

/** A parsed, normalized image reference. */
export interface ImageReference {
  /** Registry host, e.g. `docker.io` or `localhost:5000`. */
  readonly domain: string;
  /** Repository path, e.g. `library/busybox`. */
  readonly path: string;
  /** Tag, e.g. `latest`. */
  readonly tag?: string;
  /** Digest, e.g. `sha256:…`. */
  readonly digest?: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

function invalid(ref: string, why: string): never {
  throw new LlbError('LLB_INVALID_STATE', `invalid image reference ${JSON.stringify(ref)}: ${why}`);
}

/** Parses and normalizes a reference (adds `docker.io` and `library/`). Throws {@link LlbError}. */
export function parseImageReference(ref: string): ImageReference {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) invalid(ref, 'bad digest');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) invalid(ref, 'bad tag');
  }
  if (rest === '') invalid(ref, 'empty name');
  let domain = 'docker.io';
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN.test(domain)) invalid(ref, 'bad registry host');
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (path !== path.toLowerCase()) invalid(ref, 'repository name must be lowercase');
  for (const c of path.split('/')) if (!PATH_COMPONENT.test(c)) invalid(ref, `bad path component ${JSON.stringify(c)}`);
  const out: { -readonly [K in keyof ImageReference]: ImageReference[K] } = { domain, path };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** `reference.TagNameOnly`: adds `latest` when there is neither tag nor digest. */
export function tagNameOnly(r: ImageReference): ImageReference {
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}

/** Formats a reference as `domain/path[:tag][@digest]`. */
export function formatImageReference(r: ImageReference): string {
  return `${r.domain}/${r.path}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** Parses, normalizes and applies {@link tagNameOnly}: what `llb.Image` puts in the identifier. */
export function normalizeImageReference(ref: string): string {
  return formatImageReference(tagNameOnly(parseImageReference(ref)));
}
