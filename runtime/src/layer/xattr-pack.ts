import type { Pack } from 'tar-stream';
import { xattrPaxBody } from './xattrs.js';

type Header = Parameters<Pack['entry']>[0];

/** tar-stream encodes this type (typeflag `x`) though its typings leave it out. */
const PAX_HEADER = 'pax-header' as unknown as NonNullable<Header['type']>;

/** The part of tar-stream's Pack that turns one entry's header into blocks (pack.js `_encode`). */
interface PackEncoder {
  _encode(header: Header): void;
  push(chunk: Buffer): boolean;
}

/** Largest uid/gid tar-stream's header holds: 6 octal digits (it writes 777777 for anything above). */
export const MAX_USTAR_ID = 0o777777;

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

/**
 * Makes `tarball` write a PAX extended header with `SCHILY.xattr.*` records before each entry
 * whose header is in the returned map, and `uid`/`gid` records before any entry whose owner is
 * above {@link MAX_USTAR_ID} (tar-stream alone would write 262143, giving the file to another
 * user; Go's archive/tar, which BuildKit uses, keeps such ids too). tar-stream's own PAX records
 * are strings (UTF-8 encoded), which would corrupt binary values such as `security.capability`,
 * so the extended header is written here, in tar-stream's layout (a `PaxHeader` entry of type `x`,
 * then the entry's header), at the point where the Pack writes the entry's header. Other entries
 * are untouched.
 */
export function encodeXattrs(tarball: Pack): WeakMap<Header, ReadonlyMap<string, Buffer>> {
  const paxOf = new WeakMap<Header, ReadonlyMap<string, Buffer>>();
  const p = tarball as unknown as PackEncoder;
  const encode = p._encode.bind(p);
  p._encode = (h: Header): void => {
    const xattrs = paxOf.get(h);
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    const big = uid > MAX_USTAR_ID || gid > MAX_USTAR_ID;
    if (xattrs === undefined && !big) {
      encode(h);
      return;
    }
    const linkname = h.linkname ?? undefined;
    const body = xattrPaxBody(h.name, linkname, xattrs ?? NO_XATTRS, big ? { uid, gid } : undefined);
    // The PAX records win over the ustar owner fields, which hold what fits.
    const owner = { uid: Math.min(uid, MAX_USTAR_ID), gid: Math.min(gid, MAX_USTAR_ID) };
    encode({ name: 'PaxHeader', mode: h.mode ?? 0o644, ...owner, size: body.length, mtime: h.mtime ?? new Date(0), type: PAX_HEADER, uname: '', gname: '' });
    p.push(body);
    if (body.length % 512 !== 0) p.push(Buffer.alloc(512 - (body.length % 512)));
    // The PAX path and linkpath win over these fields; keep them when ustar can hold them.
    encode({
      ...h,
      ...owner,
      name: fitsUstar(h.name) ? h.name : 'PaxHeader',
      ...(linkname === undefined ? {} : { linkname: Buffer.byteLength(linkname) <= 100 ? linkname : 'PaxHeader' }),
    });
  };
  return paxOf;
}

/** Whether tar-stream writes `name` in a ustar header (ASCII, as name or prefix/name) rather than PAX. */
function fitsUstar(name: string): boolean {
  if (Buffer.byteLength(name) !== name.length) return false;
  let rest = name;
  let prefix = '';
  while (rest.length > 100) {
    const i = rest.indexOf('/');
    if (i < 0) return false;
    prefix += prefix === '' ? rest.slice(0, i) : `/${rest.slice(0, i)}`;
    rest = rest.slice(i + 1);
  }
  return prefix.length <= 155;
}
