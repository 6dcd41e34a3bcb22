import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { WorkerError } from '../api/errors.js';

/** Max symlinks followed while resolving one path (Linux uses 40). */
const MAX_LINKS = 40;

/**
 * Normalises a path found in a layer or a spec to a root-relative form without `.`/`..`
 * (`''` is the root itself). Throws `PATH_ESCAPE` if `..` would climb above the root.
 */
export function cleanRelative(p: string): string {
  const abs = posix.normalize(`/${p}`);
  const rel = abs.replace(/^\/+/, '').replace(/\/+$/, '');
  const raw = p.replace(/^\.?\/+/, '');
  // posix.normalize('/../x') yields '/x': detect climbing explicitly, it is what a hostile layer does.
  let depth = 0;
  for (const part of raw.split('/')) {
    if (part === '..') {
      depth -= 1;
      if (depth < 0) throw new WorkerError('PATH_ESCAPE', `path ${JSON.stringify(p)} escapes the root`);
    } else if (part !== '' && part !== '.') depth += 1;
  }
  return rel === '.' ? '' : rel;
}

/**
 * Resolves `rel` inside `root` the way the kernel would inside a chroot: every symlink met on the
 * way (including the last component when `followLast`) is followed, but absolute targets and `..`
 * are clamped to `root`, so the result never leaves it (like Go's securejoin).
 * Missing components are kept as they are. Returns a host path under `root`. Synchronous: a
 * layer applies thousands of entries, and an lstat is cheaper than a thread-pool round trip.
 */
export function resolveInRoot(root: string, rel: string, followLast = true): string {
  const parts = cleanRelative(rel).split('/').filter((s) => s !== '');
  const out: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift() as string;
    if (part === '.') continue;
    if (part === '..') {
      out.pop();
      continue;
    }
    const candidate = posix.join(root, ...out, part);
    if (parts.length === 0 && !followLast) {
      out.push(part);
      break;
    }
    let st;
    try {
      st = lstatSync(candidate);
    } catch {
      out.push(part, ...parts.filter((s) => s !== '.'));
      return posix.join(root, ...collapse(out));
    }
    if (!st.isSymbolicLink()) {
      out.push(part);
      continue;
    }
    links += 1;
    if (links > MAX_LINKS) throw new WorkerError('PATH_ESCAPE', `too many symlinks resolving ${JSON.stringify(rel)}`);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) out.length = 0;
    parts.unshift(...target.split('/').filter((s) => s !== ''));
  }
  return posix.join(root, ...out);
}

function collapse(parts: string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p !== '.' && p !== '') out.push(p);
  }
  return out;
}
