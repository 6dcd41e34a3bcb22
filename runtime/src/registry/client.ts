import { digestOf, parseDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { copyImageGraph, type BlobProvider } from '../image/copy.js';
import type { ImageStore } from '../image/image-store.js';
import { MediaTypes } from '../image/media-types.js';
import type { Descriptor, Platform } from '../image/types.js';
import { readLimited } from './body.js';
import { registryError } from './errors.js';
import { pullEndpoints, type RegistryHosts } from './hosts.js';
import { formatReference, parseReference, repositoryName, withTarget, type ImageReference } from './reference.js';
import { RegistryTransport, type RegistryTransportOptions } from './transport.js';

/** The Accept header for manifests: OCI and Docker schema 2 manifests and indexes. */
export const MANIFEST_ACCEPT = [MediaTypes.ociIndex, MediaTypes.dockerManifestList, MediaTypes.ociManifest, MediaTypes.dockerManifest].join(', ');

/** Options for {@link RegistryClient}. */
export type RegistryClientOptions = RegistryTransportOptions;

/** A resolved reference: the normalised name and the descriptor it points at (manifest or index). */
export interface ResolvedReference {
  readonly ref: ImageReference;
  readonly descriptor: Descriptor;
}

/** Options for {@link RegistryClient.pull}. */
export interface PullOptions {
  /** Pull only this platform from an index (default: every platform). */
  readonly platform?: Platform | undefined;
  /** Record the image under its normalised reference. */
  readonly images?: ImageStore | undefined;
  readonly concurrency?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Progress: called once per blob (`skipped` when it was already in the store). */
  readonly onBlob?: ((desc: Descriptor, status: 'done' | 'skipped') => void) | undefined;
}

const MAX_MANIFEST = 4 * 1024 * 1024;

/** One place a pull goes to: the host, the repository path there, and whether the transport retries. */
interface Endpoint {
  readonly domain: string;
  readonly path: string;
  readonly retry: boolean;
}

/**
 * A client for the OCI distribution API: resolve, pull into the content store, and (see
 * `pushImage`) push. Holds auth state (tokens) per registry; create one per build or process and
 * pass it explicitly.
 */
export class RegistryClient {
  readonly transport: RegistryTransport;
  readonly #opts: RegistryClientOptions;

  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = opts;
    this.transport = new RegistryTransport(opts);
  }

  /**
   * A client with the same options and `hosts` laid over their host settings (a push's
   * `registry.insecure=true`). It has its own token cache.
   */
  withHosts(hosts: RegistryHosts): RegistryClient {
    return new RegistryClient({ ...this.#opts, hosts: { ...this.#opts.hosts, ...hosts } });
  }

  /** Resolves a tag or digest to a descriptor (HEAD, falling back to GET when the registry omits headers). */
  async resolve(reference: string | ImageReference, signal?: AbortSignal): Promise<ResolvedReference> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const descriptor = await this.fromEndpoints(ref, (at) => this.resolveAt(ref, at, signal), signal);
    return { ref, descriptor };
  }

  private async resolveAt(ref: ImageReference, at: Endpoint, signal: AbortSignal | undefined): Promise<Descriptor> {
    const target = ref.digest ?? ref.tag ?? 'latest';
    const what = formatReference(ref);
    const req = { url: `/v2/${at.path}/manifests/${target}`, headers: { accept: MANIFEST_ACCEPT }, scopes: [`repository:${at.path}:pull`], signal, retry: at.retry };
    const head = await this.transport.request(at.domain, { ...req, method: 'HEAD' });
    if (head.ok) {
      const dcd = head.headers.get('docker-content-digest');
      const type = head.headers.get('content-type');
      const len = Number(head.headers.get('content-length'));
      if (dcd !== null && type !== null && Number.isSafeInteger(len) && len > 0) {
        const digest = parseDigest(dcd);
        if (ref.digest !== undefined && digest !== ref.digest) throw mismatch(what, ref.digest, digest);
        return { mediaType: stripParams(type), digest, size: len };
      }
    } else if (head.status !== 405 && head.status !== 400) {
      throw await registryError(head, what, 'MANIFEST_UNKNOWN');
    }
    const res = await this.transport.request(at.domain, { ...req, method: 'GET' });
    if (!res.ok) throw await registryError(res, what, 'MANIFEST_UNKNOWN');
    const bytes = await readLimited(res, MAX_MANIFEST);
    if (bytes === undefined) throw new ImageStoreError('MANIFEST_INVALID', `${what}: manifest larger than ${MAX_MANIFEST} bytes`);
    const digest = digestOf(bytes);
    if (ref.digest !== undefined && digest !== ref.digest) throw mismatch(what, ref.digest, digest);
    return { mediaType: stripParams(res.headers.get('content-type') ?? MediaTypes.ociManifest), digest, size: bytes.length };
  }

  /** Fetches a manifest or index by descriptor and verifies its digest. */
  async fetchManifest(ref: ImageReference, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
    if (desc.size > MAX_MANIFEST) throw new ImageStoreError('MANIFEST_INVALID', `manifest ${desc.digest} is too large (${desc.size} bytes)`);
    return this.fromEndpoints(ref, async (at) => {
      const res = await this.transport.request(at.domain, {
        method: 'GET',
        url: `/v2/${at.path}/manifests/${desc.digest}`,
        headers: { accept: desc.mediaType !== '' ? `${desc.mediaType}, ${MANIFEST_ACCEPT}` : MANIFEST_ACCEPT },
        scopes: [`repository:${at.path}:pull`],
        signal,
        retry: at.retry,
      });
      if (!res.ok) throw await registryError(res, `${formatReference(withTarget(ref, { digest: desc.digest }))}`, 'MANIFEST_UNKNOWN');
      const bytes = await readLimited(res, desc.size);
      if (bytes === undefined) throw new ImageStoreError('MANIFEST_INVALID', `${formatReference(ref)}: manifest ${desc.digest} is longer than its ${desc.size} bytes`);
      const got = digestOf(bytes);
      if (got !== desc.digest) throw mismatch(formatReference(ref), desc.digest, got);
      return bytes;
    }, signal);
  }

  /** Fetches a small blob (a config) and verifies it. */
  async fetchBlob(ref: ImageReference, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const c of this.openBlob(ref, desc, signal)) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    const got = digestOf(bytes);
    if (got !== desc.digest) throw mismatch(`${formatReference(ref)} blob`, desc.digest, got);
    return bytes;
  }

  /**
   * Streams a blob. If the connection drops mid-body, the download resumes with a Range request
   * from the last byte received (up to the transport's retry count), from the same mirror or
   * registry. The consumer verifies the digest (the content store does so on ingest).
   */
  async *openBlob(ref: ImageReference, desc: Descriptor, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const request = (at: Endpoint, offset: number): Promise<Response> =>
      this.transport.request(at.domain, {
        method: 'GET',
        url: `/v2/${at.path}/blobs/${desc.digest}`,
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        scopes: [`repository:${at.path}:pull`],
        signal,
        retry: at.retry,
      });
    // The first endpoint that has the blob serves all of it.
    let res: Response | undefined;
    const at = await this.fromEndpoints(ref, async (e) => {
      res = await request(e, 0);
      if (!res.ok) throw await registryError(res, `blob ${desc.digest} of ${formatReference(ref)}`, 'BLOB_NOT_FOUND');
      return e;
    }, signal);
    let offset = 0;
    let drops = 0;
    for (;;) {
      if (res === undefined) {
        res = await request(at, offset);
        if (!res.ok) throw await registryError(res, `blob ${desc.digest} of ${formatReference(ref)}`, 'BLOB_NOT_FOUND');
        if (res.status !== 206) {
          await res.body?.cancel().catch(() => undefined);
          throw new ImageStoreError('REGISTRY_ERROR', `blob ${desc.digest}: connection dropped and the registry does not support resuming`);
        }
      }
      const body = res.body;
      res = undefined;
      if (body === null) return;
      try {
        for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
          offset += chunk.length;
          yield chunk;
        }
        return;
      } catch (e) {
        signal?.throwIfAborted();
        if (++drops > 4 || offset >= desc.size) throw new ImageStoreError('REGISTRY_UNREACHABLE', `blob ${desc.digest}: download failed`, { cause: e });
      }
    }
  }

  /**
   * Runs `attempt` on each endpoint a pull of `ref` may use, in order: the host's mirrors, then
   * the host itself; the first success answers. A mirror that lacks the content, refuses or is
   * down is passed over (as containerd's resolver tries the next host), without the transport's
   * retries; when every endpoint fails, the registry's own error is thrown.
   */
  private async fromEndpoints<T>(ref: ImageReference, attempt: (at: Endpoint) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const endpoints = pullEndpoints(ref.domain, this.transport.hosts);
    let first: unknown;
    for (const ep of endpoints) {
      const at: Endpoint = { domain: ep.domain, path: `${ep.prefix}${ref.path}`, retry: !ep.mirror };
      if (!ep.mirror) return attempt(at);
      try {
        return await attempt(at);
      } catch (e) {
        if (signal?.aborted === true) throw e;
        first ??= e;
      }
    }
    throw first;
  }

  /** A {@link BlobProvider} over one repository (for `copyImageGraph`). */
  provider(ref: ImageReference, signal?: AbortSignal): BlobProvider {
    return {
      fetch: (d) => (isManifestLike(d.mediaType) ? this.fetchManifest(ref, d, signal) : this.fetchBlob(ref, d, signal)),
      open: async (d) => this.openBlob(ref, d, signal),
    };
  }

  /**
   * Pulls an image into the content store (layers in parallel, digests verified) and, with
   * `images`, records it under its normalised name. Returns the root descriptor.
   */
  async pull(reference: string | ImageReference, store: ContentStore, opts: PullOptions = {}): Promise<ResolvedReference> {
    const { ref, descriptor } = await this.resolve(reference, opts.signal);
    const source = repositoryName(ref);
    const sourced: Promise<void>[] = [];
    await copyImageGraph(this.provider(ref, opts.signal), descriptor, store, {
      platform: opts.platform,
      concurrency: opts.concurrency,
      signal: opts.signal,
      onBlob: (d, status) => {
        // Pulled or already here: either way this repository has it, for later cross-repo mounts.
        if (!isManifestLike(d.mediaType)) sourced.push(store.addSource(d.digest, source).catch(() => undefined));
        opts.onBlob?.(d, status);
      },
    });
    await Promise.all(sourced);
    await opts.images?.put(formatReference(ref), descriptor);
    return { ref, descriptor };
  }

  /** True if the repository has the blob (HEAD). */
  async hasBlob(ref: ImageReference, digest: Digest, scopes: ReadonlyArray<string> = [pullScope(ref)], signal?: AbortSignal): Promise<boolean> {
    const res = await this.transport.request(ref.domain, { method: 'HEAD', url: `/v2/${ref.path}/blobs/${digest}`, scopes, signal });
    await res.body?.cancel().catch(() => undefined);
    if (res.ok) return true;
    if (res.status === 404) return false;
    throw await registryError(res, `blob ${digest} of ${formatReference(ref)}`);
  }
}

/** `repository:<path>:pull` */
export function pullScope(ref: ImageReference): string {
  return `repository:${ref.path}:pull`;
}

/** `repository:<path>:pull,push` */
export function pushScope(ref: ImageReference): string {
  return `repository:${ref.path}:pull,push`;
}

function isManifestLike(mt: string): boolean {
  return mt === MediaTypes.ociManifest || mt === MediaTypes.ociIndex || mt === MediaTypes.dockerManifest || mt === MediaTypes.dockerManifestList;
}

function stripParams(ct: string): string {
  return (ct.split(';')[0] ?? ct).trim();
}

function mismatch(what: string, want: Digest, got: Digest): ImageStoreError {
  return new ImageStoreError('DIGEST_MISMATCH', `${what}: registry sent content with digest ${got}, expected ${want}`);
}
