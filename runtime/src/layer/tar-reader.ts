import { MAX_META, invalid, parseDecimal, parsePax, parsePaxTime, parseSparseMap1x0, sparseError, sparseMap1x0Lines, sparseOf, type PaxRecords, type SparseEntry } from './pax-records.js';

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
  /** Extended attributes from PAX `SCHILY.xattr.<name>` records (raw value bytes), when any. */
  readonly xattrs?: ReadonlyMap<string, Buffer>;
}

/**
 * What a {@link TarReader} calls, synchronously, as it parses: `entry` for each header, then
 * `data` for the entry's bytes (in pieces, possibly none) and `end` once they are complete.
 */
export interface TarSink {
  entry(header: TarEntryHeader): void;
  data(chunk: Buffer): void;
  /**
   * A hole of `n` zero bytes in a sparse file's data (GNU sparse PAX formats): the next data
   * goes `n` bytes further on. Without it the reader passes zeros to `data`.
   */
  skip?(n: number): void;
  end(): void;
}

const BLOCK = 512;

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
  | SparseState
  /** After one zero block: a second one ends the archive. */
  | { readonly kind: 'zero' }
  | { readonly kind: 'end' };


/**
 * Reading a GNU sparse file's data section: for format 1.0 first its map (whole blocks of
 * decimal lines), then the fragments back to back, which go to their offsets; the rest is holes.
 */
interface SparseState {
  readonly kind: 'sparse';
  readonly name: string;
  /** Physical bytes of the data section left (map blocks included), and the padding after it. */
  remaining: number;
  pad: number;
  /** The map; undefined while a 1.0 map is still being read (into `mapParts`). */
  entries: SparseEntry[] | undefined;
  readonly mapParts: Buffer[];
  mapLength: number;
  /** Newlines read of a 1.0 map, and how many it needs (1 + 2 × count, once its first line is in). */
  mapLines: number;
  mapNeed: number | undefined;
  /** Entry being written, bytes of it left, and the logical position in the file. */
  index: number;
  left: number;
  pos: number;
  /** The file's logical size. */
  readonly size: number;
}

const ZEROS = Buffer.alloc(64 * 1024);

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

