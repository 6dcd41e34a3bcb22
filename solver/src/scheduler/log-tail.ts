const NEWLINE = 0x0a;

/**
 * The last lines of a step's real output (before the step log limit clips it), for the error of a
 * failed step. Output is kept as the chunks it came in, decoded only when asked for: a step that
 * prints 500 MB costs a newline count per chunk, not a string per line, and memory stays bounded
 * (`maxBytes` and one chunk), a line without newlines included.
 */
export class LogTail {
  readonly #lines: number;
  readonly #maxBytes: number;
  /** Chunks kept from {@link #head} on (a queue whose front is cut off now and then). */
  readonly #chunks: Array<Uint8Array | undefined> = [];
  /** Newlines in each chunk of {@link #chunks}, counted up to one more than {@link #lines}. */
  readonly #newlines: number[] = [];
  #head = 0;
  #totalNewlines = 0;
  #bytes = 0;

  /** Keeps the last `lines` lines, at most the last `maxBytes` bytes of them. */
  constructor(lines: number, maxBytes = 64 * 1024) {
    this.#lines = lines;
    this.#maxBytes = maxBytes;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    // Buffer's indexOf (memchr) is several times faster than Uint8Array's.
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    // Counted from the end, and no further than one more than the lines kept: a chunk with that
    // many lets every older one go whatever its count, so a read of 15,000 lines costs 21 searches.
    let n = 0;
    for (let i = buf.lastIndexOf(NEWLINE); i >= 0 && n <= this.#lines; i = i > 0 ? buf.lastIndexOf(NEWLINE, i - 1) : -1) n++;
    this.#chunks.push(data);
    this.#newlines.push(n);
    this.#totalNewlines += n;
    this.#bytes += data.length;
    // The oldest chunk goes while the others still hold the last lines (one newline more: the
    // first line after it may be its end) or the bytes kept anyway.
    while (this.#chunks.length - this.#head > 1) {
      const first = this.#chunks[this.#head]?.length ?? 0;
      const firstNewlines = this.#newlines[this.#head] ?? 0;
      if (this.#totalNewlines - firstNewlines <= this.#lines && this.#bytes - first < this.#maxBytes) break;
      this.#chunks[this.#head++] = undefined;
      this.#totalNewlines -= firstNewlines;
      this.#bytes -= first;
    }
    if (this.#head >= 64) {
      this.#chunks.splice(0, this.#head);
      this.#newlines.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** The last lines (an unterminated last one too), without their newlines, read as UTF-8. */
  lines(): string[] {
    const kept = this.#chunks.slice(this.#head).filter((c): c is Uint8Array => c !== undefined);
    if (this.#lines <= 0 || kept.length === 0) return [];
    const all = Buffer.concat(kept);
    // A longer line is shown by its end, which says why a step failed more often than its start.
    const text = all.subarray(Math.max(0, all.length - this.#maxBytes)).toString('utf8');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-this.#lines);
  }
}
