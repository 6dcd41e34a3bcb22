import { chownSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, unlinkSync, utimesSync, type Stats } from 'node:fs';
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
  /**
   * Seen only in the mount point layer below the image, which an opaque directory (invisible
   * here) may hide from the container: removed only if the run left an empty one in the upper.
   */
  readonly ifCreated?: boolean;
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function tryLstat(p: string): Stats | undefined {
  return lstatSync(p, { throwIfNoEntry: false });
}

/**
 * lstat results of paths inside lower layers, shared by the runs of one executor. Lower layers
 * are committed snapshots, immutable by contract, so a chain of RUN steps does not re-check the
 * same mount destinations in every layer below (O(depth) lstat calls per step otherwise).
 */
export class LowerStatCache {
  readonly #stats = new Map<string, Stats | null>();
  readonly #max: number;

  constructor(max = 50_000) {
    this.#max = max;
  }

  lstat(p: string): Stats | undefined {
    const have = this.#stats.get(p);
    if (have !== undefined) return have ?? undefined;
    const st = tryLstat(p);
    if (this.#stats.size >= this.#max) this.#stats.clear();
    this.#stats.set(p, st ?? null);
    return st;
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
 *
 * Uses synchronous fs calls on purpose: a run makes a few dozen lstat calls on local paths, and
 * thread-pool round trips for each cost more (tens of ms under load) than the calls themselves.
 */
export class RootView {
  readonly #layers: readonly string[];
  readonly #lowerStats: LowerStatCache | undefined;
  readonly #mountPoints: string | undefined;
  readonly upper: string;

  /**
   * `lowerStats` remembers lstat results in `lowers` across runs (they must be immutable).
   * `mountPointLayer` is the lowest of `lowers` when it only supplies mount points
   * (see mountPointLayers in rootfs.ts).
   */
  constructor(upper: string, lowers: readonly string[], lowerStats?: LowerStatCache, mountPointLayer?: string) {
    this.upper = upper;
    this.#layers = [upper, ...lowers].map((l) => (l.length > 1 ? l.replace(/\/+$/, '') : l));
    this.#lowerStats = lowerStats;
    this.#mountPoints = mountPointLayer?.replace(/\/+$/, '');
  }

  /** lstat of clean relative `rel` in one layer (a chain of RUN steps asks O(depth) of these per step). */
  #lstatIn(layer: string, rel: string): Stats | undefined {
    // Plain concatenation, not path.join: both parts are clean already, and join's normalisation
    // was most of the cost of a lookup answered from the cache.
    const p = `${layer}/${rel}`;
    return layer === this.#layers[0] || this.#lowerStats === undefined ? tryLstat(p) : this.#lowerStats.lstat(p);
  }

  /** lstat of root-relative `rel` in the merged view. */
  lstat(rel: string): Found | undefined {
    const clean = cleanRelative(rel);
    if (clean === '') {
      const st = lstatSync(this.upper);
      return { stat: st, layer: this.upper };
    }
    const parts = clean.split('/');
    const ancestors: string[] = [];
    for (let i = 1; i < parts.length; i++) ancestors.push(parts.slice(0, i).join('/'));
    for (const layer of this.#layers) {
      const st = this.#lstatIn(layer, clean);
      if (st !== undefined) return isWhiteout(st) ? undefined : { stat: st, layer: layer === this.#layers[0] ? this.upper : layer };
      // A whiteout or a non-directory on the way hides everything below in lower layers.
      for (const a of ancestors) {
        const at = this.#lstatIn(layer, a);
        if (at === undefined) break;
        if (isWhiteout(at) || !at.isDirectory()) return undefined;
      }
    }
    return undefined;
  }

  /** Reads a file following symlinks inside the root; `''` when it does not exist. */
  readFile(path: string): string {
    let rel = cleanRelative(path);
    for (let hops = 0; hops < 16; hops++) {
      const f = this.lstat(rel);
      if (f === undefined) return '';
      if (f.stat.isSymbolicLink()) {
        const target = readlinkSync(join(f.layer, rel));
        rel = cleanRelative(target.startsWith('/') ? target : posix.join(posix.dirname(rel), target));
        continue;
      }
      if (!f.stat.isFile()) return '';
      return readFileSync(join(f.layer, rel), 'utf8');
    }
    return '';
  }

  /**
   * Creates directory `rel` in the upper layer (0755, owned by uid:gid), copying up existing parent
   * directories with their mode, owner and times as overlayfs would. A symlink or file on the way
   * stops it (runc then reports the bad cwd).
   */
  mkdirAll(rel: string, uid: number, gid: number): void {
    const parts = cleanRelative(rel).split('/').filter((p) => p !== '');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const host = join(this.upper, sub);
      const found = this.lstat(sub);
      if (found !== undefined && !found.stat.isDirectory()) return;
      if (found?.layer === this.upper) continue;
      if (found !== undefined) {
        mkdirSync(host, { mode: found.stat.mode & 0o7777 });
        chownSync(host, found.stat.uid, found.stat.gid);
        utimesSync(host, found.stat.atime, found.stat.mtime);
      } else {
        mkdirSync(host, { mode: 0o755 });
        chownSync(host, uid, gid);
      }
    }
  }

  /** The destinations that do not exist yet: the first missing component of each. */
  stubs(destinations: readonly string[]): Stub[] {
    const out = new Map<string, Stub>();
    for (const d of destinations) {
      const parts = cleanRelative(d).split('/').filter((p) => p !== '');
      for (let i = 1; i <= parts.length; i++) {
        const sub = parts.slice(0, i).join('/');
        const found = this.lstat(sub);
        const parent = parts.slice(0, i - 1).join('/');
        if (found === undefined) {
          const p = this.lstat(parent);
          if (p !== undefined && !out.has(sub)) out.set(sub, { path: sub, parent, atime: p.stat.atime, mtime: p.stat.mtime });
          break;
        }
        // Only the mount point layer has it: below an opaque directory runc creates it after all.
        if (found.layer === this.#mountPoints && parent !== '') {
          const p = this.lstat(parent);
          if (p !== undefined && !out.has(sub)) out.set(sub, { path: sub, parent, atime: p.stat.atime, mtime: p.stat.mtime, ifCreated: true });
          break;
        }
        if (!found.stat.isDirectory()) break;
      }
    }
    return [...out.values()];
  }

  /**
   * Removes stubs (from the upper layer) that are still empty and restores their parents' times
   * (once per parent, after its last stub went).
   */
  removeStubs(stubs: readonly Stub[]): void {
    const parents = new Map<string, Stub>();
    for (const s of [...stubs].sort((a, b) => b.path.length - a.path.length)) {
      const p = join(this.upper, s.path);
      if (s.ifCreated === true) {
        // Usually absent (the mount point layer supplied it). The process cannot have made it: it
        // is a mount point for the whole run, and the caller does not pass these for runs that
        // may unmount it (insecure).
        const st = tryLstat(p);
        if (st === undefined || !((st.isFile() && st.size === 0) || st.isDirectory())) continue;
      }
      removeIfEmpty(p);
      parents.set(s.parent, s);
    }
    for (const [parent, s] of [...parents].sort((a, b) => b[0].length - a[0].length)) {
      try {
        utimesSync(join(this.upper, parent), s.atime, s.mtime);
      } catch {
        // the parent went away with the process's own changes
      }
    }
  }
}

/**
 * Removes `p` if it is an empty directory tree or an empty file; true when it is gone. Tries
 * rmdir first: stubs are mostly empty directories, and each extra metadata call on the upper
 * layer's disk costs 0.3-0.8 ms under load (this runs after every exec).
 */
function removeIfEmpty(p: string): boolean {
  try {
    rmdirSync(p);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') return false;
  }
  const st = tryLstat(p);
  if (st === undefined) return true;
  try {
    if (st.isDirectory()) {
      let empty = true;
      for (const name of readdirSync(p)) if (!removeIfEmpty(join(p, name))) empty = false;
      if (empty) rmdirSync(p);
      return empty;
    }
    if (st.isFile() && st.size === 0) {
      unlinkSync(p);
      return true;
    }
  } catch {
    // leave what cannot be removed
  }
  return false;
}
