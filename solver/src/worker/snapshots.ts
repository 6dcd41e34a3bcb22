import { randomBytes } from 'node:crypto';
import type { Mount, MountedSnapshot, Snapshotter } from '@kiln/runtime';
import type { RuntimeWorkerDeps } from './deps.js';
import { lstatSync, readFileSync, readdirSync, type Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** A fresh snapshot id with a readable prefix (`[A-Za-z0-9._-]`). */
export function newSnapshotId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** Whether a snapshot exists. */
export async function hasSnapshot(s: Snapshotter, id: string): Promise<boolean> {
  try {
    await s.stat(id);
    return true;
  } catch {
    return false;
  }
}

/** Leases of the snapshots one caller looks up, released together (no-ops without a lease hook). */
export class Leases {
  readonly #take: ((snapshot: string) => () => void) | undefined;
  readonly #held: Array<() => void> = [];

  constructor(take: ((snapshot: string) => () => void) | undefined) {
    this.#take = take;
  }

  hold(snapshot: string): void {
    if (this.#take !== undefined) this.#held.push(this.#take(snapshot));
  }

  release(): void {
    for (const r of this.#held.splice(0)) r();
  }

  /** Releases them when `signal` aborts (now, if it has). One listener, however many layers. */
  releaseAt(signal: AbortSignal): void {
    if (this.#held.length === 0) return;
    if (signal.aborted) this.release();
    else signal.addEventListener('abort', () => this.release(), { once: true });
  }
}

/**
 * Runs `fn` with leases ({@link RuntimeWorkerDeps.leaseSnapshot}) it takes on the snapshots it
 * finds by a fixed id (`layer-<chain>`, `local-<digest>`, …) before it looks them up. They are
 * held until `signal` aborts when `fn` succeeds (the scheduler aborts an op's signal when the
 * last build needing the op ends, after it recorded the result and that build leased it), and
 * released at once when it fails. A prune running meanwhile keeps them: otherwise it could
 * remove a snapshot between the lookup and the record.
 */
export async function withLeases<T>(deps: Pick<RuntimeWorkerDeps, 'leaseSnapshot'>, signal: AbortSignal, fn: (leases: Leases) => Promise<T>): Promise<T> {
  const leases = new Leases(deps.leaseSnapshot);
  try {
    const r = await fn(leases);
    leases.releaseAt(signal);
    return r;
  } catch (err) {
    leases.release();
    throw err;
  }
}

/**
 * Creates committed snapshot `id`, filled by `fill` (given the mounted path; without it, empty):
 * prepared under a temporary id, then committed as `id`. When that fails because another process
 * created `id` meanwhile, its snapshot is used.
 */
export async function commitNew(s: Snapshotter, id: string, signal: AbortSignal | undefined, fill?: (root: string) => Promise<unknown>): Promise<void> {
  const tmp = `${id}.tmp-${process.pid}-${Date.now()}`;
  await s.prepare(tmp);
  try {
    if (fill !== undefined) await withMounted(s, tmp, signal, fill);
    await s.commit(id, tmp);
  } catch (err) {
    await s.remove(tmp).catch(() => undefined);
    if (!(await hasSnapshot(s, id))) throw err;
  }
}

/** Mounts `id`, runs `fn` with the path, always releases. */
export async function withMounted<T>(s: Snapshotter, id: string, signal: AbortSignal | undefined, fn: (path: string) => Promise<T>): Promise<T> {
  const m: MountedSnapshot = await s.mount(id, signal);
  try {
    return await fn(m.path);
  } finally {
    await m.release();
  }
}

/** Bytes of the files a snapshot adds over its parent (its own layer dir), when the snapshotter exposes it. */
export async function snapshotSize(s: Snapshotter, id: string): Promise<number> {
  const ds = (s as unknown as { diffSource?: (id: string) => Promise<{ upper?: string; dir?: string }> }).diffSource;
  if (ds === undefined) return 0;
  try {
    const src = await ds.call(s, id);
    const dir = src.upper ?? src.dir;
    return dir === undefined ? 0 : layerDirSize(dir);
  } catch {
    return 0;
  }
}

/** Total bytes of the files under `dir` (async: cache directories may be large). */
export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = await lstat(p);
      if (st.isDirectory()) stack.push(p);
      else total += st.size;
    }
  }
  return total;
}

/**
 * {@link dirSize} with synchronous calls, for a snapshot's own layer dir on every step: it
 * usually holds a handful of entries, and an async lstat per entry cost a thread-pool round trip
 * each (1-3 ms under load).
 */
export function layerDirSize(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else total += lstatSync(p, { throwIfNoEntry: false })?.size ?? 0;
    }
  }
  return total;
}

let overlayCopiesData: boolean | undefined;
/**
 * Whether overlayfs copies a file's data up with it (metacopy off, the kernel default): then a
 * file in a layer directory is the whole file. With metacopy on, an upper file may hold only
 * metadata, and layer directories must not be read directly.
 */
function fullCopyUp(): boolean {
  if (overlayCopiesData === undefined) {
    let v = 'N';
    try {
      v = readFileSync('/sys/module/overlay/parameters/metacopy', 'utf8').trim();
    } catch {
      // no such parameter: an old kernel without metacopy
    }
    overlayCopiesData = v === 'N' || v === 'n' || v === '0';
  }
  return overlayCopiesData;
}

/**
 * A directory that shows `path` of committed snapshot `id` exactly as a mount of it would,
 * without mounting it, or undefined (then mount it):
 * - a snapshot that is one plain read-only directory: that directory, for any path;
 * - an overlay of read-only layers when `path` is a regular file that the topmost layer holds,
 *   with every parent a real directory there: the topmost layer, because overlayfs shows the
 *   topmost layer's entry for a name whatever the layers below hold (opaque directories and
 *   whiteouts only hide what is below). Saves a mount and an unmount (two helper round trips)
 *   per `COPY --from=stage /file` and per checksum of one.
 * Committed layer directories never change, so reading them in place is safe.
 */
export async function readableInPlace(s: Snapshotter, id: string, path: string): Promise<string | undefined> {
  const ms = await s.mounts(id);
  const m: Mount | undefined = ms[0];
  if (ms.length !== 1 || m === undefined) return undefined;
  if (m.type === 'bind') return m.options.includes('ro') ? m.source : undefined;
  if (m.type !== 'overlay' || !fullCopyUp()) return undefined;
  if (m.options.some((o) => o.startsWith('upperdir=') || o.includes('metacopy=on'))) return undefined;
  const top = m.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length).split(':')[0];
  if (top === undefined || top === '' || top.includes('\\')) return undefined;
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return undefined;
  let p = top;
  for (const [i, part] of parts.entries()) {
    p = `${p}/${part}`;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) return undefined;
  }
  return top;
}
