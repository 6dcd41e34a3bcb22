import { lstat, mkdtemp, open, readdir, readlink, rmdir } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '../api/snapshot.js';
import { mountAt, unmount } from '../snapshot/mount.js';
import type { DiffSource } from '../snapshot/local.js';
import { xattrsDiffer } from './xattrs.js';

/**
 * One entry of a layer, in tar order (a directory before its contents, names in byte order).
 * `whiteout` deletes `path` from the layers below; `opaque` hides everything below in directory `path`.
 */
export type Change =
  | { readonly kind: 'add'; readonly path: string; readonly host: string; readonly stat: Stats }
  | { readonly kind: 'whiteout'; readonly path: string }
  | { readonly kind: 'opaque'; readonly path: string };

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function sortedNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort(byteOrder);
}

async function tryLstat(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch {
    return undefined;
  }
}

/**
 * The changes of a snapshot against its parent. With overlayfs this walks only the upper dir:
 * overlay whiteouts (0/0 char devices) become OCI whiteouts, and opaque directories are found
 * without reading `trusted.overlay.opaque` (Node has no getxattr): a directory is opaque when a name
 * its parent view has, that the upper neither has nor whites out, is missing from the merged view.
 * The copy driver compares the two full trees (type, mode, owner, size, mtime, link target).
 */
export async function* changes(src: DiffSource, scratch: string, signal?: AbortSignal): AsyncGenerator<Change> {
  if (src.driver === 'copy') {
    yield* walkCopy(src.dir, src.parentDir, '', signal, false);
    return;
  }
  if (src.lowers.length === 0) {
    yield* walkUpper(src.upper, '', undefined, signal, src.whiteoutsAtBottom === true);
    return;
  }
  const views = await mountViews(src.upper, src.lowers, scratch);
  try {
    yield* walkUpper(src.upper, '', views, signal);
  } finally {
    await views.release();
  }
}

interface Views {
  readonly parent: string;
  readonly merged: string;
  release(): Promise<void>;
}

function readOnly(dirs: readonly string[]): Mount {
  if (dirs.length === 1) return { type: 'bind', source: dirs[0] as string, options: ['ro'] };
  return { type: 'overlay', source: 'overlay', options: [`lowerdir=${dirs.join(':')}`] };
}

async function mountViews(upper: string, lowers: readonly string[], scratch: string): Promise<Views> {
  // The owner's pid in the names: a process killed mid-diff leaves these mounted, and the next
  // process's recoverMounts() takes only those of dead owners.
  const parent = await mkdtemp(join(scratch, `diff-p-${process.pid}-`));
  const merged = await mkdtemp(join(scratch, `diff-m-${process.pid}-`));
  const mounted: string[] = [];
  const release = async (): Promise<void> => {
    for (const m of mounted.splice(0).reverse()) await unmount(m);
    await rmdir(parent).catch(() => undefined);
    await rmdir(merged).catch(() => undefined);
  };
  try {
    await mountAt(readOnly(lowers), parent);
    mounted.push(parent);
    await mountAt(readOnly([upper, ...lowers]), merged);
    mounted.push(merged);
  } catch (e) {
    await release();
    throw e;
  }
  return { parent, merged, release };
}

/**
 * The changes that turn tree `lower` into tree `upper` (two directories, e.g. mounted snapshots
 * that need not be related): what `upper` adds or changes, and a whiteout for every path of
 * `lower` that `upper` lacks, as containerd's double-walking differ finds them for BuildKit's
 * DiffOp. Entries with equal metadata are equal, except regular files whose mtimes are whole
 * seconds (as extracted from tar, or clamped to SOURCE_DATE_EPOCH), whose bytes are compared.
 */
export function treeChanges(lower: string, upper: string, signal?: AbortSignal): AsyncGenerator<Change> {
  return walkCopy(upper, lower, '', signal, true);
}

