import { setTimeout as sleep } from 'node:timers/promises';
import { formatReference, parseManifest, pullScope, pushScope, putManifest, type Descriptor, type ImageReference, type RegistryClient } from '@kiln/runtime';
import { ImagetoolsError } from './errors.js';
import { isManifestLike } from './source.js';

/** What {@link copyGraph} did. */
export interface CopyStats {
  mounted: number;
  uploaded: number;
  existing: number;
  manifests: number;
}

/** Options for {@link copyGraph}. */
export interface CopyOptions {
  readonly signal?: AbortSignal | undefined;
  /** Parallel blob copies (default 4). */
  readonly concurrency?: number | undefined;
  /**
   * Copies already started to the same target repository, by digest: sources copied in parallel
   * often share blobs (a base layer, an empty layer), and one upload of each is enough — two
   * concurrent uploads of one digest to one repository can fail on some registries.
   */
  readonly shared?: Map<string, Promise<unknown>> | undefined;
}

const ATTEMPTS = 3;

/**
 * Copies a manifest or index and everything it references from one repository to another,
 * registry to registry, as buildx's `Copy` (containerd's CopyChain with a distribution.source
 * hint) does: a manifest the target already has is skipped with its subtree; a blob it has is
 * skipped; on the same registry a blob is mounted from the source repository; otherwise it is
 * streamed from the source's GET into the target's PUT, never held whole in memory. Children go
 * before their parents, so the registry never sees a dangling reference.
 */
export async function copyGraph(client: RegistryClient, from: ImageReference, desc: Descriptor, to: ImageReference, opts: CopyOptions = {}): Promise<CopyStats> {
  const stats: CopyStats = { mounted: 0, uploaded: 0, existing: 0, manifests: 0 };
  await copyNode(client, from, desc, to, opts, stats, 0);
  return stats;
}

/** A source of {@link copySources}: a manifest or index of a repository. */
export interface CopySource {
  readonly ref: ImageReference;
  readonly desc: Descriptor;
}

/**
 * Copies every source not already in the target's repository into it, in parallel, sharing the
 * blobs they have in common (one upload each).
 */
export async function copySources(client: RegistryClient, sources: ReadonlyArray<CopySource>, to: ImageReference, opts: { signal?: AbortSignal | undefined; log?: ((s: string) => void) | undefined }): Promise<void> {
  const shared = new Map<string, Promise<unknown>>();
  const log = opts.log ?? (() => undefined);
  // The first failure stops the other copies: the command fails anyway, and a copy left running
  // would keep kiln (or the daemon) uploading after the error was reported.
  const failed = new AbortController();
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  await Promise.all(
    sources
      .filter((s) => s.ref.domain !== to.domain || s.ref.path !== to.path)
      .map(async (s) => {
        log(`copying ${s.desc.digest} from ${formatReference(s.ref)} to ${formatReference(to)}\n`);
        try {
          const st = await copyGraph(client, s.ref, s.desc, to, { signal, shared });
          log(`copied ${s.desc.digest}: ${st.manifests} manifest(s), ${st.mounted} blob(s) mounted, ${st.uploaded} uploaded, ${st.existing} already there\n`);
        } catch (e) {
          if (!failed.signal.aborted) failed.abort(e);
          throw e;
        }
      }),
  );
}

async function copyNode(client: RegistryClient, from: ImageReference, desc: Descriptor, to: ImageReference, opts: CopyOptions, stats: CopyStats, depth: number): Promise<void> {
  if (depth > 4) throw new ImagetoolsError('KLN0865', `${formatReference(from)}: indexes nested too deep`);
  if (await hasManifest(client, to, desc, opts.signal)) return;
  const bytes = await client.fetchManifest(from, desc, opts.signal);
  const p = parseManifest(bytes, desc.mediaType);
  if (p.kind === 'index') {
    for (const child of p.index.manifests) {
      if (isManifestLike(child.mediaType)) await copyNode(client, from, child, to, opts, stats, depth + 1);
    }
  } else {
    // Foreign / non-distributable layers stay where their URLs point (containerd skips them too).
    const blobs = [p.manifest.config, ...p.manifest.layers.filter((l) => !/foreign|nondistributable/.test(l.mediaType))];
    const queue = [...blobs];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        const key = `${to.domain}/${to.path}@${d.digest}`;
        const running = opts.shared?.get(key);
        if (running !== undefined) {
          await running;
          stats.existing++;
          continue;
        }
        const p = copyBlob(client, from, d, to, opts.signal);
        opts.shared?.set(key, p.catch(() => undefined));
        const st = await p;
        stats[st === 'exists' ? 'existing' : st]++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, worker));
  }
  await putManifest(client, to, desc.digest, bytes, desc.mediaType !== '' ? desc.mediaType : p.mediaType, opts.signal);
  stats.manifests++;
}

