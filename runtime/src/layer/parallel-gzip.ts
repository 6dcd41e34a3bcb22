import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';

/** Options for {@link ParallelGzip}. */
export interface ParallelGzipOptions {
  /** zlib level, default 1 (as `gzip -1`). */
  readonly level?: number;
  /** Uncompressed bytes per gzip member, default 1 MiB. */
  readonly blockSize?: number;
  /** Worker threads, default `availableParallelism()`. */
  readonly workers?: number;
  /**
   * Store blocks whose first 64 KiB do not shrink by 2% at `level` (already-compressed or random
   * data) instead of deflating them: same format, skips work that buys nothing. Default true.
   */
  readonly storeIncompressible?: boolean;
}

// Runs in each worker (eval'd source, so it works from both the TS sources and dist).
// Gets {id, buf, len}; answers {id, out, buf} and hands the input buffer back for reuse.
// Runs in each worker (eval'd source, so it works from both the TS sources and dist).
// Gets {id, buf, len, level, probe}; answers {id, out, buf} with the deflated member, or
// {id, stored: true, crc, buf} when the block does not compress (the main thread frames it from
// its own copy). The input buffer is handed back for reuse either way.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
parentPort.on('message', (m) => {
  const data = m.buf.subarray(0, m.len);
  if (m.probe > 0 && m.len > m.probe && typeof zlib.crc32 === 'function') {
    const sample = zlib.deflateRawSync(data.subarray(0, m.probe), { level: m.level });
    if (sample.length > m.probe * 0.98) {
      parentPort.postMessage({ id: m.id, stored: true, crc: zlib.crc32(data), buf: m.buf }, [m.buf.buffer]);
      return;
    }
  }
  const out = zlib.gzipSync(data, { level: m.level });
  const whole = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
  parentPort.postMessage({ id: m.id, out, buf: m.buf }, whole ? [out.buffer, m.buf.buffer] : [m.buf.buffer]);
});
`;

const PROBE = 64 * 1024;
const STORED_MAX = 65535;

interface Job {
  readonly id: number;
  readonly buf: Uint8Array;
  readonly len: number;
  /** The block as it arrived, kept to frame a stored member without another copy. */
  readonly parts: readonly Buffer[];
}

/**
 * A gzip compressor that deflates independent blocks on worker threads, like pigz without the
 * shared dictionary: the output is a series of gzip members, which every gzip reader (Go's
 * `compress/gzip`, `gzip -d`, zlib) reads as one stream. Members are emitted in input order and
 * the bytes do not depend on the number of workers. Workers also detect incompressible blocks
 * (and CRC them); those are framed as stored deflate blocks from the main thread's own chunks.
 * Block buffers are pooled: fresh memory costs page faults, which are slow in VMs.
 */
export class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #blockSize: number;
  readonly #nWorkers: number;
  readonly #probe: boolean;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #nextId = 0;
  #nextOut = 0;
  #done = new Map<number, Buffer[]>();
  #queue: Job[] = [];
  #running = new Map<number, Job>();
  #idle: Worker[] = [];
  #workers: Worker[] = [];
  #pool: Uint8Array[] = [];
  #inflight = 0;
  #waiter: (() => void) | undefined;
  #failed: Error | undefined;

  constructor(opts: ParallelGzipOptions = {}) {
    super();
    this.#level = opts.level ?? 1;
    this.#blockSize = opts.blockSize ?? 1 << 20;
    this.#nWorkers = Math.max(1, opts.workers ?? availableParallelism());
    this.#probe = opts.storeIncompressible !== false;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.#blockSize - this.#pendingLen, chunk.length - off);
      this.#pending.push(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take));
      this.#pendingLen += take;
      off += take;
      if (this.#pendingLen === this.#blockSize) this.#block();
    }
    if (this.#inflight < this.#nWorkers * 2) cb(this.#failed);
    else this.#whenBelow(this.#nWorkers * 2).then(() => cb(this.#failed), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#pendingLen > 0 || this.#nextId === 0) this.#block();
    this.#whenBelow(1).then(() => {
      void this.#stopWorkers();
      cb(this.#failed);
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    void this.#stopWorkers();
    cb(err);
  }

  #block(): void {
    const parts = this.#pending;
    const len = this.#pendingLen;
    this.#pending = [];
    this.#pendingLen = 0;
    const id = this.#nextId++;
    this.#inflight += 1;
    if (this.#nextId === 1 && len < this.#blockSize) {
      // A layer smaller than one block: compress inline, never start a thread.
      this.#complete(id, [gzipSync(Buffer.concat(parts, len), { level: this.#level })]);
      return;
    }
    const buf = this.#pool.pop() ?? new Uint8Array(this.#blockSize);
    let o = 0;
    for (const p of parts) {
      buf.set(p, o);
      o += p.length;
    }
    this.#queue.push({ id, buf, len, parts });
    this.#pump();
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let w = this.#idle.pop();
      if (w === undefined && this.#workers.length < this.#nWorkers) w = this.#spawn();
      if (w === undefined) return;
      const job = this.#queue.shift() as Job;
      this.#running.set(job.id, job);
      w.postMessage(
        { id: job.id, buf: job.buf, len: job.len, level: this.#level, probe: this.#probe ? PROBE : 0 },
        [job.buf.buffer as ArrayBuffer],
      );
    }
  }

  #spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: { id: number; buf: Uint8Array; out?: Uint8Array; stored?: boolean; crc?: number }) => {
      this.#idle.push(w);
      this.#pool.push(m.buf);
      const job = this.#running.get(m.id);
      this.#running.delete(m.id);
      if (m.stored === true && job !== undefined) this.#complete(m.id, storedMember(job.parts, job.len, m.crc ?? 0));
      else if (m.out !== undefined) this.#complete(m.id, [Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength)]);
      this.#pump();
    });
    w.on('error', (e) => {
      this.#failed = e;
      this.#wake();
    });
    this.#workers.push(w);
    return w;
  }

  #complete(id: number, out: Buffer[]): void {
    this.#done.set(id, out);
    this.#inflight -= 1;
    for (let next = this.#done.get(this.#nextOut); next !== undefined; next = this.#done.get(this.#nextOut)) {
      for (const b of next) this.push(b);
      this.#done.delete(this.#nextOut);
      this.#nextOut += 1;
    }
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async #whenBelow(n: number): Promise<void> {
    while (this.#inflight >= n && this.#failed === undefined) {
      await new Promise<void>((r) => (this.#waiter = r));
    }
  }

  async #stopWorkers(): Promise<void> {
    const ws = this.#workers;
    this.#workers = [];
    this.#idle = [];
    this.#pool = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

/** A gzip member of stored deflate blocks over `parts`, without copying them. */
function storedMember(parts: readonly Buffer[], len: number, crc: number): Buffer[] {
  const out: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])];
  const pieces: Buffer[] = [];
  for (const p of parts) for (let o = 0; o < p.length; o += STORED_MAX) pieces.push(p.subarray(o, o + STORED_MAX));
  pieces.forEach((piece, i) => {
    const h = Buffer.allocUnsafe(5);
    h[0] = i === pieces.length - 1 ? 1 : 0;
    h.writeUInt16LE(piece.length, 1);
    h.writeUInt16LE(~piece.length & 0xffff, 3);
    out.push(h, piece);
  });
  const trailer = Buffer.allocUnsafe(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(len >>> 0, 4);
  out.push(trailer);
  return out;
}