/**
 * An incremental, synchronous tar parser for layers: ustar, GNU (long names and link names) and
 * PAX (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`, `SCHILY.xattr.*`) headers, read as Go's
 * archive/tar reads them (BuildKit's reader), octal and base-256 numbers, checksums verified. GNU
 * sparse files in PAX formats 0.0, 0.1 and 1.0 are expanded as Go does (the sink's `skip` gets
 * the holes); old GNU `S` entries (which BuildKit's applier refuses) and unknown sparse versions
 * fail with `LAYER_UNSUPPORTED`. Global PAX headers are skipped, as Go's archive/tar returns them as entries
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
  #pax: PaxRecords | undefined;
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
        case 'sparse': {
          if (st.remaining > 0 || st.entries === undefined) {
            off = this.#sparse(st, chunk, off);
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
    const pad = size < 0 ? 0 : (BLOCK - (size % BLOCK)) % BLOCK;
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size < 0) throw invalid('negative entry size');
    }
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
    let xattrs: ReadonlyMap<string, Buffer> | undefined;
    let sparse: { readonly name: string; readonly size: number; readonly entries: SparseEntry[] | undefined } | undefined;
    if (pax !== undefined) {
      // As Go's mergePAX: an empty value keeps the header's own field; numbers are strict decimal.
      const get = (k: string): string | undefined => {
        const v = pax.text.get(k);
        return v === '' ? undefined : v;
      };
      const number = (k: string, d: number, parse: (v: string) => number | undefined): number => {
        const v = get(k);
        if (v === undefined) return d;
        const n = parse(v);
        if (n === undefined) throw invalid(`bad PAX ${k} ${JSON.stringify(v.slice(0, 40))}`);
        return n;
      };
      name = get('path') ?? name;
      linkname = get('linkpath') ?? linkname;
      size = number('size', size, parseDecimal);
      uid = number('uid', uid, parseDecimal);
      gid = number('gid', gid, parseDecimal);
      mtime = number('mtime', mtime, parsePaxTime);
      if (pax.xattrs.size > 0) xattrs = pax.xattrs;
      sparse = sparseOf(pax.text, name, get);
      if (sparse !== undefined) name = sparse.name;
    }
    // Go's reader expands these too, but BuildKit's applier (containerd) refuses the 'S' type.
    if (flag === 'S') throw sparseError(name, 'old GNU format');
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
      ...(xattrs === undefined ? {} : { xattrs }),
    };
    // Links, directories, devices and fifos carry no data whatever their size field says (Go's
    // archive/tar isHeaderOnlyType, which BuildKit reads layers with); others need a size >= 0.
    const dataSize = HEADER_ONLY.has(flag) || (flag === '\0' && type === 'directory') ? 0 : size;
    if (dataSize < 0) throw invalid(`negative size for ${JSON.stringify(name)}`);
    if (sparse !== undefined) {
      if (HEADER_ONLY.has(flag) || type !== 'file') throw invalid(`GNU sparse map on ${JSON.stringify(name)}, which is not a regular file`);
      this.#sink.entry({ ...header, size: sparse.size });
      const st: SparseState = {
        kind: 'sparse',
        name,
        remaining: dataSize,
        pad: (BLOCK - (dataSize % BLOCK)) % BLOCK,
        entries: undefined,
        mapParts: [],
        mapLength: 0,
        mapLines: 0,
        mapNeed: undefined,
        index: 0,
        left: 0,
        pos: 0,
        size: sparse.size,
      };
      this.#state = st;
      if (sparse.entries !== undefined) this.#startFragments(st, sparse.entries);
      return;
    }
    this.#sink.entry(header);
    const dataPad = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (dataSize === 0) {
      this.#sink.end();
      this.#state = { kind: 'header' };
    } else {
      this.#state = { kind: 'data', remaining: dataSize, pad: dataPad };
    }
  }

  /** Consumes data-section bytes of a sparse file from `chunk` at `off`; returns the new offset. */
  #sparse(st: SparseState, chunk: Buffer, off: number): number {
    if (st.entries === undefined) {
      // Format 1.0: the map comes first, in whole blocks, read until it has all its lines.
      if (st.remaining === 0) throw invalid(`GNU sparse map of ${JSON.stringify(st.name)} ends early`);
      const n = Math.min(BLOCK - (st.mapLength % BLOCK), st.remaining, chunk.length - off);
      const piece = chunk.subarray(off, off + n);
      st.mapParts.push(piece);
      st.mapLength += n;
      st.remaining -= n;
      for (let i = piece.indexOf(0x0a); i >= 0; i = piece.indexOf(0x0a, i + 1)) st.mapLines += 1;
      if (st.mapLength % BLOCK === 0) {
        // Parsed once all its lines are in (Go's feedTokens counts newlines block by block):
        // re-parsing the whole map at every block made a hostile 1 MiB map cost ~30 s of CPU.
        if (st.mapNeed === undefined && st.mapLines > 0) st.mapNeed = sparseMap1x0Lines(Buffer.concat(st.mapParts, st.mapLength), st.name);
        const entries = st.mapNeed !== undefined && st.mapLines >= st.mapNeed ? parseSparseMap1x0(Buffer.concat(st.mapParts, st.mapLength), st.name) : undefined;
        if (entries !== undefined) {
          st.mapParts.length = 0;
          this.#startFragments(st, entries);
        } else if (st.mapLength > MAX_META) throw invalid(`GNU sparse map of ${JSON.stringify(st.name)} exceeds 1 MiB`);
      }
      return off + n;
    }
    const entry = st.entries[st.index];
    if (entry === undefined) throw invalid(`GNU sparse file ${JSON.stringify(st.name)} has data beyond its map`);
    const n = Math.min(st.left, chunk.length - off);
    this.#sink.data(chunk.subarray(off, off + n));
    st.left -= n;
    st.pos += n;
    st.remaining -= n;
    if (st.left === 0) this.#nextFragment(st);
    return off + n;
  }

  /** Checks the map as Go's validateSparseEntries and against the data left, then starts writing. */
  #startFragments(st: SparseState, entries: SparseEntry[]): void {
    let end = 0;
    let data = 0;
    for (const e of entries) {
      if (e.offset < 0 || e.length < 0 || e.offset < end || e.offset + e.length > st.size) throw invalid(`bad GNU sparse map for ${JSON.stringify(st.name)}`);
      end = e.offset + e.length;
      data += e.length;
    }
    if (data !== st.remaining) throw invalid(`GNU sparse map of ${JSON.stringify(st.name)} maps ${data} bytes, its data has ${st.remaining}`);
    st.entries = entries;
    st.index = -1;
    this.#nextFragment(st);
  }

  /** Moves to the next fragment with data (holes before it skipped); ends the file after the last. */
  #nextFragment(st: SparseState): void {
    const entries = st.entries as SparseEntry[];
    for (st.index += 1; st.index < entries.length; st.index += 1) {
      const e = entries[st.index] as SparseEntry;
      this.#hole(e.offset - st.pos);
      st.pos = e.offset;
      if (e.length > 0) {
        st.left = e.length;
        return;
      }
    }
    this.#hole(st.size - st.pos);
    st.pos = st.size;
    this.#sink.end();
    if (st.pad === 0) this.#state = { kind: 'header' };
  }

  #hole(n: number): void {
    if (n <= 0) return;
    if (this.#sink.skip !== undefined) return this.#sink.skip(n);
    for (let left = n; left > 0; left -= ZEROS.length) this.#sink.data(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
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
