import { spawn } from 'node:child_process';
import { readXattrs } from '../snapshot/mount-helper.js';
import { WorkerError } from '../api/errors.js';
import { OVERLAY_PRIVATE, unescapeName } from '../fileop/xattrs.js';
import type { Change } from './changes.js';

/** A change with the extended attributes its layer entry carries (none: `undefined`). */
export type ChangeWithXattrs = readonly [Change, ReadonlyMap<string, Buffer> | undefined];

/**
 * Attributes that never go into a layer: overlayfs's own bookkeeping (`trusted.overlay.*`, or
 * `user.overlay.*` with userxattr: origin, redirect, opaque, impure …), which shows on files read
 * from an upper directory and means nothing elsewhere, and the host's SELinux label, which belongs
 * to the host's policy, not to the image (BuildKit's differ never exports it either).
 */
const notExported = (name: string): boolean => OVERLAY_PRIVATE.test(name) || name === 'security.selinux';

/** Paths per helper request: one request per this many entries instead of one per file. */
const BATCH = 256;

/**
 * Pairs each change with the extended attributes of its file, read in batches (see
 * {@link withXattrsOf}); whiteouts have none.
 */
export function withXattrs(entries: AsyncIterable<Change>): AsyncGenerator<ChangeWithXattrs> {
  return withXattrsOf(entries, (c) => (c.kind === 'add' ? c.host : undefined));
}

/**
 * Pairs each item with the exportable extended attributes of the file `hostOf` names (none when
 * it names none), read in batches: one helper request per {@link BATCH} items (see
 * {@link readXattrs}; `getfattr` when the helper cannot be used), so a tree of thousands of files
 * costs a few requests, not a process per file. The helper reads one batch while the next is
 * listed; at most two batches are read ahead of the consumer. Closing the result closes `items`.
 */
export async function* withXattrsOf<T>(items: AsyncIterable<T>, hostOf: (item: T) => string | undefined): AsyncGenerator<readonly [T, ReadonlyMap<string, Buffer> | undefined]> {
  let batch: T[] = [];
  let pending: { readonly batch: T[]; readonly attrs: Promise<(ReadonlyMap<string, Buffer> | undefined)[]> } | undefined;
  try {
    for await (const item of items) {
      batch.push(item);
      if (batch.length < BATCH) continue;
      const next = { batch, attrs: xattrsOf(batch.map(hostOf)) };
      next.attrs.catch(() => undefined);
      batch = [];
      if (pending !== undefined) yield* paired(pending.batch, await pending.attrs);
      pending = next;
    }
    if (pending !== undefined) yield* paired(pending.batch, await pending.attrs);
    pending = undefined;
    if (batch.length > 0) yield* paired(batch, await xattrsOf(batch.map(hostOf)));
  } finally {
    // Closed early: let a request in flight finish before the caller moves on (it may unmount).
    await pending?.attrs.catch(() => undefined);
  }
}

function* paired<T>(batch: readonly T[], attrs: readonly (ReadonlyMap<string, Buffer> | undefined)[]): Generator<readonly [T, ReadonlyMap<string, Buffer> | undefined]> {
  for (let i = 0; i < batch.length; i++) yield [batch[i] as T, attrs[i]];
}

