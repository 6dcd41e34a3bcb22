import { gzip, gzipSync } from 'node:zlib';
import { RawJsonRenderer, type ProgressEvent } from '@kiln/solver';

/** The default cap of a stored log: 4 MiB on disk. */
export const DEFAULT_LOG_LIMIT = 4 * 1024 * 1024;

/** Raw bytes compressed as one gzip member (at most; less under a small cap). */
const SEGMENT = 256 * 1024;

/**
 * The last segment is compressed on the event loop below this size: a few lines of a cached
 * build take microseconds, less than a round trip through libuv's thread pool.
 */
const SYNC_BELOW = 16 * 1024;

/** What gzip may add to a member beyond its input: header, trailer, stored-block headers. */
const memberOverhead = (raw: number): number => 32 + 5 * Math.ceil(raw / 16_384);

/**
 * A build's progress as `--progress=rawjson` prints it, gzip-compressed in memory while the build
 * runs, capped at `limit` bytes on disk. The lines are compressed in segments, each a gzip member
 * of its own (a gzip file may hold several; gunzip reads them as one stream), on libuv's threads,
 * not the event loop. A member's size is exact once compressed, and counted as its raw size until
 * then, so the cap holds however fast the build prints. Members compressing at once are held to a
 * quarter of the cap (counted raw): past that, as when a step prints faster than the threads
 * compress (a burst of output in one tick, where no compressed size could come back), a segment
 * is compressed on the event loop, so the room is measured in compressed bytes, not raw ones (a
 * log that fits compressed is kept whole). Near the cap, step output (`logs`, `statuses`) is
 * dropped and the log says it was truncated; step starts, ends and errors are kept in the room
 * left for them.
 */
export class LogEncoder {
  readonly #limit: number;
  /** Room kept for step starts and ends once the output is cut (a noisy RUN must not hide that it ended). */
  readonly #reserve: number;
  readonly #segment: number;
  /** Raw bytes (with overhead) that may be compressing on libuv's threads at once. */
  readonly #inFlightMax: number;
  readonly #renderer: RawJsonRenderer;
  readonly #members: Promise<Buffer>[] = [];
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes of the members compressed so far. */
  #compressed = 0;
  /** Members being compressed, counted as if incompressible. */
  #inFlight = 0;
  #failure: unknown;
  #truncated = false;
  #ended = false;
  /** Whether the line being written is step output (dropped first). */
  #output = false;

  constructor(limit = DEFAULT_LOG_LIMIT) {
    this.#limit = limit;
    this.#reserve = Math.max(512, Math.floor(limit / 16));
    this.#segment = Math.min(SEGMENT, Math.max(1024, Math.floor(limit / 8)));
    this.#inFlightMax = Math.floor(limit / 4);
    this.#renderer = new RawJsonRenderer({ write: (s) => this.#write(s) });
  }

  /** Adds one event; never throws. */
  handle(ev: ProgressEvent): void {
    if (this.#ended) return;
    this.#output = ev.kind === 'log' || ev.kind === 'status';
    if (this.#truncated && this.#output) return;
    try {
      this.#renderer.handle(ev);
    } catch {
      // A log that cannot be kept must not fail the build.
    }
  }

  #write(s: string | Uint8Array): void {
    const bytes = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
    const room = this.#limit - (this.#output ? this.#reserve : 0);
    if (!this.#fits(bytes.length, room)) {
      // The pending lines count at their raw size: compressed, they may leave room.
      if (this.#pendingBytes > 0) this.#compress(true);
      if (!this.#fits(bytes.length, room)) {
        this.#truncated = true;
        return;
      }
    }
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    if (this.#pendingBytes >= this.#segment) this.#compress(false);
  }

  /** Whether `n` more bytes keep the log within `room`: compressed members exactly, the others as if incompressible. */
  #fits(n: number, room: number): boolean {
    return this.#compressed + this.#inFlight + this.#pendingBytes + n + memberOverhead(this.#pendingBytes + n) <= room;
  }

  /** Compresses the pending lines as one member: on libuv's threads, or here (`now`, too much in flight, a small last one). */
  #compress(now: boolean): void {
    if (this.#pendingBytes === 0) return;
    const raw = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    const estimate = raw.length + memberOverhead(raw.length);
    if (now || this.#inFlight + estimate > this.#inFlightMax || (this.#ended && raw.length < SYNC_BELOW)) {
      try {
        const out = gzipSync(raw);
        this.#compressed += out.length;
        this.#members.push(Promise.resolve(out));
      } catch (e) {
        this.#failure ??= e;
      }
      return;
    }
    this.#inFlight += estimate;
    const member = new Promise<Buffer>((resolve, reject) => gzip(raw, (e, out) => (e === null ? resolve(out) : reject(e))));
    // Handled here and in finish(): a failed member never becomes an unhandled rejection.
    member.then(
      (out) => {
        this.#inFlight -= estimate;
        this.#compressed += out.length;
      },
      (e: unknown) => {
        this.#inFlight -= estimate;
        this.#failure ??= e;
      },
    );
    this.#members.push(member);
  }

  /** Ends the log: the gzip bytes (undefined when no event came) and whether output was cut. */
  async finish(): Promise<{ bytes: Buffer; truncated: boolean } | undefined> {
    if (this.#ended) return undefined;
    this.#ended = true;
    this.#compress(false);
    const members = await Promise.allSettled(this.#members);
    if (this.#failure !== undefined) throw this.#failure;
    if (members.length === 0) return undefined;
    return { bytes: Buffer.concat(members.map((m) => (m.status === 'fulfilled' ? m.value : Buffer.alloc(0)))), truncated: this.#truncated };
  }

  /** The cap this log was written under. */
  get limit(): number {
    return this.#limit;
  }
}
