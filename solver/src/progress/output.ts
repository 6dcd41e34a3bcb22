/** Where a renderer writes: a stream-like text sink, optionally a terminal with a width. */
export interface ProgressOutput {
  /** Text, or bytes of a log line passed through as the process wrote them. */
  write(chunk: string | Uint8Array): void;
  /** Terminal width in columns, when known (a TTY). */
  readonly columns?: number | undefined;
  /** Terminal height in rows, when known (a TTY). */
  readonly rows?: number | undefined;
  /** True for a terminal. */
  readonly isTTY?: boolean | undefined;
}

/** A renderer consumes events one by one and prints them; `finish` flushes the final state. */
export interface ProgressRenderer {
  handle(event: import('./events.js').ProgressEvent): void;
  finish(): void;
}

/** Formats a byte count the way BuildKit's progress UI does (`1.23MB`, `512B`). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  if (u === 0) return `${v}B`;
  return `${Number(v.toFixed(2))}${units[u] ?? ''}`;
}

/** Formats a duration in ms as seconds with one decimal (`0.3s`). */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}
