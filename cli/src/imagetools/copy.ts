import { setTimeout as sleep } from 'node:timers/promises';
import { formatReference, OCI_LAYOUT_SCHEME, parseManifest, pullScope, pushScope, putManifest, repositoryName, type Descriptor, type ImageReference, type RegistryClient } from '@kiln/runtime';
import { asImagetoolsError, ImagetoolsError } from './errors.js';
import type { OciLayoutDir, OpenedBlob } from './layout.js';
import { isManifestLike } from './source.js';

/** What {@link copyGraph} did. */
export interface CopyStats {
  mounted: number;
  /** Blobs whose bytes were sent: uploaded to a registry, or written into a layout. */
  uploaded: number;
  existing: number;
  manifests: number;
}

/** Where a copy reads an image graph: a registry repository or an OCI layout directory. */
export interface GraphReader {
  readonly name: string;
  /** Same key, same content store: nothing to copy ({@link copySources} skips it). */
  readonly key: string;
  /** The registry repository, when a registry (blobs can be mounted from it on the same registry). */
  readonly registry?: ImageReference | undefined;
  fetchManifest(desc: Descriptor, signal?: AbortSignal): Promise<Buffer>;
  /** Opens a blob; a missing one fails here, before the target is written to. */
  openBlob(desc: Descriptor, signal?: AbortSignal): Promise<OpenedBlob>;
}

/** Where a copy writes an image graph. */
export interface GraphWriter {
  readonly kind: 'registry' | 'layout';
  readonly name: string;
  readonly key: string;
  hasManifest(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** Stores a manifest or index under its digest (`desc.mediaType` set). */
  putManifest(desc: Descriptor, bytes: Buffer, signal?: AbortSignal): Promise<void>;
  copyBlob(desc: Descriptor, from: GraphReader, signal?: AbortSignal): Promise<'exists' | 'mounted' | 'uploaded'>;
}

/** Options for {@link copyGraph}. */
export interface CopyOptions {
  readonly signal?: AbortSignal | undefined;
  /** Parallel blob copies (default 4). */
  readonly concurrency?: number | undefined;
  /**
   * Copies already started to the same target, by digest: sources copied in parallel often share
   * blobs (a base layer, an empty layer), and one upload of each is enough — two concurrent
   * uploads of one digest to one repository can fail on some registries.
   */
  readonly shared?: Map<string, Promise<unknown>> | undefined;
}

const ATTEMPTS = 3;

/**
 * Copies a manifest or index and everything it references, as buildx's `Copy` (containerd's
 * CopyChain with a distribution.source hint) does: a manifest the target already has is skipped
 * with its subtree; a blob it has is skipped; on the same registry a blob is mounted from the
 * source repository; otherwise it is streamed from the source into the target (a registry PUT or
 * a layout file), never held whole in memory. Children go before their parents, so the target
 * never holds a dangling reference.
 */
export async function copyGraph(from: GraphReader, desc: Descriptor, to: GraphWriter, opts: CopyOptions = {}): Promise<CopyStats> {
  const stats: CopyStats = { mounted: 0, uploaded: 0, existing: 0, manifests: 0 };
  await copyNode(from, desc, to, opts, stats, 0);
  return stats;
}

/** A source of {@link copySources}: a manifest or index, and where to read it. */
export interface CopySource {
  readonly from: GraphReader;
  readonly desc: Descriptor;
}

/**
 * Copies every source not already in the target's repository (or layout) into it, in parallel,
 * sharing the blobs they have in common (one upload each).
 */
export async function copySources(sources: ReadonlyArray<CopySource>, to: GraphWriter, opts: { signal?: AbortSignal | undefined; log?: ((s: string) => void) | undefined }): Promise<void> {
  const shared = new Map<string, Promise<unknown>>();
  const log = opts.log ?? (() => undefined);
  // The first failure stops the other copies: the command fails anyway, and a copy left running
  // would keep kiln (or the daemon) uploading after the error was reported.
  const failed = new AbortController();
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  await Promise.all(
    sources
      .filter((s) => s.from.key !== to.key)
      .map(async (s) => {
        log(`copying ${s.desc.digest} from ${s.from.name} to ${to.name}\n`);
        try {
          const st = await copyGraph(s.from, s.desc, to, { signal, shared });
          const blobs = to.kind === 'registry' ? `${st.mounted} blob(s) mounted, ${st.uploaded} uploaded` : `${st.uploaded} blob(s) written`;
          log(`copied ${s.desc.digest}: ${st.manifests} manifest(s), ${blobs}, ${st.existing} already there\n`);
        } catch (e) {
          if (!failed.signal.aborted) failed.abort(e);
          throw e;
        }
      }),
  );
}

async function copyNode(from: GraphReader, desc: Descriptor, to: GraphWriter, opts: CopyOptions, stats: CopyStats, depth: number): Promise<void> {
  if (depth > 4) throw new ImagetoolsError('KLN0865', `${from.name}: indexes nested too deep`);
  if (await to.hasManifest(desc, opts.signal)) return;
  const bytes = await from.fetchManifest(desc, opts.signal);
  const p = parseManifest(bytes, desc.mediaType);
  if (p.kind === 'index') {
    for (const child of p.index.manifests) {
      if (isManifestLike(child.mediaType)) await copyNode(from, child, to, opts, stats, depth + 1);
    }
  } else {
    // Foreign / non-distributable layers stay where their URLs point (containerd skips them too).
    const blobs = [p.manifest.config, ...p.manifest.layers.filter((l) => !/foreign|nondistributable/.test(l.mediaType))];
    const queue = [...blobs];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        const key = `${to.key}@${d.digest}`;
        const running = opts.shared?.get(key);
        if (running !== undefined) {
          await running;
          stats.existing++;
          continue;
        }
        const p = to.copyBlob(d, from, opts.signal);
        opts.shared?.set(key, p.catch(() => undefined));
        const st = await p;
        stats[st === 'exists' ? 'existing' : st]++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, worker));
  }
  await to.putManifest({ ...desc, mediaType: desc.mediaType !== '' ? desc.mediaType : p.mediaType }, bytes, opts.signal);
  stats.manifests++;
}

