import { createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { processAlive } from '../api/process-alive.js';

/** A temp path next to `dest` (same filesystem, so rename is atomic). */
export function siblingTempPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Removes the temp siblings of `path` ({@link siblingTempPath}; for a symlink, of its target) that
 * kiln processes no longer running left: one killed mid-write leaves its temp file (or the old
 * directory it renamed away) behind. Exports call it before they write their output, so a CI
 * whose builds get killed does not collect hidden copies of the output beside it.
 */
export async function removeStaleTemps(path: string): Promise<void> {
  const dest = await linkTarget(path);
  const dir = dirname(dest);
  const prefix = `.${basename(dest)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(/^(\d+)-[0-9a-f]{12}$/.exec(name.slice(prefix.length, -'.tmp'.length))?.[1] ?? Number.NaN);
    if (!Number.isNaN(pid) && pid !== process.pid && !processAlive(pid)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Links followed at most, as Linux does (ELOOP after 40). */
const MAX_LINKS = 40;

/**
 * Where a write to `path` lands: the end of its symlinks (also a dangling one's target), as
 * open(2) follows them. A rename onto the link itself would replace the link.
 */
async function linkTarget(path: string): Promise<string> {
  let p = path;
  for (let i = 0; i < MAX_LINKS; i++) {
    const st = await lstat(p).catch(() => undefined);
    if (st?.isSymbolicLink() !== true) return p;
    p = resolve(dirname(p), await readlink(p));
  }
  throw Object.assign(new Error(`too many levels of symbolic links: ${path}`), { code: 'ELOOP' });
}

/**
 * Writes a file atomically: streams into a temp file next to it, fsyncs, renames over it. A
 * symlink at `dest` stays: the file is written where it points. On failure the temp file is
 * removed and the old file is untouched.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | AsyncIterable<Uint8Array>, mode = 0o644): Promise<void> {
  const dest = await linkTarget(path);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = siblingTempPath(dest);
  try {
    const src = data instanceof Uint8Array ? Readable.from([data]) : Readable.from(data);
    await pipeline(src, createWriteStream(tmp, { mode }));
    const fh = await open(tmp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Fills a fresh sibling temp directory with `fill`, then swaps it into `dest` (an existing `dest`
 * is renamed away and removed afterwards). On failure the temp directory is removed.
 */
export async function writeDirAtomic(dest: string, fill: (dir: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = siblingTempPath(dest);
  await mkdir(tmp);
  try {
    await fill(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | undefined;
  try {
    await stat(dest);
    old = siblingTempPath(dest);
    await rename(dest, old);
  } catch {
    old = undefined;
  }
  await rename(tmp, dest);
  if (old !== undefined) await rm(old, { recursive: true, force: true });
}
