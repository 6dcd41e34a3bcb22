/**
 * BuildKit's step log limits (util/progress/logs/logs.go): a step's output reaches the progress
 * stream (the terminal, daemon clients, build history) only up to a size and a speed, so a RUN
 * that prints 500 MB (`cat /dev/urandom | base64`) cannot flood them or the memory that keeps
 * the stream. Each of a step's streams (stdout, stderr) is counted on its own, in bytes as the
 * process wrote them, from the step's start.
 */

/** The limits, in bytes and bytes per second; -1 turns one off. */
export interface StepLogLimits {
  /** Bytes of a stream shown (`BUILDKIT_STEP_LOG_MAX_SIZE`). */
  readonly maxSize: number;
  /** Bytes a second of a stream shown, averaged from the step's start (`BUILDKIT_STEP_LOG_MAX_SPEED`). */
  readonly maxSpeed: number;
}

/** BuildKit's defaults: 2 MiB, 200 KiB/s. */
export const DEFAULT_STEP_LOG_LIMITS: StepLogLimits = { maxSize: 2 * 1024 * 1024, maxSpeed: 200 * 1024 };

const INT32 = /^[+-]?[0-9]+$/;

/**
 * Go's `strconv.ParseInt(s, 10, 32)`, which BuildKit reads the variables with; undefined where
 * it fails. A bad value is ignored, as BuildKit ignores it (the default stays): a setting a
 * buildkitd accepts never stops kiln, and a daemon's variables are not the client's to fix.
 */
function parseInt32(s: string | undefined): number | undefined {
  if (s === undefined || !INT32.test(s)) return undefined;
  const n = Number(s);
  return n >= -(2 ** 31) && n <= 2 ** 31 - 1 ? n : undefined;
}

