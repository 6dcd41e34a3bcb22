import { WorkerError } from '../api/errors.js';

/** Entry types a layer can hold (the names tar-stream used; unknown typeflags are `other`). */
export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'other';

/** One tar entry's header, with PAX and GNU long-name records applied. */
export interface TarEntryHeader {
  readonly name: string;
  readonly linkname: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of data that follow (regular files). */
  readonly size: number;
  /** Modification time in seconds since the epoch (fractional with a PAX `mtime`). */
  readonly mtime: number;
  readonly devmajor: number;
  readonly devminor: number;
}

/**
 * What a {@link TarReader} calls, synchronously, as it parses: `entry` for each header, then
 * `data` for the entry's bytes (in pieces, possibly none) and `end` once they are complete.
 */
export interface TarSink {
  entry(header: TarEntryHeader): void;
  data(chunk: Buffer): void;
  end(): void;
}

const BLOCK = 512;
/** Longest GNU long name or PAX record block accepted (tar-stream's limit). */
const MAX_META = 1 << 20;

const TYPES: Readonly<Record<string, TarEntryType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

/** Typeflags of entries without a data section: link, symlink, char, block, directory, fifo. */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

type State =
  | { readonly kind: 'header' }
  | { readonly kind: 'data'; remaining: number; pad: number }
  | { readonly kind: 'meta'; readonly flag: string; readonly parts: Buffer[]; remaining: number; pad: number; readonly size: number }
  | { readonly kind: 'skip'; remaining: number }
  /** After one zero block: a second one ends the archive. */
  | { readonly kind: 'zero' }
  | { readonly kind: 'end' };

function invalid(msg: string): WorkerError {
  return new WorkerError('LAYER_INVALID', `invalid tar stream: ${msg}`);
}