/** Reads from a registry repository. */
export function registryReader(client: RegistryClient, ref: ImageReference): GraphReader {
  const name = formatReference(ref);
  return {
    name,
    key: repositoryName(ref),
    registry: ref,
    fetchManifest: (desc, signal) => client.fetchManifest(ref, desc, signal),
    async openBlob(desc, signal) {
      // Through the client: the host's mirrors first (config file), resumed after a dropped connection.
      const stop = new AbortController();
      const it = client.openBlob(ref, desc, signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]))[Symbol.asyncIterator]();
      // Read as the upload consumes it; a missing blob fails the upload it feeds, coded as imagetools errors are.
      async function* rest(): AsyncIterable<Uint8Array> {
        try {
          for (let n = await it.next(); n.done !== true; n = await it.next()) yield n.value;
        } catch (e) {
          throw asImagetoolsError(e);
        }
      }
      return {
        stream: rest(),
        close: async () => {
          stop.abort();
          await it.return?.(undefined).catch(() => undefined);
        },
      };
    },
  };
}

/** Reads from an OCI layout directory. */
export function layoutReader(layout: OciLayoutDir): GraphReader {
  return {
    name: layout.name,
    key: `${OCI_LAYOUT_SCHEME}${layout.dir}`,
    fetchManifest: (desc) => layout.fetch(desc),
    async openBlob(desc) {
      const stream = await layout.open(desc);
      return { stream, close: async () => void stream.destroy() };
    },
  };
}

/** Writes into a registry repository. */
export function registryWriter(client: RegistryClient, to: ImageReference): GraphWriter {
  return {
    kind: 'registry',
    name: formatReference(to),
    key: repositoryName(to),
    hasManifest: (desc, signal) => hasManifest(client, to, desc, signal),
    putManifest: (desc, bytes, signal) => putManifest(client, to, desc.digest, bytes, desc.mediaType, signal),
    copyBlob: (desc, from, signal) => copyBlob(client, from, desc, to, signal),
  };
}

/** Writes into an OCI layout directory (blobs only: `index.json` is the caller's). */
export function layoutWriter(layout: OciLayoutDir): GraphWriter {
  return {
    kind: 'layout',
    name: layout.name,
    key: `${OCI_LAYOUT_SCHEME}${layout.dir}`,
    hasManifest: (desc) => layout.has(desc),
    putManifest: (desc, bytes, signal) => layout.writeBlob(desc, [bytes], signal),
    async copyBlob(desc, from, signal) {
      if (await layout.has(desc)) return 'exists';
      const src = await from.openBlob(desc, signal);
      try {
        await layout.writeBlob(desc, src.stream, signal);
      } finally {
        await src.close();
      }
      return 'uploaded';
    },
  };
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

/** Copies one blob into a registry: skipped if the target has it, mounted on the same registry, else streamed. */
export async function copyBlob(client: RegistryClient, from: GraphReader, desc: Descriptor, to: ImageReference, signal?: AbortSignal): Promise<'exists' | 'mounted' | 'uploaded'> {
  if (await client.hasBlob(to, desc.digest, [pushScope(to)], signal)) return 'exists';
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

async function transferBlob(client: RegistryClient, from: GraphReader, desc: Descriptor, to: ImageReference, signal: AbortSignal | undefined): Promise<'mounted' | 'uploaded'> {
  const t = client.transport;
  const what = `copy ${desc.digest} from ${from.name} to ${formatReference(to)}`;
  let location: string | null = null;
  const src = from.registry;
  if (src !== undefined && src.domain === to.domain) {
    const res = await t.request(to.domain, {
      method: 'POST',
      url: `/v2/${to.path}/blobs/uploads/?mount=${desc.digest}&from=${encodeURIComponent(src.path)}`,
      headers: { 'content-length': '0' },
      scopes: [pushScope(to), pullScope(src)],
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
  const body = await from.openBlob(desc, signal);
  const url = new URL(location, t.baseUrl(to.domain));
  url.searchParams.set('digest', desc.digest);
  try {
    const res = await t.request(to.domain, {
      method: 'PUT',
      url: url.toString(),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: async () => body.stream,
      scopes: [pushScope(to)],
      retry: false,
      signal,
    });
    if (res.status !== 201) throw await registryFailure(res, `${what}: upload`);
    await res.body?.cancel().catch(() => undefined);
    return 'uploaded';
  } finally {
    await body.close();
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