/** The limits the process that runs the builds was given (`kiln build` in-process, or `kiln daemon`). */
export function stepLogLimitsFromEnv(env: Readonly<Record<string, string | undefined>>): StepLogLimits {
  return {
    maxSize: parseInt32(env['BUILDKIT_STEP_LOG_MAX_SIZE']) ?? DEFAULT_STEP_LOG_LIMITS.maxSize,
    maxSpeed: parseInt32(env['BUILDKIT_STEP_LOG_MAX_SPEED']) ?? DEFAULT_STEP_LOG_LIMITS.maxSpeed,
  };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** A byte count as BuildKit's `%#g` of units.Bytes prints it: `2MiB`, `200KiB`, `1.5KiB`, `1000B`. */
export function formatLimit(bytes: number): string {
  let unit = 0;
  let base = 1;
  while (unit < UNITS.length - 1 && Math.abs(bytes) >= base * 1024) {
    base *= 1024;
    unit++;
  }
  return `${unit === 0 ? bytes : bytes / base}${UNITS[unit] ?? 'B'}`;
}

const NEWLINE = 0x0a;

/** The line that replaces clipped output; the leading newline ends a line the clip cut. */
function clipMessage(limit: string): Uint8Array {
  return Buffer.from(`\n[output clipped, log limit ${limit} reached]\n`);
}

/** How much of a clipped stream is kept for a failure: BuildKit's circular buffer (256 KiB). */
export const CLIPPED_TAIL_BYTES = 256 * 1024;

/** The last `size` bytes written (circbuf.Buffer): one fixed buffer, the writes copied in. */
class ByteRing {
  readonly #buf: Buffer;
  #pos = 0;
  #full = false;

  constructor(size: number) {
    this.#buf = Buffer.alloc(size);
  }

  write(data: Uint8Array): void {
    const size = this.#buf.length;
    if (data.length >= size) {
      this.#buf.set(data.subarray(data.length - size));
      this.#pos = 0;
      this.#full = true;
      return;
    }
    // Copied (not kept by reference: many small writes would hold on to the buffers they are cut
    // from); a write that fits goes in whole, without the views a wrap needs (3x faster per line).
    const room = size - this.#pos;
    if (data.length <= room) this.#buf.set(data, this.#pos);
    else {
      this.#buf.set(data.subarray(0, room), this.#pos);
      this.#buf.set(data.subarray(room), 0);
    }
    if (this.#pos + data.length >= size) this.#full = true;
    this.#pos = (this.#pos + data.length) % size;
  }

  bytes(): Buffer {
    return this.#full ? Buffer.concat([this.#buf.subarray(this.#pos), this.#buf.subarray(0, this.#pos)]) : Buffer.from(this.#buf.subarray(0, this.#pos));
  }
}

interface StreamCount {
  /** Bytes written so far, shown or not (BuildKit counts the dropped ones too). */
  size: number;
  /** The last write was clipped: the message has been shown for this stretch. */
  clipping: boolean;
  /** Everything written from the first clipped write on (its last 256 KiB), for {@link StepLogLimiter.flush}. */
  kept: ByteRing | undefined;
}

/**
 * The limits applied to one run of a step (one limiter per run, made when it starts). The hot
 * path allocates nothing: output within the limits is returned as it came.
 */
export class StepLogLimiter {
  readonly #limits: StepLogLimits;
  readonly #started: number;
  readonly #streams: [StreamCount, StreamCount] = [
    { size: 0, clipping: false, kept: undefined },
    { size: 0, clipping: false, kept: undefined },
  ];
  #sizeMessage: Uint8Array | undefined;
  #speedMessage: Uint8Array | undefined;
  /** The limit that applied to the last write is the speed limit (which message to show). */
  #bySpeed = false;

  /** `started`: when the run began, in ms (the speed allowance grows from there). */
  constructor(limits: StepLogLimits, started: number) {
    this.#limits = limits;
    this.#started = started;
  }

  /**
   * What of `data`, written to `stream` (1 stdout, 2 stderr) at `now` ms, is shown: all of it,
   * its head followed by the clip message when it crosses a limit, or undefined when nothing is
   * (the stream is being clipped). As BuildKit's streamWriter.Write: the message comes once per
   * stretch of clipped writes; past the size limit, that is once for good, while under the speed
   * limit output shows again once the allowance has caught up with every byte written.
   */
  clip(stream: 1 | 2, data: Uint8Array, now: number): Uint8Array | undefined {
    const s = this.#streams[stream - 1];
    if (s === undefined) return data;
    const n = data.length;
    const keep = this.#allowed(s, n, now);
    // From the first clipped write on, the whole of each write is kept too (BuildKit's buffer).
    if (s.kept === undefined && keep < n) s.kept = new ByteRing(CLIPPED_TAIL_BYTES);
    s.kept?.write(data);
    if (keep === n) {
      s.clipping = false;
      return n === 0 ? undefined : data;
    }
    if (s.clipping) return keep === 0 ? undefined : data.subarray(0, keep);
    s.clipping = true;
    const message = this.#bySpeed ? (this.#speedMessage ??= clipMessage(`${formatLimit(this.#limits.maxSpeed)}/s`)) : (this.#sizeMessage ??= clipMessage(formatLimit(this.#limits.maxSize)));
    return keep === 0 ? message : Buffer.concat([data.subarray(0, keep), message]);
  }

  /**
   * {@link StepLogLimiter.clip} for each line of `data` (lines as a process wrote them, the last
   * one maybe without its newline), in order: `show` gets what of each line is shown, so each is
   * a progress event of its own, as if the lines had come one by one. Once nothing more of the
   * stream can be shown (it is being clipped and the allowance has not caught up), all of `data`
   * is counted and kept at once, which comes to the same: a RUN printing 200 MB (3 million lines)
   * is cut into lines only as far as its log shows it.
   */
  clipLines(stream: 1 | 2, data: Uint8Array, now: number, show: (shown: Uint8Array) => void): void {
    const s = this.#streams[stream - 1];
    // Buffer's indexOf (memchr) is several times faster than Uint8Array's.
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let start = 0;
    do {
      // The rest at once once nothing of it would show.
      const all = s !== undefined && s.clipping && !this.#room(s, now);
      const nl = all ? -1 : buf.indexOf(NEWLINE, start);
      const end = nl < 0 ? buf.length : nl + 1;
      const shown = this.clip(stream, buf.subarray(start, end), now);
      if (shown !== undefined) show(shown);
      start = end;
    } while (start < buf.length);
  }

  /**
   * For a run that failed, BuildKit's flushBuffer: the last 256 KiB each clipped stream was
   * written from its first clip on (stdout, then stderr), shown after the clip line as they are,
   * so the progress (terminal, history, daemon clients) ends with why the step failed. Once.
   */
  flush(): Array<{ readonly stream: 1 | 2; readonly data: Uint8Array }> {
    const out: Array<{ stream: 1 | 2; data: Uint8Array }> = [];
    for (const [i, s] of this.#streams.entries()) {
      const data = s.kept?.bytes();
      s.kept = undefined;
      if (data !== undefined && data.length > 0) out.push({ stream: i === 0 ? 1 : 2, data });
    }
    return out;
  }

  /**
   * BuildKit's checkLimit: how many of `n` more bytes of stream `s` are shown; sets
   * {@link #bySpeed} to whether the speed limit is the one that applies.
   */
  #allowed(s: StreamCount, n: number, now: number): number {
    const old = s.size;
    s.size += n;
    const max = this.#max(now);
    if (max === -1) return n;
    if (max < old) return 0;
    return s.size > max ? max - old : n;
  }

  /** Whether a byte more of stream `s` written at `now` would be shown. */
  #room(s: StreamCount, now: number): boolean {
    const max = this.#max(now);
    return max === -1 || max > s.size;
  }

  /**
   * How many bytes of a stream may have been shown by `now` (-1: no limit); sets
   * {@link #bySpeed} to whether the speed limit is the one that applies.
   */
  #max(now: number): number {
    const { maxSize, maxSpeed } = this.#limits;
    let max = -1;
    this.#bySpeed = false;
    if (maxSpeed !== -1) {
      // Whole seconds begun since the start: the first second's allowance at once. (BuildKit's
      // clock has nanoseconds; at kiln's milliseconds a first write in the start's millisecond
      // would otherwise get none.)
      max = Math.max(1, Math.ceil((now - this.#started) / 1000)) * maxSpeed;
      this.#bySpeed = true;
    }
    // As BuildKit: the size limit caps the speed allowance, so a size limit of -1 lifts both.
    if (max === -1 || max > maxSize) {
      max = maxSize;
      this.#bySpeed = false;
    }
    return max;
  }
}
