import type { Stats } from 'node:fs';
import { chown, lstat, mkdir, readFile, readdir, readlink, rmdir, unlink, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { cleanRelative } from '../layer/root-path.js';

interface Found {
  readonly stat: Stats;
  readonly layer: string;
}

/** A mount destination that did not exist before the run (runc creates an empty stub for it). */
export interface Stub {
  readonly path: string;
  readonly parent: string;
  readonly atime: Date;
  readonly mtime: Date;
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

async function tryLstat(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch {
    return undefined;
  }
}

/**
 * The container's root filesystem as seen from the host *without mounting it*: a writable top
 * layer (`upper`) over read-only `lowers`, merged the way overlayfs merges them (a 0/0 character
 * device whites a name out). Opaque directories cannot be seen without getxattr and are treated
 * as transparent, which only matters for a name an opaque directory hides and a later layer
 * does not recreate. Lets the executor resolve users, create the working directory and clean up
 * mount stubs while runc itself mounts the overlay inside the container's mount namespace, saving
 * a host mount and unmount per run.
 */
export class RootView {
  readonly #layers: readonly string[];
  readonly upper: string;

  constructor(upper: string, lowers: readonly string[]) {
    this.upper = upper;
    this.#layers = [upper, ...lowers];
  }

  /** lstat of root-relative `rel` in the merged view. */
  async lstat(rel: string): Promise<Found | undefined> {
    const clean = cleanRelative(rel);
    if (clean === '') {
      const st = await lstat(this.upper);
      return { stat: st, layer: this.upper };
    }
    const parts = clean.split('/');
    for (const layer of this.#layers) {
      const st = await tryLstat(join(layer, clean));
      if (st !== undefined) return isWhiteout(st) ? undefined : { stat: st, layer };
      // A whiteout or a non-directory on the way hides everything below in lower layers.
      for (let i = 1; i < parts.length; i++) {
        const a = await tryLstat(join(layer, ...parts.slice(0, i)));
        if (a === undefined) break;
        if (isWhiteout(a) || !a.isDirectory()) return undefined;
      }
    }
    return undefined;
  }

  /** Reads a file following symlinks inside the root; `''` when it does not exist. */
  async readFile(path: string): Promise<string> {
    let rel = cleanRelative(path);
    for (let hops = 0; hops < 16; hops++) {
      const f = await this.lstat(rel);
      if (f === undefined) return '';
      if (f.stat.isSymbolicLink()) {
        const target = await readlink(join(f.layer, rel));
        rel = cleanRelative(target.startsWith('/') ? target : posix.join(posix.dirname(rel), target));
        continue;
      }
      if (!f.stat.isFile()) return '';
      return readFile(join(f.layer, rel), 'utf8');
    }
    return '';
  }

  /**
   * Creates directory `rel` in the upper layer (0755, owned by uid:gid), copying up existing parent
   * directories with their mode, owner and times as overlayfs would. A symlink or file on the way
   * stops it (runc then reports the bad cwd).
   */
  async mkdirAll(rel: string, uid: number, gid: number): Promise<void> {
    const parts = cleanRelative(rel).split('/').filter((p) => p !== '');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const host = join(this.upper, sub);
      const found = await this.lstat(sub);
      if (found !== undefined && !found.stat.isDirectory()) return;
      if (found?.layer === this.upper) continue;
      if (found !== undefined) {
        await mkdir(host, { mode: found.stat.mode & 0o7777 });
        await chown(host, found.stat.uid, found.stat.gid);
        await utimes(host, found.stat.atime, found.stat.mtime);
      } else {
        await mkdir(host, { mode: 0o755 });
        await chown(host, uid, gid);
      }
    }
  }

  /** The destinations that do not exist yet: the first missing component of each. */
  async stubs(destinations: readonly string[]): Promise<Stub[]> {
    const out = new Map<string, Stub>();
    for (const d of destinations) {
      const parts = cleanRelative(d).split('/').filter((p) => p !== '');
      for (let i = 1; i <= parts.length; i++) {
        const sub = parts.slice(0, i).join('/');
        const found = await this.lstat(sub);
        if (found === undefined) {
          const parent = parts.slice(0, i - 1).join('/');
          const p = await this.lstat(parent);
          if (p !== undefined && !out.has(sub)) out.set(sub, { path: sub, parent, atime: p.stat.atime, mtime: p.stat.mtime });
          break;
        }
        if (!found.stat.isDirectory()) break;
      }
    }
    return [...out.values()];
  }

  /** Removes stubs (from the upper layer) that are still empty and restores their parents' times. */
  async removeStubs(stubs: readonly Stub[]): Promise<void> {
    for (const s of [...stubs].sort((a, b) => b.path.length - a.path.length)) {
      await removeIfEmpty(join(this.upper, s.path));
      await utimes(join(this.upper, s.parent), s.atime, s.mtime).catch(() => undefined);
    }
  }
}

async function removeIfEmpty(p: string): Promise<boolean> {
  const st = await tryLstat(p);
  if (st === undefined) return true;
  if (st.isDirectory()) {
    let empty = true;
    for (const name of await readdir(p).catch(() => [])) {
      if (!(await removeIfEmpty(join(p, name)))) empty = false;
    }
    return empty ? rmdir(p).then(() => true, () => false) : false;
  }
  if (st.isFile() && st.size === 0) return unlink(p).then(() => true, () => false);
  return false;
}
