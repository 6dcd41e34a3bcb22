import { chmod, link, lstat, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract, type Extract, type Header } from 'tar-stream';
import { parsePax } from '../layer/pax-records.js';
import { checkAborted, errnoCode, FileOpError, wrapOsError } from './errors.js';
import { decompressedStream, detectCompression, isTarHeader, readHead } from './decompress.js';
import { makeSpecial, preserveOwner, type Seconds } from './meta.js';
import { mkdirAllInRoot } from './mkdir-all.js';
import { cleanInRoot, pathComponents, resolveInRoot } from './resolve.js';
import type { Owner } from './types.js';
import { setEntryXattrs } from './xattrs.js';

/**
 * Whether the host file is a local tar archive (plain, gzip, bzip2, xz or zstd), detected by
 * content as BuildKit's isArchivePath: a regular file whose (decompressed) first block is a tar
 * header.
 */
export async function isArchive(hostPath: string): Promise<boolean> {
  let regular = false;
  try {
    regular = (await lstat(hostPath)).isFile();
  } catch {
    return false;
  }
  if (!regular) return false;
  const compression = await detectCompression(hostPath);
  const head = await readHead(decompressedStream(hostPath, compression), 512);
  return isTarHeader(head);
}

/** Lexically resolves `rel` under an archive root; `undefined` when `..` climbs out (a breakout). */
function archivePath(rel: string): string | undefined {
  const out: string[] = [];
  for (const c of pathComponents(rel)) {
    if (c === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(c);
  }
  return out.join('/');
}

/**
 * ADD's archive handling (BuildKit file/unpack.go): when `src` in `srcRoot` is a local archive,
 * extracts it into the directory `dest` of `destRoot` (created with `owner` and `time`) and
 * returns true; otherwise returns false and does nothing. Entries keep the archive's owners,
 * modes and mtimes. The extraction is confined to `dest` as Docker's chrootarchive: entries or
 * hardlinks naming paths above it, and relative symlinks pointing above it, are rejected;
 * symlinks already extracted are followed only inside `dest`.
 */
export async function unpackArchive(
  srcRoot: string,
  src: string,
  destRoot: string,
  dest: string,
  owner: Owner | undefined,
  time: Seconds | undefined,
  signal?: AbortSignal,
): Promise<boolean> {
  const srcHost = await resolveInRoot(srcRoot, cleanInRoot(src));
  if (!(await isArchive(srcHost))) return false;
  const destHost = await resolveInRoot(destRoot, cleanInRoot(dest));
  await mkdirAllInRoot(destRoot, destHost, 0o755, owner, time);
  const st = await lstat(destHost);
  if (!st.isDirectory()) {
    throw new FileOpError('FILEOP_NOT_A_DIRECTORY', cleanInRoot(dest), `cannot extract "${cleanInRoot(src)}" into "${cleanInRoot(dest)}": not a directory`);
  }
  const compression = await detectCompression(srcHost);
  // Go's archive/tar also reads pre-POSIX (v7) headers.
  const exOpts: Parameters<typeof extract>[0] & { allowUnknownFormat: boolean } = { allowUnknownFormat: true };
  const ex = extract(exOpts);
  const xattrsOf = captureXattrs(ex);
  const input = decompressedStream(srcHost, compression);
  const srcName = cleanInRoot(src);
  const done = pipeline(input, ex);
  done.catch(() => undefined); // awaited below; don't report it as unhandled meanwhile
  const dirs: Array<[string, Header]> = [];
  try {
    for await (const entry of ex) {
      checkAborted(signal, srcName);
      // streamx streams are async-iterable at runtime; its typings omit it.
      await extractEntry(destHost, entry.header, entry as unknown as AsyncIterable<Buffer>, srcName, dirs, xattrsOf.get(entry.header));
      entry.resume();
    }
    await done;
  } catch (err) {
    input.destroy();
    await done.catch(() => undefined);
    if (err instanceof FileOpError) throw err;
    // A failing syscall is reported as such; anything else comes from decoding the archive.
    if (typeof err === 'object' && err !== null && 'syscall' in err) throw wrapOsError(err, cleanInRoot(dest), 'extract into');
    throw new FileOpError('FILEOP_ARCHIVE_INVALID', srcName, `cannot read archive "${srcName}": ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  // Directory times last, deepest first, as children change them (Docker's Unpack).
  for (const [p, h] of dirs.reverse()) {
    const t = (h.mtime ?? new Date(0)).getTime() / 1000;
    await lutimes(p, t, t);
  }
  return true;
}

async function extractEntry(
  root: string,
  h: Header,
  body: AsyncIterable<Buffer>,
  srcName: string,
  dirs: Array<[string, Header]>,
  xattrs: ReadonlyMap<string, Buffer> | undefined,
): Promise<void> {
  const type: string | null = h.type;
  // tar-stream has no GNU sparse support: it would write the sparse map and fragments as the
  // file (PAX GNU.sparse.*) or drop the entry (old GNU 'S', an unknown type to it). Refused by
  // name instead; Docker's untar fails on types it does not know too.
  const pax = (h.pax ?? {}) as Readonly<Record<string, string | undefined>>;
  const sparse = Object.keys(pax).find((k) => k.startsWith('GNU.sparse.'));
  if (sparse !== undefined || type === null) {
    const name = pax['GNU.sparse.name'] ?? h.name;
    throw new FileOpError(
      'FILEOP_ARCHIVE_INVALID',
      srcName,
      sparse !== undefined ? `archive "${srcName}": "${name}" is a GNU sparse file (${sparse}), which ADD cannot extract` : `archive "${srcName}": "${h.name}" has a tar entry type ADD cannot extract`,
      { hint: 'create the archive without --sparse' },
    );
  }
  const rel = archivePath(h.name);
  const breakout = (what: string): FileOpError =>
    new FileOpError('FILEOP_ARCHIVE_INVALID', srcName, `archive "${srcName}": ${what} "${h.name}" points outside the extraction directory`);
  if (rel === undefined) throw breakout('entry');
  if (rel === '') return;
  const slash = rel.lastIndexOf('/');
  const parentRel = slash === -1 ? '' : rel.slice(0, slash);
  const base = rel.slice(slash + 1);
  const parentHost = await resolveInRoot(root, parentRel);
  await mkdirAllInRoot(root, parentHost, 0o755, undefined, undefined);
  const path = join(parentHost, base);
  const mode = (h.mode ?? 0o644) & 0o7777;

  let existing: Awaited<ReturnType<typeof lstat>> | undefined;
  try {
    existing = await lstat(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  if (existing !== undefined && !(existing.isDirectory() && type === 'directory')) {
    await rm(path, { recursive: true, force: true });
    existing = undefined;
  }

  switch (type) {
    case 'directory':
      if (existing === undefined) await mkdir(path, mode);
      dirs.push([path, h]);
      break;
    case 'file':
    case 'contiguous-file':
      await writeBody(path, mode, body);
      break;
    case 'link': {
      const target = archivePath(h.linkname ?? '');
      if (target === undefined || target === '') throw breakout('hardlink target of');
      try {
        await link(await resolveInRoot(root, target, { followFinal: false }), path);
      } catch (err) {
        // Docker's untar (BuildKit's too) fails here as well, on link(2); say which entry names what.
        const code = errnoCode(err);
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
        throw new FileOpError('FILEOP_ARCHIVE_INVALID', srcName, `archive "${srcName}": hardlink "${h.name}" points to "${h.linkname ?? ''}", which is not in the archive before it (nor in the destination)`, {
          hint: 'fix the archive: a hardlink needs its target earlier in the same archive (tar writes it so when both are archived together)',
          cause: err,
        });
      }
      break;
    }
    case 'symlink': {
      const linkname = h.linkname ?? '';
      // Docker rejects a relative link whose lexical target leaves the directory.
      if (!linkname.startsWith('/') && archivePath(`${parentRel}/${linkname}`) === undefined) throw breakout('symlink');
      await symlink(linkname, path);
      break;
    }
    case 'fifo':
      await makeSpecial(path, 'p', mode);
      break;
    case 'character-device':
    case 'block-device':
      await makeSpecial(path, type === 'block-device' ? 'b' : 'c', mode, h.devmajor ?? 0, h.devminor ?? 0);
      break;
    default:
      return;
  }
  await preserveOwner(path, h.uid, h.gid);
  // After the owner: chown(2) clears security.capability. As Docker's createTarFile does.
  if (xattrs !== undefined) await setEntryXattrs(path, xattrs, srcName, h.name);
  if (type !== 'symlink') await chmod(path, mode);
  if (type !== 'directory') {
    const t = (h.mtime ?? new Date(0)).getTime() / 1000;
    await lutimes(path, t, t);
  }
}

/** tar-stream's Extract steps around PAX headers (extract.js), wrapped by {@link captureXattrs}. */
interface ExtractInternals {
  _header: Header | null;
  _decodeLongHeader(buf: Buffer): void;
  _applyLongHeaders(): void;
}

/**
 * The `SCHILY.xattr.*` records of each entry's PAX header, as raw bytes. tar-stream decodes PAX
 * values as UTF-8 text, which corrupts binary values such as `security.capability`, so the
 * header block is also parsed here (as Go's archive/tar does, see pax-records.ts) when tar-stream
 * reads it, and the result is keyed by the header of the entry it belongs to. A header that
 * does not parse that way gets no xattrs (tar-stream's own, more lenient, reading stands).
 */
function captureXattrs(ex: Extract): WeakMap<Header, ReadonlyMap<string, Buffer>> {
  const xattrsOf = new WeakMap<Header, ReadonlyMap<string, Buffer>>();
  const x = ex as unknown as ExtractInternals;
  const decode = x._decodeLongHeader.bind(x);
  const apply = x._applyLongHeaders.bind(x);
  let pending: ReadonlyMap<string, Buffer> | undefined;
  x._decodeLongHeader = (buf: Buffer): void => {
    if ((x._header?.type as string | null | undefined) === 'pax-header') {
      try {
        const found = parsePax(buf).xattrs;
        pending = found.size > 0 ? found : undefined;
      } catch {
        pending = undefined;
      }
    }
    decode(buf);
  };
  x._applyLongHeaders = (): void => {
    apply();
    if (pending !== undefined && x._header !== null) xattrsOf.set(x._header, pending);
    pending = undefined;
  };
  return xattrsOf;
}

/** Streams an entry's body into a new file (`wx`: never through an existing path). */
async function writeBody(path: string, mode: number, body: AsyncIterable<Buffer>): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    for await (const chunk of body) await fh.write(chunk);
  } finally {
    await fh.close();
  }
}
