import { chmodSync, lchownSync, lstatSync, lutimesSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { throwIfCancelled } from '../errors.js';
import { ContentHashTree, type HashedEntry } from '../contenthash/tree.js';
import { EMPTY_DIGEST, digestOf, headerDigest, tarsumHeader, tarsumHeaderHash } from '../contenthash/tarsum.js';
import { copySmallFiles, type SmallCopyJob } from './copy-files.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, walkLocal, type LocalEntry, type LocalFilter, type LocalStat } from './walk.js';

/** Options of {@link syncLocalSource}. */
export interface SyncLocalOptions {
  /** The directory on the client side (the build context). */
  readonly src: string;
  /** The mirror directory to bring up to date (kept between builds, like BuildKit's shared-key mutable ref). */
  readonly dest: string;
  /** Where the per-file stat/digest index is persisted between builds (a JSON file). */
  readonly statePath: string;
  readonly filter?: LocalFilter;
  readonly signal?: AbortSignal;
}

/** What a sync did; `hashed` counts files whose bytes were read (unchanged files are not). */
export interface SyncLocalStats {
  readonly entries: number;
  readonly hashed: number;
  readonly copied: number;
  readonly removed: number;
  readonly unchanged: number;
  readonly bytes: number;
}

/** The result of {@link syncLocalSource}: the content-hash tree of the synced files and counters. */
export interface SyncLocalResult {
  readonly tree: ContentHashTree;
  /** BuildKit checksum of `/` (the whole filtered context). */
  readonly rootDigest: string;
  /** The root digest the mirror had before this sync (undefined on a cold sync). */
  readonly previousRootDigest: string | undefined;
  /**
   * What changed in the mirror since the previous sync: written paths (directories whose
   * attributes changed, files, symlinks; parents first) and removed paths. Applying these to a
   * copy of the previous result gives this one.
   */
  readonly changes: { readonly updated: readonly string[]; readonly removed: readonly string[] };
  /** Every synced path (parents first, lexical order) with the stat the mirror now has. */
  readonly entries: readonly LocalEntry[];
  readonly stats: SyncLocalStats;
}

type StateRow = [mode: number, size: number, mtimeMs: number, ino: number, uid: number, gid: number, linkname: string, digest: string];
/** A source directory's sorted names, valid while its inode and ctime are these (see DirListingCache). */
type ListingRow = [ino: number, ctimeMs: number, names: string[]];
interface StateFile {
  readonly version: 2;
  readonly entries: Record<string, StateRow>;
  /** Directory-content digests of the synced tree (valid while nothing changes). */
  readonly dirs?: Record<string, string>;
  /** Listings of the source's directories, so an unchanged directory is not read again. */
  readonly listings?: Record<string, ListingRow>;
}

function sameStat(row: StateRow | undefined, st: LocalStat): row is StateRow {
  return (
    row !== undefined &&
    row[0] === st.mode &&
    row[1] === st.size &&
    row[2] === st.mtimeMs &&
    row[3] === st.ino &&
    row[4] === st.uid &&
    row[5] === st.gid &&
    row[6] === st.linkname
  );
}

/**
 * The last state read or written per state file, while the file is still that one (same inode,
 * size, mtime and ctime): a long-lived process (kiln daemon) does not parse it on every build.
 * States are never changed once made (a sync builds a new one), so sharing them is safe.
 */
const stateCache = new Map<string, { readonly key: string; readonly state: StateFile }>();
const MAX_CACHED_STATES = 16;

function stateKey(path: string): string | undefined {
  const st = lstatSync(path, { throwIfNoEntry: false });
  return st === undefined ? undefined : `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function rememberState(path: string, state: StateFile): void {
  const key = stateKey(path);
  stateCache.delete(path);
  if (key === undefined) return;
  if (stateCache.size >= MAX_CACHED_STATES) stateCache.delete(stateCache.keys().next().value ?? '');
  stateCache.set(path, { key, state });
}

function loadState(path: string): StateFile | undefined {
  try {
    const cached = stateCache.get(path);
    if (cached !== undefined && cached.key === stateKey(path)) return cached.state;
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && parsed.version === 2 && 'entries' in parsed) {
      rememberState(path, parsed as StateFile);
      return parsed as StateFile;
    }
  } catch {
    // missing or unreadable: a cold sync
  }
  return undefined;
}

/**
 * Brings `dest` up to date with the filtered files of `src` (BuildKit's local source transfer),
 * incrementally: a file whose size, mtime, inode, mode, uid and gid match the persisted
 * index is neither read, hashed nor copied again; changed files are read once, hashed (BuildKit
 * tarsum record) and written; files gone from `src` are removed from `dest`. Ownership, modes and
 * mtimes are preserved. The index is written atomically at the end, so a killed sync is simply
 * redone next time.
 */
export async function syncLocalSource(opts: SyncLocalOptions): Promise<SyncLocalResult> {
  const { src, dest, statePath, signal } = opts;
  throwIfCancelled(signal);
  let destOk = true;
  try {
    destOk = lstatSync(dest).isDirectory();
  } catch {
    destOk = false;
  }
  const old = destOk ? loadState(statePath) : undefined;
  const oldRows = old?.entries ?? {};
  const oldListings = old?.listings ?? {};
  const listings: Record<string, ListingRow> = {};
  let listingsChanged = false;
  const walked = walkLocal(src, opts.filter, {
    get: (rel, ino, ctimeMs) => {
      const r = oldListings[rel];
      if (r === undefined || r[0] !== ino || r[1] !== ctimeMs) return undefined;
      listings[rel] = r;
      return r[2];
    },
    set: (rel, ino, ctimeMs, names) => {
      listings[rel] = [ino, ctimeMs, [...names]];
      listingsChanged = true;
    },
  });
  // As buildx and buildctl send a build context (fsutil with resetUIDAndGID): every file is
  // owned by 0:0, whoever owns it on the host, so `COPY` without --chown gives root's files.
  const entries = walked.map((e) => (e.stat.uid === 0 && e.stat.gid === 0 ? e : { path: e.path, stat: { ...e.stat, uid: 0, gid: 0 } }));
  if (!destOk) {
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
  }
  // In a mirror this sync just created no file can be in the way of a new one.
  const emptyDest = !destOk;
  // A file created in a set-gid directory takes the directory's group: chown it then too.
  const setgidDirs = entries.some((e) => (e.stat.mode & S_IFMT) === S_IFDIR && (e.stat.mode & 0o2000) !== 0);
  const rows: Record<string, StateRow> = {};
  const hashed: HashedEntry[] = [];
  const present = new Set<string>();
  const updated: string[] = [];
  const removedPaths: string[] = [];
  let nHashed = 0;
  let nCopied = 0;
  let nUnchanged = 0;
  let bytes = 0;
  const copies: Array<() => Promise<void>> = [];
  const small: SmallCopyJob[] = [];
  const smallDone: Array<(digest: string) => void> = [];
  const dirsToFix: Array<{ path: string; stat: LocalStat }> = [];
  // Directories whose content digest must be recomputed: every ancestor of a change.
  const dirty = new Set<string>();
  const markDirty = (p: string, self: boolean): void => {
    let q = p;
    if (self) dirty.add(q);
    while (q !== '') {
      const i = q.lastIndexOf('/');
      q = i < 0 ? '' : q.slice(0, i);
      if (dirty.has(q)) return;
      dirty.add(q);
    }
  };

  // Paths whose type changed must go before anything is written in their place.
  const typeChanged = new Set<string>();
  for (const e of entries) {
    present.add(e.path);
    const prev = oldRows[e.path];
    if (prev !== undefined && (prev[0] & S_IFMT) !== (e.stat.mode & S_IFMT)) {
      markDirty(e.path, true);
      await rm(join(dest, e.path), { recursive: true, force: true });
      removedPaths.push(e.path);
      typeChanged.add(e.path);
    }
  }
  let removed = 0;
  // Children before parents; only the (usually few) missing paths are sorted.
  for (const p of Object.keys(oldRows).filter((q) => !present.has(q)).sort().reverse()) {
    markDirty(p, true);
    await rm(join(dest, p), { recursive: true, force: true });
    removedPaths.push(p);
    removed++;
  }

  for (const e of entries) {
    const prev = typeChanged.size > 0 && typeChanged.has(e.path) ? undefined : oldRows[e.path];
    if (sameStat(prev, e.stat)) {
      // Unchanged (a directory's header digest depends only on the stat compared here).
      rows[e.path] = prev;
      hashed.push({ path: e.path, stat: e.stat, digest: prev[7] });
      nUnchanged++;
      continue;
    }
    const fmt = e.stat.mode & S_IFMT;
    const target = join(dest, e.path);
    if (fmt === S_IFDIR) {
      const digest = headerDigest(e.stat);
      rows[e.path] = row(e.stat, digest);
      hashed.push({ path: e.path, stat: e.stat, digest });
      markDirty(e.path, true);
      updated.push(e.path);
      mkdirSync(target, { recursive: true });
      dirsToFix.push({ path: target, stat: e.stat });
      continue;
    }
    markDirty(e.path, false);
    updated.push(e.path);
    if (fmt === S_IFREG) {
      const abs = join(src, e.path);
      const stat = e.stat;
      const index = hashed.length;
      hashed.push(e);
      const record = (digest: string): void => {
        hashed[index] = { path: e.path, stat, digest };
        rows[e.path] = row(stat, digest);
        nHashed++;
        nCopied++;
        bytes += stat.size;
      };
      if (stat.size > LARGE_FILE) {
        copies.push(async () => {
          if (!emptyDest) removeFile(target);
          record(await copyLarge(abs, target, stat, signal));
        });
      } else {
        smallDone.push(record);
        small.push(smallJob(abs, target, stat, !emptyDest, setgidDirs));
      }
      continue;
    }
    if (fmt === S_IFLNK) {
      await rm(target, { force: true });
      mkdirSync(dirname(target), { recursive: true });
      symlinkSync(e.stat.linkname, target);
      lchownSync(target, e.stat.uid, e.stat.gid);
      const t = e.stat.mtimeMs / 1000;
      lutimesSync(target, t, t);
      const digest = headerDigest(e.stat);
      rows[e.path] = row(e.stat, digest);
      hashed.push({ ...e, digest });
      nCopied++;
      continue;
    }
    // Devices, fifos and sockets are recorded (for the checksum) but not recreated.
    const digest = headerDigest(e.stat);
    rows[e.path] = row(e.stat, digest);
    hashed.push({ ...e, digest });
  }

  await copySmallFiles(small, (i, digest) => smallDone[i]?.(digest), signal);
  await runPool(copies, signal);
  // Directory attributes last (writing children changes a directory's mtime), with sync calls:
  // a thread-pool round trip each cost more than the call.
  for (const d of dirsToFix.reverse()) {
    lchownSync(d.path, d.stat.uid, d.stat.gid);
    chmodSync(d.path, d.stat.mode & 0o7777);
    const t = d.stat.mtimeMs / 1000;
    lutimesSync(d.path, t, t);
  }

  const unchanged = old !== undefined && dirty.size === 0 && nUnchanged === entries.length;
  // Directory digests of untouched subtrees are reused; only ancestors of changes are recomputed.
  const known: Record<string, string> = {};
  for (const [p, d] of Object.entries(old?.dirs ?? {})) if (!dirty.has(p)) known[p] = d;
  // BuildKit's local source fakes the root header as sha256("") (HandleChange never sees "/").
  const tree = ContentHashTree.fromEntries(hashed, { root: dest, rootHeaderDigest: EMPTY_DIGEST, dirDigests: known });
  const rootDigest = await tree.checksum('/');
  if (!unchanged || old.dirs === undefined || listingsChanged || Object.keys(listings).length !== Object.keys(oldListings).length) {
    const state: StateFile = { version: 2, entries: rows, dirs: tree.dirDigests(), listings };
    mkdirSync(dirname(statePath), { recursive: true });
    const tmp = `${statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state));
    renameSync(tmp, statePath);
    rememberState(statePath, state);
  }
  return {
    tree,
    rootDigest,
    previousRootDigest: old?.dirs?.[''],
    changes: { updated, removed: removedPaths },
    entries,
    stats: { entries: entries.length, hashed: nHashed, copied: nCopied, removed, unchanged: nUnchanged, bytes },
  };
}