async function* walkUpper(upper: string, rel: string, views: Views | undefined, signal?: AbortSignal, bottomWhiteouts = false): AsyncGenerator<Change> {
  const dir = join(upper, rel);
  const names = await sortedNames(dir);
  for (const name of names) {
    signal?.throwIfAborted();
    const path = rel === '' ? name : `${rel}/${name}`;
    const host = join(upper, path);
    const st = await lstat(host);
    if (st.isCharacterDevice() && st.rdev === 0) {
      // Without lowers, a whiteout hides nothing, unless this layer is a DiffOp result's (its
      // deletions apply wherever it is merged or exported).
      if (views !== undefined || bottomWhiteouts) yield { kind: 'whiteout', path };
      continue;
    }
    if (!st.isDirectory()) {
      yield { kind: 'add', path, host, stat: st };
      continue;
    }
    const opaque = views !== undefined && (await isOpaque(upper, path, views));
    const lower = views === undefined || opaque ? undefined : await tryLstat(join(views.parent, path));
    if (lower !== undefined && lower.isDirectory() && sameEntry(st, lower) && st.mtimeMs === lower.mtimeMs) {
      // Copied up only because something below changed (or a mount stub came and went): the
      // directory itself is emitted only when something below it is.
      const sub: Change[] = [];
      for await (const c of walkUpper(upper, path, views, signal, bottomWhiteouts)) sub.push(c);
      // setfattr on a directory copies it up without changing its mtime: compare the attributes.
      if (sub.length > 0 || (await xattrsDiffer([[host, join((views as Views).parent, path)]]))[0] === true) {
        yield { kind: 'add', path, host, stat: st };
        yield* sub;
      }
      continue;
    }
    yield { kind: 'add', path, host, stat: st };
    if (opaque) yield { kind: 'opaque', path };
    yield* walkUpper(upper, path, views, signal, bottomWhiteouts);
  }
}

async function isOpaque(upper: string, path: string, views: Views): Promise<boolean> {
  const lowerSt = await tryLstat(join(views.parent, path));
  if (lowerSt === undefined || !lowerSt.isDirectory()) return false;
  const mine = new Set(await readdir(join(upper, path)));
  for (const name of await readdir(join(views.parent, path))) {
    if (mine.has(name)) continue;
    // Visible through the merged view unless the directory is opaque.
    return (await tryLstat(join(views.merged, path, name))) === undefined;
  }
  // Everything below is replaced or whited out already: opaque or not, the result is the same.
  return false;
}

function sameEntry(a: Stats, b: Stats): boolean {
  return (
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    (a.isDirectory() || (a.size === b.size && a.mtimeMs === b.mtimeMs)) &&
    a.rdev === b.rdev
  );
}

async function* walkCopy(dir: string, parentDir: string | undefined, rel: string, signal: AbortSignal | undefined, compareBytes: boolean): AsyncGenerator<Change> {
  const here = join(dir, rel);
  const there = parentDir === undefined ? undefined : join(parentDir, rel);
  const mine = await sortedNames(here);
  const theirs = there === undefined ? [] : await sortedNames(there).catch(() => []);
  const all = [...new Set([...mine, ...theirs])].sort(byteOrder);
  const mineSet = new Set(mine);
  // Extended attributes of the names on both sides, compared in one helper request per
  // directory: an attribute-only change (setcap, setfattr) leaves the stat fields equal.
  const theirSet = new Set(theirs);
  const both = there === undefined ? [] : mine.filter((n) => theirSet.has(n));
  const differs = new Set<string>();
  if (there !== undefined) {
    const flags = await xattrsDiffer(both.map((n) => [join(here, n), join(there, n)] as const));
    flags.forEach((d, i) => d && differs.add(both[i] as string));
  }
  for (const name of all) {
    signal?.throwIfAborted();
    const path = rel === '' ? name : `${rel}/${name}`;
    if (!mineSet.has(name)) {
      yield { kind: 'whiteout', path };
      continue;
    }
    const host = join(dir, path);
    const st = await lstat(host);
    const old = parentDir === undefined ? undefined : await tryLstat(join(parentDir, path));
    if (st.isDirectory()) {
      const oldDir = old?.isDirectory() === true;
      // Children are compared against the parent only when it had a directory here.
      const sub: Change[] = [];
      for await (const c of walkCopy(dir, oldDir ? parentDir : undefined, path, signal, compareBytes)) sub.push(c);
      if (!oldDir || !sameEntry(st, old) || sub.length > 0 || differs.has(name)) {
        yield { kind: 'add', path, host, stat: st };
        yield* sub;
      }
      continue;
    }
    if (old !== undefined && old.isDirectory() === false && sameEntry(st, old) && !differs.has(name)) {
      const other = join(parentDir as string, path);
      if (!compareBytes) continue;
      // mtimeMs is a double: mtimes up to ~240 ns apart compare equal. containerd's sameFile
      // compares nanoseconds, and reads the bytes only when both are whole seconds.
      const [a, b] = await Promise.all([lstat(host, { bigint: true }), lstat(other, { bigint: true })]);
      if (a.mtimeNs === b.mtimeNs) {
        const whole = a.mtimeNs % 1_000_000_000n === 0n;
        if (st.isSymbolicLink() ? (await readlink(host)) === (await readlink(other)) : !st.isFile() || !whole || st.size === 0 || (await sameBytes(host, other))) continue;
      }
    }
    yield { kind: 'add', path, host, stat: st };
  }
}

/** Whether two files of the same size hold the same bytes. */
async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const size = 1 << 20;
    const ba = Buffer.allocUnsafe(size);
    const bb = Buffer.allocUnsafe(size);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size), fb.read(bb, 0, size)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}
