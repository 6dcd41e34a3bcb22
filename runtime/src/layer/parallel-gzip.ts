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
   * data) instead of compressing them: same output format, skips work that buys nothing. Default true.
   */
  readonly storeIncompressible?: boolean;
}

// Runs in each worker (eval'd source, so it works from both the TS sources and dist).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
parentPort.on('message', (m) => {
  const buf = Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength);
  let out;
  if (m.probe > 0 && buf.length > m.probe * 2) {
    const sample = zlib.deflateRawSync(buf.subarray(0, m.probe), { level: m.level });
    if (sample.length > m.probe * 0.98) out = zlib.gzipSync(buf, { level: 0 });
  }
  if (out === undefined) out = zlib.gzipSync(buf, { level: m.level });
  const whole = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
  parentPort.postMessage({ id: m.id, out }, whole ? [out.buffer] : []);
});
`;

const PROBE = 64 * 1024;

interface Job {
  readonly id: number;
  readonly buf: Uint8Array;
}

/**
 * A gzip compressor that deflates independent blocks on worker threads, like pigz without the
 * shared dictionary: the output is a series of gzip members, which every gzip reader (Go's
 * `compress/gzip`, `gzip -d`, zlib) reads as one stream. Members are emitted in input order.
 * Workers start only once a second block exists, so small layers cost no thread start-up.
 */
export class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #blockSize: number;
  readonly #nWorkers: number;
  readonly #probe: number;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #nextId = 0;
  #nextOut = 0;
  #done = new Map<number, Buffer>();
  #queue: Job[] = [];
  #idle: Worker[] = [];
  #workers: Worker[] = [];
  #inflight = 0;
  #waiter: (() => void) | undefined;
  #failed: Error | undefined;

  constructor(opts: ParallelGzipOptions = {}) {
    super();
    this.#level = opts.level ?? 1;
    this.#blockSize = opts.blockSize ?? 1 << 20;
    this.#nWorkers = Math.max(1, opts.workers ?? availableParallelism());
    this.#probe = opts.storeIncompressible === false ? 0 : PROBE;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#pending.push(chunk);
    this.#pendingLen += chunk.length;
    if (this.#pendingLen < this.#blockSize) {
      cb();
      return;
    }
    const all = Buffer.concat(this.#pending, this.#pendingLen);
    this.#pending = [];
    this.#pendingLen = 0;
    let off = 0;
    while (all.length - off >= this.#blockSize) {
      this.#submit(all.subarray(off, off + this.#blockSize));
      off += this.#blockSize;
    }
    if (off < all.length) {
      this.#pending.push(Buffer.from(all.subarray(off)));
      this.#pendingLen = all.length - off;
    }
    this.#whenBelow(this.#nWorkers * 2).then(() => cb(this.#failed), cb);
  }

  override _flush(cb: TransformCallback): void {
    const finish = (): void => {
      void this.#stopWorkers();
      cb(this.#failed);
    };
    if (this.#pendingLen > 0 || this.#nextId === 0) {
      const last = Buffer.concat(this.#pending, this.#pendingLen);
      this.#pending = [];
      if (this.#nextId === 0) {
        // One block in total: compress inline.
        this.push(gzipSync(last, { level: this.#level }));
        finish();
        return;
      }
      this.#submit(last);
    }
    this.#whenBelow(1).then(finish, cb);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    void this.#stopWorkers();
    cb(err);
  }

  #submit(block: Uint8Array): void {
    // A private copy we can transfer to the worker.
    const copy = new Uint8Array(block.length);
    copy.set(block);
    this.#queue.push({ id: this.#nextId++, buf: copy });
    this.#inflight += 1;
    this.#pump();
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let w = this.#idle.pop();
      if (w === undefined && this.#workers.length < this.#nWorkers && this.#nextId > 1) w = this.#spawn();
      if (w === undefined) {
        if (this.#workers.length === 0) {
          // The very first block is compressed inline: a one-block layer never pays for a thread start.
          const job = this.#queue.shift() as Job;
          this.#complete(job.id, gzipSync(job.buf, { level: this.#level }));
          continue;
        }
        return;
      }
      const job = this.#queue.shift() as Job;
      w.postMessage({ id: job.id, buf: job.buf, level: this.#level, probe: this.#probe }, [job.buf.buffer as ArrayBuffer]);
    }
  }

  #spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: { id: number; out: Uint8Array }) => {
      this.#idle.push(w);
      this.#complete(m.id, Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength));
      this.#pump();
    });
    w.on('error', (e) => {
      this.#failed = e;
      this.#wake();
    });
    this.#workers.push(w);
    return w;
  }

  #complete(id: number, out: Buffer): void {
    this.#done.set(id, out);
    this.#inflight -= 1;
    while (this.#done.has(this.#nextOut)) {
      this.push(this.#done.get(this.#nextOut));
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
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
