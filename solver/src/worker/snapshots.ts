import { randomBytes } from 'node:crypto';
import type { MountedSnapshot, Snapshotter } from '@kiln/runtime';
import { lstatSync, readdirSync, type Dirent } from 'node:fs';
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
