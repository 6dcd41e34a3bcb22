import { readlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { packTar, type PackEntry, type TarHeader } from '../image/tar-pack.js';
import { withXattrsOf } from '../layer/xattrs.js';
import { walkTree } from './fs-tree.js';
import { devNumbers } from '../fileop/meta.js';

/** Options for {@link packDirectory}. */
export interface PackDirectoryOptions {
  /**
   * SOURCE_DATE_EPOCH (seconds): every entry's mtime is set to it, older ones too, as BuildKit's
   * tar exporter does (exporter/local/fs.go walk Map: `st.ModTime = opt.Epoch.UnixNano()`).
   */
  readonly sourceDateEpoch?: number | undefined;
  /**
   * Files added at the top of the tree (attestations: `provenance.json`), in their sorted place
   * among the top-level entries, as BuildKit merges its static attestation FS into the output.
   */
  readonly extraFiles?: ReadonlyArray<ExtraFile> | undefined;
}

/** A file that is not in the tree but written into the tar (mode and mtime given). */
export interface ExtraFile {
  readonly name: string;
  readonly data: Uint8Array;
  readonly mode: number;
  readonly mtime: Date;
}

/**
 * A tar stream of a directory tree: deterministic order (sorted, directories before contents),
 * modes, owners (numeric, no user names), symlinks, hard links, fifos and device nodes preserved,
 * and extended attributes as PAX `SCHILY.xattr.*` records (as BuildKit's fsutil tar writer; not
 * overlayfs's own nor the SELinux label), read in batches without a process per file.
 */
export function packDirectory(dir: string, opts: PackDirectoryOptions = {}): Readable {
  return packTar(directoryEntries(dir, opts));
}

/** One platform's tree in a multi-platform tar: `path` is its top directory (`linux_amd64`). */
export interface SubDirectory {
  readonly path: string;
  readonly rootfs: string;
  /** Files added at the top of this tree (see {@link PackDirectoryOptions.extraFiles}). */
  readonly extraFiles?: ReadonlyArray<ExtraFile> | undefined;
}

/**
 * A tar of several trees, each under its own top directory, as BuildKit's tar exporter writes a
 * multi-platform result (fsutil.SubDirFS: directories sorted by name, each a 0755 root-owned
 * entry, then that tree's entries with the prefix). Hard links stay within their own tree.
 */
export function packDirectories(dirs: ReadonlyArray<SubDirectory>, opts: PackDirectoryOptions = {}): Readable {
  const sorted = [...dirs].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const mtime = new Date((opts.sourceDateEpoch ?? 0) * 1000);
  async function* all(): AsyncIterable<PackEntry> {
    for (const d of sorted) {
      yield { header: { name: `${d.path}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime, uname: '', gname: '' } };
      yield* directoryEntries(d.rootfs, { ...opts, extraFiles: d.extraFiles }, `${d.path}/`);
    }
  }
  return packTar(all());
}

async function* directoryEntries(dir: string, opts: PackDirectoryOptions, prefix = ''): AsyncIterable<PackEntry> {
  // No attestation files (every export without --provenance/--sbom): the tree as it is, without
  // a per-entry merge step.
  if (opts.extraFiles === undefined || opts.extraFiles.length === 0) {
    yield* treeEntries(dir, opts, prefix);
    return;
  }
  const extras = [...(opts.extraFiles ?? [])].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const extraEntry = (x: ExtraFile): PackEntry => ({ header: { name: prefix + x.name, type: 'file', mode: x.mode, uid: 0, gid: 0, mtime: x.mtime, uname: '', gname: '', size: x.data.length }, data: x.data });
  // BuildKit's staticfs.MergeFS(output, statements) walk: by whole path (no trailing `/`), an
  // extra file comes before an output entry whose path sorts after or equals it, and replaces
  // the entry with its own path (upper wins) instead of following it as a second entry.
  for await (const e of treeEntries(dir, opts, prefix)) {
    const path = e.header.name.slice(prefix.length).replace(/\/$/, '');
    let replaced = false;
    while (extras[0] !== undefined && Buffer.compare(Buffer.from(extras[0].name), Buffer.from(path)) <= 0) {
      const x = extras.shift() as ExtraFile;
      yield extraEntry(x);
      if (x.name === path) {
        replaced = true;
        break;
      }
    }
    if (!replaced) yield e;
  }
  for (const x of extras) yield extraEntry(x);
}

async function* treeEntries(dir: string, opts: PackDirectoryOptions, prefix: string): AsyncIterable<PackEntry> {
  const seen = new Map<string, string>();
  const epoch = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000) : undefined;
  for await (const [e, xattrs] of withXattrsOf(walkTree(dir), (t) => t.abs)) {
    const st = e.stat;
    // Without the epoch: fsutil.WriteTar leaves the header format unset, so Go's tar.Writer rounds
    // ModTime to the nearest second (WriteHeader: `ModTime.Round(time.Second)`), not down.
    const mtime = epoch ?? new Date(Math.round(st.mtimeMs / 1000) * 1000);
    const name = prefix + e.path;
    const h: TarHeader = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime, uname: '', gname: '' };
    const x = { xattrs };
    if (st.isDirectory()) yield { header: { ...h, name: `${name}/`, type: 'directory' }, ...x };
    else if (st.isSymbolicLink()) {
      yield { header: { ...h, type: 'symlink', linkname: await readlink(e.abs) }, ...x };
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? seen.get(key) : undefined;
      if (first !== undefined) yield { header: { ...h, type: 'link', linkname: first }, ...x };
      else {
        if (st.nlink > 1) seen.set(key, name);
        yield { header: { ...h, type: 'file', size: st.size }, file: e.abs, ...x };
      }
    } else if (st.isFIFO()) yield { header: { ...h, type: 'fifo' }, ...x };
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const [devmajor, devminor] = devNumbers(st.rdev);
      yield { header: { ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor, devminor }, ...x };
    }
  }
}
