import { createHash, type Hash } from 'node:crypto';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type LocalStat } from '../local/walk.js';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

/**
 * Starts a sha256 over the "tarsum v1" header of a file, exactly as BuildKit's
 * cache/contenthash NewFromStat + WriteV1TarsumHeaders do: the tar header that
 * archive/tar.FileInfoHeader builds from the stat, with an empty name and without mtime,
 * written as `name`+value pairs in the order name, mode, uid, gid, size, typeflag, linkname,
 * uname, gname, devmajor, devminor (then xattrs).
 *
 * Facts matched (BuildKit v0.11): mode is the permission bits plus setuid/setgid/sticky (04000,
 * 02000, 01000); size is set for regular files only; uid, gid, uname and gname stay empty/0 because
 * FileInfoHeader cannot read them from an fsutil stat; the socket bit is cleared; symlinks have
 * mode 0777 and their target as linkname; devmajor/devminor only for devices.
 * Extended attributes are not hashed (kiln does not read xattrs; BuildKit would add them).
 */
export function tarsumHeaderHash(stat: LocalStat): Hash {
  return createHash('sha256').update(tarsumHeader(stat));
}

/** The header text {@link tarsumHeaderHash} starts its hash with. */
export function tarsumHeader(stat: LocalStat): string {
  let fmt = stat.mode & S_IFMT;
  if (fmt === S_IFSOCK) fmt = S_IFREG; // Go clears ModeSocket, leaving a "regular" file
  let mode = stat.mode & 0o7777;
  let typeflag: string;
  let size = 0;
  let linkname = '';
  let devmajor = 0;
  let devminor = 0;
  switch (fmt) {
    case S_IFREG:
      typeflag = '0';
      size = stat.size;
      break;
    case S_IFDIR:
      typeflag = '5';
      break;
    case S_IFLNK:
      typeflag = '2';
      linkname = stat.linkname;
      mode |= 0o777;
      break;
    case S_IFCHR:
    case S_IFBLK:
      typeflag = fmt === S_IFCHR ? '3' : '4';
      devmajor = (stat.rdev >> 8) & 0xfff;
      devminor = (stat.rdev & 0xff) | ((stat.rdev >> 12) & 0xfff00);
      break;
    case S_IFIFO:
      typeflag = '6';
      break;
    default:
      typeflag = '0';
  }
  return (
    `name` +
    `mode${mode}` +
    `uid0` +
    `gid0` +
    `size${size}` +
    `typeflag${typeflag}` +
    `linkname${linkname}` +
    `uname` +
    `gname` +
    `devmajor${devmajor}` +
    `devminor${devminor}`
  );
}

/** `sha256:<hex>` of a finished hash. */
export function digestOf(h: Hash): string {
  return `sha256:${h.digest('hex')}`;
}

/** The record digest of a non-regular file or a directory header (header only). */
export function headerDigest(stat: LocalStat): string {
  return digestOf(tarsumHeaderHash(stat));
}

/** sha256 of nothing: BuildKit's digest.FromBytes(nil), used for the root header of a local source. */
export const EMPTY_DIGEST = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