async function hasManifest(client: RegistryClient, to: ImageReference, desc: Descriptor, signal: AbortSignal | undefined): Promise<boolean> {
  const res = await client.transport.request(to.domain, {
    method: 'HEAD',
    url: `/v2/${to.path}/manifests/${desc.digest}`,
    headers: { accept: desc.mediaType },
    scopes: [pushScope(to)],
    signal,
  });
  await res.body?.cancel().catch(() => undefined);
  return res.ok;
}

/** Copies one blob: skipped if the target has it, mounted on the same registry, else streamed. */
export async function copyBlob(client: RegistryClient, from: ImageReference, desc: Descriptor, to: ImageReference, signal?: AbortSignal): Promise<'exists' | 'mounted' | 'uploaded'> {
  if (await client.hasBlob(to, desc.digest, [pushScope(to)])) return 'exists';
  for (let attempt = 0; ; attempt++) {
    try {
      return await transferBlob(client, from, desc, to, signal);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      const status = (e as { status?: unknown }).status;
      const retryable = code === 'REGISTRY_UNREACHABLE' || (typeof status === 'number' && status >= 500);
      if (!retryable || attempt >= ATTEMPTS - 1) throw e;
      signal?.throwIfAborted();
      await sleep(200 * 2 ** attempt);
    }
  }
}

async function transferBlob(client: RegistryClient, from: ImageReference, desc: Descriptor, to: ImageReference, signal: AbortSignal | undefined): Promise<'mounted' | 'uploaded'> {
  const t = client.transport;
  const what = `copy ${desc.digest} from ${formatReference(from)} to ${formatReference(to)}`;
  let location: string | null = null;
  if (from.domain === to.domain) {
    const res = await t.request(to.domain, {
      method: 'POST',
      url: `/v2/${to.path}/blobs/uploads/?mount=${desc.digest}&from=${encodeURIComponent(from.path)}`,
      headers: { 'content-length': '0' },
      scopes: [pushScope(to), pullScope(from)],
      signal,
    });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 201) return 'mounted';
    if (res.status === 202) location = res.headers.get('location');
  }
  if (location === null) {
    const res = await t.request(to.domain, { method: 'POST', url: `/v2/${to.path}/blobs/uploads/`, headers: { 'content-length': '0' }, scopes: [pushScope(to)], signal });
    await res.body?.cancel().catch(() => undefined);
    if (res.status !== 202) throw await registryFailure(res, `${what}: start upload`);
    location = res.headers.get('location');
  }
  if (location === null) throw new ImagetoolsError('KLN0862', `${what}: the registry sent no upload Location`);
  // Open the source first, so a missing blob is reported as such and not as a failed upload.
  const src = await t.request(from.domain, { method: 'GET', url: `/v2/${from.path}/blobs/${desc.digest}`, scopes: [pullScope(from)], signal });
  if (!src.ok || src.body === null) throw await registryFailure(src, `${what}: read source`);
  const url = new URL(location, t.baseUrl(to.domain));
  url.searchParams.set('digest', desc.digest);
  const body = src.body;
  try {
    const res = await t.request(to.domain, {
      method: 'PUT',
      url: url.toString(),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: async () => body as unknown as AsyncIterable<Uint8Array>,
      scopes: [pushScope(to)],
      retry: false,
      signal,
    });
    if (res.status !== 201) throw await registryFailure(res, `${what}: upload`);
    await res.body?.cancel().catch(() => undefined);
    return 'uploaded';
  } finally {
    await body.cancel().catch(() => undefined);
  }
}

async function registryFailure(res: Response, what: string): Promise<Error> {
  let detail = '';
  try {
    const body = JSON.parse(await readErrorBody(res)) as { errors?: { code?: unknown; message?: unknown }[] };
    const e = body.errors?.[0];
    if (e !== undefined) detail = `${typeof e.code === 'string' ? e.code : ''}${typeof e.message === 'string' ? `: ${e.message}` : ''}`;
  } catch {
    // not a distribution error body
  }
  const err = new ImagetoolsError(res.status === 404 ? 'KLN0861' : 'KLN0862', `${what}: ${res.status}${detail !== '' ? ` ${detail}` : ''}`);
  return Object.assign(err, { status: res.status });
}

/** A distribution error body is a short JSON document: at most 64 KiB of it is read. */
async function readErrorBody(res: Response): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n <= 64 * 1024) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}
