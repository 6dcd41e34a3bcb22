import { WorkerError } from '../api/errors.js';

// PAX extended header records and GNU sparse maps, read as Go's archive/tar reads them
// (reader.go, strconv.go), for the layer TarReader.

/** Longest GNU long name, PAX record block or sparse map accepted (tar-stream's limit). */
export const MAX_META = 1 << 20;

/** One data fragment of a sparse file: `length` bytes at `offset` of the file. */
export interface SparseEntry {
  readonly offset: number;
  readonly length: number;
}

/** A `LAYER_INVALID` error for a malformed archive. */
export function invalid(msg: string): WorkerError {
  return new WorkerError('LAYER_INVALID', `invalid tar stream: ${msg}`);
}

/**
 * The GNU sparse PAX headers of an entry, read as Go's readGNUSparsePAXHeaders: version 0.0/0.1
 * (map in the records) or 1.0 (map at the start of the data, `entries` undefined); the real name
 * and logical size. Undefined for a plain file. Unknown versions fail rather than being written
 * as their raw data section.
 */
export function sparseOf(
  text: ReadonlyMap<string, string>,
  name: string,
  get: (k: string) => string | undefined,
): { readonly name: string; readonly size: number; readonly entries: SparseEntry[] | undefined } | undefined {
  const major = text.get('GNU.sparse.major') ?? '';
  const minor = text.get('GNU.sparse.minor') ?? '';
  let v1: boolean;
  if (major === '0' && (minor === '0' || minor === '1')) v1 = false;
  else if (major === '1' && minor === '0') v1 = true;
  else if (major !== '' || minor !== '') throw sparseError(get('GNU.sparse.name') ?? name, `PAX version ${major}.${minor}`);
  else if ((text.get('GNU.sparse.map') ?? '') !== '') v1 = false;
  else return undefined;
  const real = get('GNU.sparse.name') ?? name;
  const sizeText = get('GNU.sparse.size') ?? get('GNU.sparse.realsize');
  const size = sizeText === undefined ? undefined : parseDecimal(sizeText);
  if (size === undefined || size < 0) throw invalid(`bad GNU sparse size for ${JSON.stringify(real)}`);
  if (v1) return { name: real, size, entries: undefined };
  const count = parseDecimal(text.get('GNU.sparse.numblocks') ?? '');
  const fields = (text.get('GNU.sparse.map') ?? '').split(',').filter((f, i, all) => !(all.length === 1 && f === ''));
  if (count === undefined || count < 0 || fields.length !== 2 * count) throw invalid(`bad GNU sparse map for ${JSON.stringify(real)}`);
  return { name: real, size, entries: pairs(fields, real) };
}

/** Lines a 1.0 map has (its count line, then two per entry), from `buf` holding at least its first line. */
export function sparseMap1x0Lines(buf: Buffer, name: string): number {
  const nl = buf.indexOf(0x0a);
  const count = nl < 0 ? undefined : parseDecimal(buf.toString('latin1', 0, nl));
  if (count === undefined || count < 0) throw invalid(`bad GNU sparse map for ${JSON.stringify(name)}`);
  return 1 + 2 * count;
}

/** A 1.0 map (`count\n` then `offset\nlength\n` pairs) once `buf` holds all its lines, else undefined. */
export function parseSparseMap1x0(buf: Buffer, name: string): SparseEntry[] | undefined {
  const lines = buf.toString('latin1').split('\n');
  if (lines.length < 2) return undefined;
  const count = parseDecimal(lines[0] as string);
  if (count === undefined || count < 0) throw invalid(`bad GNU sparse map for ${JSON.stringify(name)}`);
  // Complete lines are all but the last piece.
  if (lines.length - 1 < 1 + 2 * count) return undefined;
  return pairs(lines.slice(1, 1 + 2 * count), name);
}

function pairs(fields: readonly string[], name: string): SparseEntry[] {
  const out: SparseEntry[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const offset = parseDecimal(fields[i] as string);
    const length = parseDecimal(fields[i + 1] as string);
    if (offset === undefined || length === undefined) throw invalid(`bad GNU sparse map for ${JSON.stringify(name)}`);
    out.push({ offset, length });
  }
  return out;
}

/** Entries that cannot be unpacked correctly are refused rather than written wrong. */
export function sparseError(name: string, kind: string): WorkerError {
  return new WorkerError('LAYER_UNSUPPORTED', `layer entry ${JSON.stringify(name)} is a GNU sparse file (${kind}), which kiln cannot unpack`, {
    hint: 'rebuild the layer without sparse files, or with PAX sparse format 0.0, 0.1 or 1.0',
  });
}

/** PAX records of one extended header: text values, and `SCHILY.xattr.*` values as bytes. */
export interface PaxRecords {
  readonly text: Map<string, string>;
  readonly xattrs: Map<string, Buffer>;
}

const XATTR_PREFIX = 'SCHILY.xattr.';

/** Go's strconv.ParseInt(s, 10, 64): an optional sign and decimal digits, nothing else. */
export function parseDecimal(s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Go's archive/tar parsePAXTime: seconds, then optionally `.` and digits (nanoseconds, cut at 9
 * digits); the fraction takes the sign of the seconds (`-1.5` is 1.5 s before the epoch).
 */
export function parsePaxTime(s: string): number | undefined {
  const dot = s.indexOf('.');
  const ss = dot < 0 ? s : s.slice(0, dot);
  const sn = dot < 0 ? '' : s.slice(dot + 1);
  const secs = parseDecimal(ss);
  if (secs === undefined) return undefined;
  if (sn === '') return secs;
  if (!/^[0-9]+$/.test(sn)) return undefined;
  const frac = Number(sn.slice(0, 9).padEnd(9, '0')) / 1e9;
  return ss.startsWith('-') ? secs - frac : secs + frac;
}

/**
 * PAX records `"<len> <key>=<value>\n"`, parsed as Go's archive/tar parsePAXRecord: a decimal
 * length of at least 5 that ends exactly at a newline, a key with `=`, no NUL in a path or name
 * value nor in other keys; anything else fails the layer. Later records win.
 */
export function parsePax(buf: Buffer): PaxRecords {
  const text = new Map<string, string>();
  const xattrs = new Map<string, Buffer>();
  const sparseMap: string[] = [];
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) throw invalid('bad PAX record');
    const len = parseDecimal(buf.toString('latin1', off, sp));
    if (len === undefined || len < 5 || off + len > buf.length || off + len <= sp + 1 || buf[off + len - 1] !== 0x0a) throw invalid('bad PAX record');
    const rec = buf.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalid('bad PAX record');
    const key = rec.toString('utf8', 0, eq);
    const value = rec.subarray(eq + 1);
    const nulInValue = key === 'path' || key === 'linkpath' || key === 'uname' || key === 'gname';
    if ((nulInValue ? value : rec.subarray(0, eq)).includes(0)) throw invalid(`bad PAX record ${JSON.stringify(key)}`);
    if (key.startsWith(XATTR_PREFIX)) xattrs.set(key.slice(XATTR_PREFIX.length), Buffer.from(value));
    else if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      // GNU sparse 0.0 repeats these two in pairs; Go joins them into GNU.sparse.map (0.1's form).
      const v = value.toString('utf8');
      if ((sparseMap.length % 2 === 0) !== (key === 'GNU.sparse.offset') || v.includes(',')) throw invalid('bad GNU sparse 0.0 map record order');
      sparseMap.push(v);
    } else text.set(key, value.toString('utf8'));
    off += len;
  }
  if (sparseMap.length > 0) text.set('GNU.sparse.map', sparseMap.join(','));
  return { text, xattrs };
}