/** A NUL-terminated string field. */
function str(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

/** A numeric field: octal (space/NUL padded) or base-256 (high bit set), as Go's archive/tar. */
function num(b: Buffer, off: number, len: number): number {
  const first = b[off] ?? 0;
  if ((first & 0x80) !== 0) {
    const neg = (first & 0x40) !== 0;
    let v = 0;
    for (let i = 0; i < len; i++) {
      let byte = b[off + i] ?? 0;
      if (i === 0) byte &= 0x7f;
      if (neg) byte ^= 0xff;
      v = v * 256 + byte;
    }
    return neg ? -(v + 1) : v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i] ?? 0;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw invalid(`bad number field ${JSON.stringify(b.toString('latin1', off, end))}`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : v;
}

/** PAX records `"<len> <key>=<value>\n"`. */
function parsePax(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(buf.toString('latin1', off, sp));
    if (!Number.isInteger(len) || len <= sp - off || off + len > buf.length) throw invalid('bad PAX record');
    const rec = buf.toString('utf8', sp + 1, off + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

/**
 * An incremental, synchronous tar parser for layers: ustar, GNU (long names and link names) and
 * PAX (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`) headers, octal and base-256 numbers,
 * checksums verified. Global PAX headers are skipped, as Go's archive/tar returns them as entries
 * of their own that BuildKit ignores. Push decompressed bytes with {@link TarReader.push}; every
 * entry a chunk completes is handed to the sink before `push` returns (no per-entry promise or
 * stream, which is most of the cost of a layer of small entries).
 */
export class TarReader {
  readonly #sink: TarSink;
  #state: State = { kind: 'header' };
  /** Bytes of a header block split across chunks. */
  #partial: Buffer | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #pax: Map<string, string> | undefined;
  /** Entries seen (headers other than long-name, PAX and end blocks). */
  entries = 0;

  constructor(sink: TarSink) {
    this.#sink = sink;
  }

  /** Parses `chunk`, calling the sink for what it completes. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const st = this.#state;
      switch (st.kind) {
        case 'end':
          return; // anything after the end-of-archive blocks is ignored (hashed by the caller)
        case 'data': {
          if (st.remaining > 0) {
            const n = Math.min(st.remaining, chunk.length - off);
            this.#sink.data(chunk.subarray(off, off + n));
            st.remaining -= n;
            off += n;
            if (st.remaining === 0) {
              this.#sink.end();
              if (st.pad === 0) this.#state = { kind: 'header' };
            }
            continue;
          }
          off = this.#skipPad(st, chunk.length - off, off);
          continue;
        }
        case 'meta': {
          if (st.remaining > 0) {
            const n = Math.min(st.remaining, chunk.length - off);
            st.parts.push(chunk.subarray(off, off + n));
            st.remaining -= n;
            off += n;
            if (st.remaining === 0) this.#meta(st.flag, Buffer.concat(st.parts, st.size));
            continue;
          }
          off = this.#skipPad(st, chunk.length - off, off);
          continue;
        }
        case 'skip': {
          const n = Math.min(st.remaining, chunk.length - off);
          st.remaining -= n;
          off += n;
          if (st.remaining === 0) this.#state = { kind: 'header' };
          continue;
        }
        case 'header':
        case 'zero': {
          let block: Buffer;
          let at: number;
          if (this.#partial !== undefined || chunk.length - off < BLOCK) {
            const have = this.#partial ?? Buffer.alloc(0);
            const n = Math.min(BLOCK - have.length, chunk.length - off);
            const joined = Buffer.concat([have, chunk.subarray(off, off + n)]);
            off += n;
            if (joined.length < BLOCK) {
              this.#partial = joined;
              continue;
            }
            this.#partial = undefined;
            block = joined;
            at = 0;
          } else {
            block = chunk;
            at = off;
            off += BLOCK;
          }
          this.#header(block, at);
          continue;
        }
      }
    }
  }

  /** The input ended: throws when it ended inside an entry or header. */
  finish(): void {
    const st = this.#state;
    const clean = st.kind === 'end' || st.kind === 'zero' || (st.kind === 'header' && this.#partial === undefined);
    if (!clean || this.#longName !== undefined || this.#longLink !== undefined || this.#pax !== undefined) {
      throw invalid('unexpected end of data');
    }
  }

  #header(b: Buffer, at: number): void {
    // One pass: the byte sum (zero only for an all-zero block) and the bytes above 127 (for the
    // signed checksum some old tars wrote).
    let sum = 0;
    let high = 0;
    for (let i = at; i < at + BLOCK; i++) {
      const c = b[i] as number;
      sum += c;
      if (c > 127) high += 1;
    }
    if (sum === 0) {
      this.#state = this.#state.kind === 'zero' ? { kind: 'end' } : { kind: 'zero' };
      return;
    }
    if (this.#state.kind === 'zero') throw invalid('data after an end-of-archive block');
    // Checksum: the header's bytes with the checksum field read as spaces.
    let field = 0;
    let fieldHigh = 0;
    for (let i = at + 148; i < at + 156; i++) {
      const c = b[i] as number;
      field += c;
      if (c > 127) fieldHigh += 1;
    }
    const unsigned = sum - field + 8 * 0x20;
    const signed = unsigned - 256 * (high - fieldHigh);
    const want = num(b, at + 148, 8);
    if (want !== unsigned && want !== signed) throw invalid('header checksum mismatch (corrupted, or still compressed?)');
    const flag = String.fromCharCode(b[at + 156] ?? 0);
    let size = num(b, at + 124, 12);
    if (size < 0) throw invalid('negative entry size');
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (flag === 'L' || flag === 'K' || flag === 'x') {
      if (size > MAX_META) throw invalid('extended header exceeds 1 MiB');
      this.#state = { kind: 'meta', flag, parts: [], remaining: size, pad, size };
      if (size === 0) this.#meta(flag, Buffer.alloc(0));
      return;
    }
    if (flag === 'g') {
      // A global PAX header: not an entry, not applied.
      this.#state = size + pad === 0 ? { kind: 'header' } : { kind: 'skip', remaining: size + pad };
      return;
    }
    let name = str(b, at, 100);
    const magic = b.toString('latin1', at + 257, at + 263);
    if (magic === 'ustar\0' && b[at + 345] !== 0) name = `${str(b, at + 345, 155)}/${name}`;
    let linkname = str(b, at + 157, 100);
    let uid = num(b, at + 108, 8);
    let gid = num(b, at + 116, 8);
    let mtime = num(b, at + 136, 12);
    let type: TarEntryType = TYPES[flag] ?? 'other';
    if (this.#longName !== undefined) name = this.#longName;
    if (this.#longLink !== undefined) linkname = this.#longLink;
    const pax = this.#pax;
    if (pax !== undefined) {
      name = pax.get('path') ?? name;
      linkname = pax.get('linkpath') ?? linkname;
      const int = (k: string, d: number): number => {
        const v = pax.get(k);
        if (v === undefined) return d;
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw invalid(`bad PAX ${k} ${JSON.stringify(v)}`);
        return n;
      };
      size = Math.floor(int('size', size));
      uid = Math.floor(int('uid', uid));
      gid = Math.floor(int('gid', gid));
      mtime = int('mtime', mtime);
    }
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#pax = undefined;
    // Old tars mark directories with a trailing slash on a regular-file entry.
    if ((flag === '0' || flag === '\0') && name.endsWith('/')) type = 'directory';
    this.entries += 1;
    const header: TarEntryHeader = {
      name,
      linkname,
      type,
      mode: num(b, at + 100, 8),
      uid,
      gid,
      size,
      mtime,
      devmajor: num(b, at + 329, 8),
      devminor: num(b, at + 337, 8),
    };
    this.#sink.entry(header);
    // Links, directories, devices and fifos carry no data whatever their size field says (Go's
    // archive/tar isHeaderOnlyType, which BuildKit reads layers with).
    const dataSize = HEADER_ONLY.has(flag) || (flag === '\0' && type === 'directory') ? 0 : size;
    const dataPad = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (dataSize === 0) {
      this.#sink.end();
      this.#state = { kind: 'header' };
    } else {
      this.#state = { kind: 'data', remaining: dataSize, pad: dataPad };
    }
  }

  /** Skips what is left of an entry's padding to its 512-byte block; returns the new offset. */
  #skipPad(st: { pad: number }, available: number, off: number): number {
    const n = Math.min(st.pad, available);
    st.pad -= n;
    if (st.pad === 0) this.#state = { kind: 'header' };
    return off + n;
  }

  #meta(flag: string, buf: Buffer): void {
    if (flag === 'x') this.#pax = parsePax(buf);
    else {
      const end = buf.indexOf(0);
      const s = buf.toString('utf8', 0, end < 0 ? buf.length : end);
      if (flag === 'L') this.#longName = s;
      else this.#longLink = s;
    }
    const st = this.#state;
    if (st.kind === 'meta' && st.pad === 0) this.#state = { kind: 'header' };
  }
}
