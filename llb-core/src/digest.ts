import { createHash } from 'node:crypto';
import { LlbError } from './errors.js';

declare const digestBrand: unique symbol;

/**
 * An OCI content digest such as `sha256:<64 hex>`. Branded so that plain strings
 * must go through {@link parseDigest} (or come from {@link digestOf}) first.
 */
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/**
 * Validates `s` as an OCI digest (`algorithm:encoded`; sha256 must be 64 lowercase
 * hex characters) and returns it branded. Throws {@link LlbError} `LLB_DIGEST`.
 */
export function parseDigest(s: string): Digest {
  if (s.startsWith('sha256:') ? !SHA256_RE.test(s) : !DIGEST_RE.test(s)) {
    throw new LlbError('LLB_DIGEST', `invalid digest ${JSON.stringify(s)}`);
  }
  return s as Digest;
}

/** Returns `sha256:` + the lowercase hex SHA-256 of `bytes` (an LLB op's identity). */
export function digestOf(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** Brands a string already known to be a digest (internal: wire data validated lazily by the graph loader). */
export function unsafeDigest(s: string): Digest {
  return s as Digest;
}
