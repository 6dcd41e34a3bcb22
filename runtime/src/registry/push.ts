import { setTimeout as sleep } from 'node:timers/promises';
import { digestOf, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { listImageBlobs } from '../image/copy.js';
import { isIndexMediaType, isManifestMediaType } from '../image/media-types.js';
import { storeFetcher } from '../image/resolve.js';
import type { Descriptor } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { registryError } from './errors.js';
import { formatReference, parseReference, repositoryName, type ImageReference } from './reference.js';

/** Read size for upload bodies: large chunks keep undici's per-chunk overhead low. */
const UPLOAD_READ_CHUNK = 1 << 20;
/** Whole-upload attempts for a blob. */
const UPLOAD_ATTEMPTS = 3;

/** Options for {@link pushImage}. */
export interface PushOptions {
  /** Parallel blob uploads (default 4). */
  readonly concurrency?: number | undefined;
  /** Upload blobs larger than this in PATCH chunks of this size; default: one monolithic PUT. */
  readonly chunkSize?: number | undefined;
  /** Other repositories (same registry) to try cross-repository mounts from. */
  readonly mountFrom?: ReadonlyArray<string | ImageReference> | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onBlob?: ((desc: Descriptor, status: BlobPushStatus) => void) | undefined;
}

/** What happened to one blob. */
export type BlobPushStatus = 'exists' | 'mounted' | 'uploaded';

/** What {@link pushImage} did. */
export interface PushResult {
  /** The references written (normalised). */
  readonly refs: ReadonlyArray<string>;
  /** Digest of the root manifest or index. */
  readonly digest: Digest;
  readonly uploaded: number;
  readonly mounted: number;
  readonly existing: number;
}

/**
 * Pushes an image from the content store to one or more references (several tags and/or
 * repositories). Per repository: blobs in parallel (HEAD to skip existing ones, a cross-repo
 * mount from `mountFrom` or a repository the store knows has the blob — one pushed to earlier in
 * this call included — else an upload),
 * then child manifests by digest, then the root manifest once per tag.
 */
export async function pushImage(
  client: RegistryClient,
  store: ContentStore,
  root: Descriptor,
  references: ReadonlyArray<string | ImageReference>,
  opts: PushOptions = {},
): Promise<PushResult> {
  if (references.length === 0) throw new ImageStoreError('REFERENCE_INVALID', 'push needs at least one image name');
  const refs = references.map((r) => (typeof r === 'string' ? parseReference(r) : r));
  const all = await listImageBlobs(storeFetcher(store), store, root);
  const manifests = all.filter((d) => (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) && d.digest !== root.digest);
  const blobs = all.filter((d) => !isManifestMediaType(d.mediaType) && !isIndexMediaType(d.mediaType));
  const counts = { uploaded: 0, mounted: 0, existing: 0 };
  const byRepo = new Map<string, ImageReference[]>();
  for (const r of refs) {
    const k = repositoryName(r);
    byRepo.set(k, [...(byRepo.get(k) ?? []), r]);
  }
  const mountSources: ImageReference[] = (opts.mountFrom ?? []).map((r) => (typeof r === 'string' ? parseReference(r) : r));
  for (const group of byRepo.values()) {
    const repo = group[0] as ImageReference;
    const sources = mountSources.filter((s) => s.domain === repo.domain && s.path !== repo.path);
    const queue = [...blobs];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        opts.signal?.throwIfAborted();
        const st = await pushBlob(client, store, repo, d, sources, opts);
        counts[st === 'exists' ? 'existing' : st]++;
        opts.onBlob?.(d, st);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, worker));
    for (const m of manifests) await putManifest(client, repo, m.digest, await store.readBlob(m.digest), m.mediaType, opts.signal);
    const rootBytes = await store.readBlob(root.digest);
    for (const r of group) await putManifest(client, r, r.tag ?? root.digest, rootBytes, root.mediaType, opts.signal);
  }
  return { refs: refs.map((r) => formatReference({ domain: r.domain, path: r.path, tag: r.tag ?? undefined, digest: r.tag === undefined ? root.digest : undefined })), digest: root.digest, ...counts };
}

/** Mount candidates the store recorded for a blob (pulled from, pushed to): same registry, other repositories. */
async function knownSources(store: ContentStore, desc: Descriptor, repo: ImageReference): Promise<ImageReference[]> {
  const out: ImageReference[] = [];
  for (const s of await store.sourcesOf(desc.digest)) {
    try {
      const r = parseReference(s);
      if (r.domain === repo.domain && r.path !== repo.path) out.push(r);
    } catch {
      // not a repository name: ignored
    }
  }
  // A few: each failed mount costs a round trip before the upload.
  return out.slice(0, 3);
}

/** PUTs a manifest under a tag or digest and checks the digest the registry computed. */
export async function putManifest(client: RegistryClient, ref: ImageReference, target: string, bytes: Uint8Array, mediaType: string, signal?: AbortSignal): Promise<void> {
  const res = await client.transport.request(ref.domain, {
    method: 'PUT',
    url: `/v2/${ref.path}/manifests/${target}`,
    headers: { 'content-type': mediaType },
    body: async () => bytes,
    scopes: [`repository:${ref.path}:pull,push`],
    signal,
  });
  const what = `push manifest ${formatReference({ domain: ref.domain, path: ref.path, tag: target })}`;
  if (!res.ok) throw await registryError(res, what);
  await res.body?.cancel().catch(() => undefined);
  const dcd = res.headers.get('docker-content-digest');
  if (dcd !== null && dcd !== digestOf(bytes)) {
    throw new ImageStoreError('DIGEST_MISMATCH', `${what}: registry stored digest ${dcd}, expected ${digestOf(bytes)}`);
  }
}