function row(st: LocalStat, digest: string): StateRow {
  return [st.mode, st.size, st.mtimeMs, st.ino, st.uid, st.gid, st.linkname, digest];
}

/** Runs the copies of large files one after another (each streams in 1 MiB reads). */
async function runPool(tasks: ReadonlyArray<() => Promise<void>>, signal: AbortSignal | undefined): Promise<void> {
  for (const t of tasks) {
    throwIfCancelled(signal);
    await t();
  }
}

const LARGE_FILE = 8 << 20;
const OWN_UID = process.getuid?.() ?? -1;
const OWN_GID = process.getgid?.() ?? -1;
/** The process umask (from /proc, without process.umask()'s deprecated getter); undefined if unknown. */
const UMASK = ((): number | undefined => {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m?.[1] === undefined ? undefined : parseInt(m[1], 8);
  } catch {
    return undefined;
  }
})();

/** The copy job of one small file: a new inode, owner and mode set only where needed. */
function smallJob(abs: string, target: string, stat: LocalStat, unlink: boolean, setgidDirs: boolean): SmallCopyJob {
  const mode = stat.mode & 0o7777;
  // A file we just created already belongs to us; chown only when the owner differs (or a
  // set-gid directory gave it the directory's group).
  const chown = setgidDirs || stat.uid !== OWN_UID || stat.gid !== OWN_GID;
  return {
    abs,
    target,
    size: stat.size,
    mode,
    uid: stat.uid,
    gid: stat.gid,
    mtime: stat.mtimeMs / 1000,
    header: tarsumHeader(stat),
    unlink,
    chown,
    // After chown (it clears set-id bits); not needed when the umask left the mode exact.
    chmod: chown || UMASK === undefined || (mode & (UMASK | 0o7000)) !== 0,
  };
}

/**
 * Unlinks the mirror's old copy of a file before a new one is written. The mirror never changes
 * a file's inode in place (no truncate, no chmod): local-source snapshots and COPY results
 * hard-link the mirror's files, so an inode, once written, must stay as it is.
 */
function removeFile(target: string): void {
  try {
    unlinkSync(target);
  } catch (err) {
    if (!(typeof err === 'object' && err !== null && 'code' in err && err.code === 'ENOENT')) throw err;
  }
}

/** Streams a large regular file through the hash into a new inode at `target`. */
async function copyLarge(abs: string, target: string, stat: LocalStat, signal: AbortSignal | undefined): Promise<string> {
  const h = tarsumHeaderHash(stat);
  const fh = await open(abs, 'r');
  try {
    const out = await open(target, 'wx', stat.mode & 0o7777);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        throwIfCancelled(signal);
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
        await out.write(buf, 0, bytesRead);
      }
      await out.chown(stat.uid, stat.gid);
      // After chown: chown clears set-id bits.
      await out.chmod(stat.mode & 0o7777);
      const t = stat.mtimeMs / 1000;
      await out.utimes(t, t);
    } finally {
      await out.close();
    }
  } finally {
    await fh.close();
  }
  return digestOf(h);
}
