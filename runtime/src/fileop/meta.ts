import { spawn } from 'node:child_process';
import type { Stats, BigIntStats } from 'node:fs';
import { lchownSync } from 'node:fs';
import { lchown, lutimes } from 'node:fs/promises';
import { errnoCode } from './errors.js';
import type { Owner, Timestamp } from './types.js';

/** A point in time as seconds (with fraction) for `fs.lutimes`. */
export type Seconds = number;

/** Converts a unix-nanosecond LLB timestamp to seconds, or `undefined` for `-1` (keep). */
export function timestampToSeconds(ts: Timestamp): Seconds | undefined {
  const ns = typeof ts === 'bigint' ? ts : BigInt(Math.trunc(ts));
  if (ns === -1n) return undefined;
  const sec = ns / 1_000_000_000n;
  const rem = ns % 1_000_000_000n;
  return Number(sec) + Number(rem) / 1e9;
}

/** Seconds of a `bigint` stat time in nanoseconds (sub-microsecond digits are lost in a double). */
export function nsToSeconds(ns: bigint): Seconds {
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

/** Sets owner (without following a final symlink) when `owner` is given. */
export async function chownIf(path: string, owner: Owner | undefined): Promise<void> {
  if (owner !== undefined) await lchown(path, owner.uid, owner.gid);
}

/** Sets atime and mtime (without following a final symlink) when `time` is given. */
export async function utimesIf(path: string, time: Seconds | undefined): Promise<void> {
  if (time !== undefined) await lutimes(path, time, time);
}

/** Whether a stat result is a block/char device or FIFO (what `mknod` can recreate). */
export function isSpecial(st: Stats | BigIntStats): boolean {
  return st.isBlockDevice() || st.isCharacterDevice() || st.isFIFO();
}

/**
 * Creates a device node or FIFO. Node has no mknod(2) binding, so this runs coreutils' `mknod`
 * (rare in build contexts and image trees, so a process per node is acceptable).
 */
export async function makeSpecial(path: string, kind: 'b' | 'c' | 'p', mode: number, major = 0, minor = 0): Promise<void> {
  const args = ['-m', (mode & 0o7777).toString(8), path, kind];
  if (kind !== 'p') args.push(String(major), String(minor));
  await new Promise<void>((resolve, reject) => {
    const p = spawn('mknod', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mknod ${path}: ${err.trim()}`))));
  });
}

/** Linux major/minor of a `rdev` (glibc's gnu_dev_major/minor). */
export function devNumbers(rdev: number): [number, number] {
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
  return [major, minor];
}

/**
 * Preserves an entry's recorded owner (`cp -a`). Without root only our own ids can be set, so
 * an EPERM then leaves the file owned by us (rootless use) instead of failing the copy; an
 * explicit owner from the action goes through {@link chownIf} and fails loudly.
 */
export async function preserveOwner(path: string, uid: number, gid: number): Promise<void> {
  try {
    await lchown(path, uid, gid);
  } catch (err) {
    if (errnoCode(err) === 'EPERM' && process.getuid?.() !== 0) return;
    throw err;
  }
}

/** {@link preserveOwner} with a synchronous call (metadata of many small entries). */
export function preserveOwnerSync(path: string, uid: number, gid: number): void {
  try {
    lchownSync(path, uid, gid);
  } catch (err) {
    if (errnoCode(err) === 'EPERM' && process.getuid?.() !== 0) return;
    throw err;
  }
}