/**
 * Pushes one blob to `ref`'s repository: skip if present, else mount (from `mountFrom`, then from
 * the repositories the store knows hold it), else upload. The repository is recorded as a source
 * of the blob for later pushes.
 */
export async function pushBlob(
  client: RegistryClient,
  store: ContentStore,
  ref: ImageReference,
  desc: Descriptor,
  mountFrom: ReadonlyArray<ImageReference> = [],
  opts: Pick<PushOptions, 'chunkSize' | 'signal'> = {},
): Promise<BlobPushStatus> {
  const status = await pushBlobOnce(client, store, ref, desc, mountFrom, opts);
  await store.addSource(desc.digest, repositoryName(ref)).catch(() => undefined);
  return status;
}

async function pushBlobOnce(
  client: RegistryClient,
  store: ContentStore,
  ref: ImageReference,
  desc: Descriptor,
  mountFrom: ReadonlyArray<ImageReference>,
  opts: Pick<PushOptions, 'chunkSize' | 'signal'>,
): Promise<BlobPushStatus> {
  const push = `repository:${ref.path}:pull,push`;
  if (await client.hasBlob(ref, desc.digest, [push], opts.signal)) return 'exists';
  const known = (await knownSources(store, desc, ref)).filter((k) => !mountFrom.some((s) => s.path === k.path));
  const sources = [...mountFrom, ...known];
  // An upload session cannot be resumed after a failed PUT/PATCH, so retry the whole upload.
  for (let attempt = 0; ; attempt++) {
    try {
      return await uploadBlob(client, store, ref, desc, sources, opts);
    } catch (e) {
      const retryable = e instanceof ImageStoreError && (e.code === 'REGISTRY_UNREACHABLE' || (e.status !== undefined && e.status >= 500));
      if (!retryable || attempt >= UPLOAD_ATTEMPTS - 1) throw e;
      opts.signal?.throwIfAborted();
      await sleep(200 * 2 ** attempt);
    }
  }
}

async function uploadBlob(
  client: RegistryClient,
  store: ContentStore,
  ref: ImageReference,
  desc: Descriptor,
  mountFrom: ReadonlyArray<ImageReference>,
  opts: Pick<PushOptions, 'chunkSize' | 'signal'>,
): Promise<BlobPushStatus> {
  const push = `repository:${ref.path}:pull,push`;
  const t = client.transport;
  let location: string | undefined;
  for (const src of mountFrom) {
    const res = await t.request(ref.domain, {
      method: 'POST',
      url: `/v2/${ref.path}/blobs/uploads/?mount=${desc.digest}&from=${encodeURIComponent(src.path)}`,
      headers: { 'content-length': '0' },
      scopes: [push, `repository:${src.path}:pull`],
      signal: opts.signal,
    });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 201) return 'mounted';
    if (res.status === 202) {
      location = res.headers.get('location') ?? undefined;
      break;
    }
  }
  if (location === undefined) {
    const res = await t.request(ref.domain, { method: 'POST', url: `/v2/${ref.path}/blobs/uploads/`, headers: { 'content-length': '0' }, scopes: [push], signal: opts.signal });
    if (res.status !== 202) throw await registryError(res, `start upload of ${desc.digest} to ${formatReference(ref)}`);
    await res.body?.cancel().catch(() => undefined);
    location = res.headers.get('location') ?? undefined;
  }
  if (location === undefined) throw new ImageStoreError('REGISTRY_ERROR', `upload to ${formatReference(ref)}: registry sent no Location`);
  const base = t.baseUrl(ref.domain);
  let url = new URL(location, base);
  const size = desc.size;
  if (opts.chunkSize !== undefined && opts.chunkSize > 0 && size > opts.chunkSize) {
    for (let start = 0; start < size; start += opts.chunkSize) {
      const end = Math.min(size, start + opts.chunkSize) - 1;
      const res = await t.request(ref.domain, {
        method: 'PATCH',
        url: url.toString(),
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}`, 'content-length': String(end - start + 1) },
        body: async () => store.readStream(desc.digest, { start, end, highWaterMark: UPLOAD_READ_CHUNK }),
        scopes: [push],
        retry: false,
        signal: opts.signal,
      });
      if (res.status !== 202) throw await registryError(res, `upload chunk of ${desc.digest} to ${formatReference(ref)}`);
      await res.body?.cancel().catch(() => undefined);
      url = new URL(res.headers.get('location') ?? url.toString(), base);
    }
    url.searchParams.set('digest', desc.digest);
    const res = await t.request(ref.domain, { method: 'PUT', url: url.toString(), headers: { 'content-length': '0' }, scopes: [push], retry: false, signal: opts.signal });
    if (res.status !== 201) throw await registryError(res, `finish upload of ${desc.digest} to ${formatReference(ref)}`);
    await res.body?.cancel().catch(() => undefined);
    return 'uploaded';
  }
  url.searchParams.set('digest', desc.digest);
  const res = await t.request(ref.domain, {
    method: 'PUT',
    url: url.toString(),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: async () => store.readStream(desc.digest, { highWaterMark: UPLOAD_READ_CHUNK }),
    scopes: [push],
    retry: false,
    signal: opts.signal,
  });
  if (res.status !== 201) throw await registryError(res, `upload ${desc.digest} to ${formatReference(ref)}`);
  await res.body?.cancel().catch(() => undefined);
  return 'uploaded';
}
