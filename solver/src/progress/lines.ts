/**
 * Cuts a byte stream of log output into lines, on bytes: output in any encoding passes through
 * unchanged, and a UTF-8 character split across two writes stays whole (a newline byte never
 * occurs inside one). Lines are returned without their newline.
 */
export class LineBuffer {
  #partial: Buffer | undefined;

  /** The lines `data` completes. */
  push(data: Uint8Array): Buffer[] {
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      lines.push(this.#partial === undefined ? piece : Buffer.concat([this.#partial, piece]));
      this.#partial = undefined;
      start = nl + 1;
    }
    if (start < chunk.length) {
      // Copied: the caller may reuse its buffer.
      const rest = Buffer.from(chunk.subarray(start));
      this.#partial = this.#partial === undefined ? rest : Buffer.concat([this.#partial, rest]);
    }
    return lines;
  }

  /** The unterminated rest, if any, which the buffer then forgets. */
  take(): Buffer | undefined {
    const p = this.#partial;
    this.#partial = undefined;
    return p;
  }

  get empty(): boolean {
    return this.#partial === undefined;
  }
}

/** `\r` at the end of a line (CRLF output) is not shown. */
export function withoutCarriageReturn(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}
