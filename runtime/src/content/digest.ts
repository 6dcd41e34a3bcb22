import { createHash, type Hash } from 'node:crypto';
import { ImageStoreError } from './errors.js';

declare const digestBrand: unique symbol;
/** A validated `sha256:<64 hex>` content digest. Parse once with {@link parseDigest}. */
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Validates a digest string (only sha256 is supported, as in BuildKit's content store). */
export function parseDigest(s: string): Digest {
  if (!DIGEST_RE.test(s)) {
    throw new ImageStoreError('DIGEST_INVALID', `invalid digest "${s.slice(0, 80)}"`, {
      hint: 'expected sha256: followed by 64 lowercase hex characters',
    });
  }
  return s as Digest;
}

/** True if `s` is a well-formed sha256 digest. */
export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** The sha256 digest of a byte buffer. */
export function digestOf(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** The hex part of a digest (the blob's file name). */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** Incremental sha256 that yields a {@link Digest}. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}` as Digest;
  }
  /** The digest of the bytes so far, leaving the hash open for more. */
  peek(): Digest {
    return `sha256:${this.hash.copy().digest('hex')}` as Digest;
  }
}