async function xattrsOf(paths: readonly (string | undefined)[]): Promise<(ReadonlyMap<string, Buffer> | undefined)[]> {
  const hosts: string[] = [];
  const at: number[] = [];
  paths.forEach((p, i) => {
    if (p !== undefined) {
      hosts.push(p);
      at.push(i);
    }
  });
  const found: (Map<string, Buffer> | undefined)[] = new Array<Map<string, Buffer> | undefined>(paths.length).fill(undefined);
  if (hosts.length === 0) return found;
  let read: (Map<string, Buffer> | undefined)[] | undefined;
  try {
    read = (await readXattrs(hosts)) ?? (await viaGetfattr(hosts));
  } catch (e) {
    throw new WorkerError('LAYER_EXPORT_FAILED', `cannot read extended attributes: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  read.forEach((attrs, j) => {
    if (attrs === undefined) return;
    for (const name of [...attrs.keys()]) if (notExported(name)) attrs.delete(name);
    if (attrs.size > 0) found[at[j] as number] = attrs;
  });
  return found;
}

/**
 * For each pair of paths, whether their exportable extended attributes differ (the same names
 * with the same bytes are equal; overlayfs's private ones are ignored), read in one helper
 * request. Containerd's differ compares `security.capability` the same way (continuity
 * fs.compareCapabilities) so that an attribute-only change (setcap, setfattr) is a change.
 * All `false` when the helper cannot be used.
 */
export async function xattrsDiffer(pairs: readonly (readonly [string, string])[]): Promise<boolean[]> {
  if (pairs.length === 0) return [];
  let read: (Map<string, Buffer> | undefined)[] | undefined;
  try {
    read = await readXattrs(pairs.flatMap(([a, b]) => [a, b]));
  } catch (e) {
    throw new WorkerError('LAYER_EXPORT_FAILED', `cannot compare extended attributes: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (read === undefined) return pairs.map(() => false);
  return pairs.map((_p, i) => !sameExported(read[2 * i], read[2 * i + 1]));
}

function sameExported(a: ReadonlyMap<string, Buffer> | undefined, b: ReadonlyMap<string, Buffer> | undefined): boolean {
  const ea = [...(a ?? [])].filter(([n]) => !notExported(n));
  const eb = new Map([...(b ?? [])].filter(([n]) => !notExported(n)));
  if (ea.length !== eb.size) return false;
  return ea.every(([n, v]) => eb.get(n)?.equals(v) === true);
}

/** The fallback without the helper: one `getfattr` per batch; no attributes without the tool. */
function viaGetfattr(paths: readonly string[]): Promise<(Map<string, Buffer> | undefined)[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', ...paths], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => chunks.push(d));
    p.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(paths.map(() => undefined)) : reject(err)));
    p.on('close', () => {
      // Files are printed in argument order, each as "# file: <escaped name>" then name=0x<hex> lines.
      const byName = new Map<string, Map<string, Buffer>>();
      let cur: Map<string, Buffer> | undefined;
      for (const line of Buffer.concat(chunks).toString('latin1').split('\n')) {
        if (line.startsWith('# file: ')) {
          cur = new Map();
          byName.set(unescapeName(line.slice('# file: '.length)), cur);
        } else if (cur !== undefined && line !== '') {
          const eq = line.indexOf('=');
          const name = Buffer.from(eq < 0 ? line : line.slice(0, eq), 'latin1').toString('utf8');
          const v = eq < 0 ? '' : line.slice(eq + 1);
          cur.set(name, v.startsWith('0x') ? Buffer.from(v.slice(2), 'hex') : Buffer.from(v.replace(/^"|"$/g, ''), 'latin1'));
        }
      }
      resolve(paths.map((p) => byName.get(p)));
    });
  });
}

/**
 * The body of a PAX extended header for an entry with extended attributes: `path`, `linkpath`
 * (when the entry has one) and one `SCHILY.xattr.<name>=<raw bytes>` record per attribute, as Go's
 * archive/tar writes Header.PAXRecords (containerd's and moby's layer writers). Attributes are in
 * byte order of their names so the same tree always gives the same bytes (Go sorts PAX keys too).
 */
export function xattrPaxBody(
  name: string,
  linkname: string | undefined,
  xattrs: ReadonlyMap<string, Buffer>,
  owner?: { readonly uid: number; readonly gid: number },
): Buffer {
  const records: Buffer[] = [record('path', Buffer.from(name))];
  if (linkname !== undefined && linkname !== '') records.push(record('linkpath', Buffer.from(linkname)));
  const names = [...xattrs.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const n of names) records.push(record(`SCHILY.xattr.${n}`, xattrs.get(n) as Buffer));
  if (owner !== undefined) records.push(record('uid', Buffer.from(String(owner.uid))), record('gid', Buffer.from(String(owner.gid))));
  return Buffer.concat(records);
}

/** `"<len> <key>=<value>\n"`, where len counts its own digits (Go's formatPAXRecord). */
function record(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + String(body.length).length;
  if (String(len).length !== String(body.length).length) len = body.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}
