import { isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';

/** A parsed, normalised image reference (`docker.io/library/busybox:latest`). */
export interface ImageReference {
  /** Registry host[:port]; `docker.io` for Docker Hub. */
  readonly domain: string;
  /** Repository path within the registry (`library/busybox`). */
  readonly path: string;
  /** Tag; `latest` when neither tag nor digest was given. */
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

/** Docker Hub's canonical domain in references. */
export const DOCKER_HUB_DOMAIN = 'docker.io';
/** The host Docker Hub's registry API is served from. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** distribution's domain: DNS labels or a bracketed IPv6 address, then an optional port of digits. */
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

function invalid(s: string, why: string): ImageStoreError {
  return new ImageStoreError('REFERENCE_INVALID', `invalid image reference "${s}": ${why}`, {
    hint: 'use [registry/]name[:tag][@sha256:digest], e.g. busybox:1.36 or localhost:5000/app:v1',
  });
}

/**
 * Parses and normalises a reference the way Docker's `reference.ParseNormalizedNamed` does:
 * `busybox` → `docker.io/library/busybox:latest`, `index.docker.io/x/y` → `docker.io/x/y:latest`.
 * A `name:tag@digest` keeps both. Throws `REFERENCE_INVALID`.
 */
export function parseReference(input: string): ImageReference {
  const s = input.trim();
  if (s === '') throw invalid(input, 'empty');
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw invalid(input, 'bad digest');
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw invalid(input, `bad tag "${tag}"`);
  }
  let domain = DOCKER_HUB_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (path === '' || !path.split('/').every((c) => COMPONENT.test(c))) {
    throw invalid(input, path !== path.toLowerCase() ? 'repository names must be lowercase' : 'bad repository name');
  }
  if (!DOMAIN.test(domain)) {
    // `oci-layout:/dir` (one slash short of a scheme) must not become a lookup of host "oci-layout:"
    const scheme = /^[a-z][a-z0-9+.-]*:$/i.test(domain) ? ` (a port is digits; a scheme takes two slashes: ${domain}//${path})` : '';
    throw invalid(input, `bad registry host "${domain}"${scheme}`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** `domain/path` */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised string: `docker.io/library/busybox:latest`, `host/x@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** Docker's short form: `busybox:latest`, `user/app:v1`, `localhost:5000/app:v1`. */
export function familiarReference(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.domain === DOCKER_HUB_DOMAIN) name = ref.path.startsWith('library/') ? ref.path.slice('library/'.length) : ref.path;
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The same reference with another tag/digest. */
export function withTarget(ref: ImageReference, target: { tag?: string; digest?: Digest }): ImageReference {
  return { domain: ref.domain, path: ref.path, ...target };
}

/** True for hosts Docker talks to over plain http without configuration. */
export function isLocalhost(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(1, domain.indexOf(']')) : domain.replace(/:\d+$/, '');
  return host === 'localhost' || host === '127.0.0.1' || host === '::1' || host.startsWith('127.');
}
