/**
 * A small forward protobuf writer tuned for LLB: one growable buffer, nested messages
 * written in place with a one-byte length placeholder that is widened (by shifting
 * the body) only when a body reaches 128 bytes. This keeps encoding allocation-light
 * (one buffer per message), which matters for the digest-heavy solver paths.
 */
/** Node's native UTF-8 writer on Buffer (undocumented on the type; present since Node 0.x). */
interface FastBuffer extends Uint8Array {
  utf8Write(s: string, offset: number, length?: number): number;
}

function alloc(n: number): FastBuffer {
  // allocUnsafe: no zero-fill; every byte up to `pos` is written before it is read.
  return Buffer.allocUnsafe(n) as unknown as FastBuffer;
}

export class PbWriter {
  buf: FastBuffer;
  pos = 0;

  constructor(initial = 256) {
    this.buf = alloc(initial);
  }

  /** Resets the writer for reuse (keeps the buffer). */
  reset(): void {
    this.pos = 0;
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = alloc(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  /** Writes an unsigned 32-bit varint. */
  uvarint(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 127) {
      buf[pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** Writes a 64-bit varint given as low and high 32-bit halves. */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi) {
      buf[pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      buf[pos++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  tag(field: number, wireType: number): void {
    this.uvarint((field << 3) | wireType);
  }

  /** int32/int64 given as a JS number (safe integer); negatives use 10 bytes like Go. */
  int(field: number, v: number): void {
    this.tag(field, 0);
    if (v >= 0 && v <= 0x7fffffff) {
      this.uvarint(v);
      return;
    }
    if (v >= 0) {
      this.varint64(v >>> 0, Math.floor(v / 4294967296) >>> 0);
      return;
    }
    // two's complement of |v|
    const a = -v;
    let lo = a >>> 0;
    let hi = Math.floor(a / 4294967296) >>> 0;
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    this.varint64(lo, hi);
  }

  uint32(field: number, v: number): void {
    this.tag(field, 0);
    this.uvarint(v >>> 0);
  }

  bigint64(field: number, v: bigint): void {
    this.tag(field, 0);
    const u = BigInt.asUintN(64, v);
    this.varint64(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  bool(field: number, v: boolean): void {
    this.tag(field, 0);
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  string(field: number, s: string): void {
    this.tag(field, 2);
    const n = s.length;
    if (n <= 24) {
      // Short strings: a JS loop beats the native call; bail out on the first non-ASCII.
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        buf[start + i] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    if (n <= 42) {
      // At most 126 UTF-8 bytes: the length fits one byte, so write in place.
      this.ensure(1 + n * 3);
      const written = this.buf.utf8Write(s, this.pos + 1);
      this.buf[this.pos] = written;
      this.pos += 1 + written;
      return;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.uvarint(len);
    this.ensure(len);
    this.buf.utf8Write(s, this.pos, len);
    this.pos += len;
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Starts a length-delimited field; returns a mark for {@link end}. */
  begin(field: number): number {
    this.tag(field, 2);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends a length-delimited field started at `mark`, fixing up its length prefix. */
  end(mark: number): void {
    const len = this.pos - mark - 1;
    if (len < 128) {
      this.buf[mark] = len;
      return;
    }
    let n = 1;
    for (let l = len; l > 127; l >>>= 7) n++;
    this.ensure(n - 1);
    const buf = this.buf;
    buf.copyWithin(mark + n, mark + 1, this.pos);
    this.pos += n - 1;
    let p = mark;
    let v = len;
    while (v > 127) {
      buf[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[p] = v;
  }

  /** Returns the written bytes as a plain Uint8Array view (no copy; for writers not reused). */
  view(): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos);
  }

  /** Returns a copy of the written bytes as a plain Uint8Array. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    return out;
  }
}

/** Go's sort.Strings order: byte-wise UTF-8 order, i.e. code point order. */
export function compareGoStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let ca = a.charCodeAt(i);
    let cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // UTF-16 order differs from code point order only between surrogates and U+E000..U+FFFF.
    if (ca >= 0xd800 && ca <= 0xdfff) ca += 0x2000;
    else if (ca >= 0xe000) ca -= 0x800;
    if (cb >= 0xd800 && cb <= 0xdfff) cb += 0x2000;
    else if (cb >= 0xe000) cb -= 0x800;
    return ca - cb;
  }
  return a.length - b.length;
}

/** The keys of `m` in Go's deterministic marshal order. */
export function sortedKeys(m: ReadonlyMap<string, unknown>): string[] {
  if (m.size === 1) return [m.keys().next().value as string];
  const keys = Array.from(m.keys());
  // Maps built in order or decoded from Go's sorted wire are usually sorted already.
  for (let i = 1; i < keys.length; i++) {
    if (compareGoStrings(keys[i - 1] as string, keys[i] as string) > 0) {
      if (keys.length > 16) keys.sort(compareGoStrings);
      else insertionSort(keys, i);
      break;
    }
  }
  return keys;
}

/**
 * Sorts `keys` in place in Go order, `keys[0..from)` being sorted already. For the small maps
 * of ops (caps, descriptions) this allocates nothing, where Array.prototype.sort allocates its
 * work arrays on every call (~0.9 MB over a 2,000-instruction `kiln llb`).
 */
function insertionSort(keys: string[], from: number): void {
  for (let i = from; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i;
    for (; j > 0 && compareGoStrings(keys[j - 1] as string, k) > 0; j--) keys[j] = keys[j - 1] as string;
    keys[j] = k;
  }
}
