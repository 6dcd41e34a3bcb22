import type { ProgressEvent } from './events.js';
import { LineBuffer, withoutCarriageReturn } from './lines.js';
import { formatBytes, formatSeconds, type ProgressOutput, type ProgressRenderer } from './output.js';

interface TtyVertex {
  readonly digest: string;
  readonly name: string;
  started: number;
  completed: number | undefined;
  cached: boolean;
  error: string | undefined;
  logs: string[];
  /** Log output up to its unfinished last line. */
  readonly log: LineBuffer;
  statuses: Map<string, { label: string; current: number; total: number | undefined; done: boolean }>;
}

/** Options for {@link TtyRenderer}. */
export interface TtyRendererOptions {
  /** Clock in ms (tests inject a fixed one). */
  readonly now?: () => number;
  /** Minimum ms between redraws triggered by events; 0 redraws on every event. Default 100. */
  readonly throttleMs?: number;
  /** Log lines shown under a running vertex. Default 6. */
  readonly logLines?: number;
}

const ESC = '\x1b[';

/**
 * `--progress=tty`: a live view redrawn in place with ANSI escapes, like buildx's TTY display.
 * A header `[+] Building 1.2s (3/5)`, one line per vertex (`=> [stage 2/4] RUN make   0.3s`),
 * the last log lines of running vertices, finished vertices collapsed to one line. Lines are
 * cut to the terminal width; when the view is taller than the terminal, the oldest finished
 * vertices are dropped from the live area (they stay printed above it).
 */
export class TtyRenderer implements ProgressRenderer {
  readonly #out: ProgressOutput;
  readonly #now: () => number;
  readonly #throttle: number;
  readonly #logLines: number;
  readonly #vertices = new Map<string, TtyVertex>();
  readonly #start: number;
  #lastLines = 0;
  #lastDraw = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(out: ProgressOutput, opts: TtyRendererOptions = {}) {
    this.#out = out;
    this.#now = opts.now ?? Date.now;
    this.#throttle = opts.throttleMs ?? 100;
    this.#logLines = opts.logLines ?? 6;
    this.#start = this.#now();
  }

  #vertex(digest: string, name: string | undefined, time: number): TtyVertex {
    let v = this.#vertices.get(digest);
    if (v === undefined) {
      v = { digest, name: name ?? digest, started: time, completed: undefined, cached: false, error: undefined, logs: [], log: new LineBuffer(), statuses: new Map() };
      this.#vertices.set(digest, v);
    }
    return v;
  }

  handle(ev: ProgressEvent): void {
    switch (ev.kind) {
      case 'vertex.started':
        this.#vertex(ev.vertex, ev.name, ev.time);
        break;
      case 'vertex.cached': {
        const v = this.#vertex(ev.vertex, ev.name, ev.time);
        v.cached = true;
        v.completed = ev.time;
        break;
      }
      case 'vertex.done':
        this.#vertex(ev.vertex, undefined, ev.time).completed = ev.time;
        break;
      case 'vertex.error': {
        const v = this.#vertex(ev.vertex, undefined, ev.time);
        v.completed = ev.time;
        v.error = ev.error;
        break;
      }
      case 'log': {
        const v = this.#vertex(ev.vertex, undefined, ev.time);
        // Shown on a terminal: read as UTF-8 (invalid bytes as U+FFFD, as a terminal would show them).
        for (const l of v.log.push(ev.data)) v.logs.push(withoutCarriageReturn(l).toString('utf8'));
        if (v.logs.length > 200) v.logs.splice(0, v.logs.length - 200);
        break;
      }
      case 'status': {
        const v = this.#vertex(ev.vertex, undefined, ev.time);
        v.statuses.set(ev.id, { label: ev.name ?? ev.id, current: ev.current, total: ev.total, done: ev.completed !== undefined });
        break;
      }
      default: {
        const never: never = ev;
        return never;
      }
    }
    this.#schedule();
  }

  #schedule(): void {
    const now = this.#now();
    if (this.#throttle === 0 || now - this.#lastDraw >= this.#throttle) {
      this.#draw(false);
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#draw(false);
      }, this.#throttle);
      this.#timer.unref?.();
    }
  }

  /** Builds the lines of the current view (without ANSI cursor movement). */
  view(final: boolean): string[] {
    const now = this.#now();
    const width = Math.max(20, this.#out.columns ?? 80);
    const vs = [...this.#vertices.values()];
    const done = vs.filter((v) => v.completed !== undefined).length;
    const elapsed = formatSeconds(now - this.#start);
    const lines: string[] = [`[+] Building ${elapsed} (${done}/${vs.length})${final ? ' FINISHED' : ''}`];
    for (const v of vs) {
      const running = v.completed === undefined;
      const dur = v.cached ? '' : formatSeconds((v.completed ?? now) - v.started);
      const prefix = v.cached ? ' => CACHED ' : v.error !== undefined ? ' => ERROR ' : ' => ';
      lines.push(fit(`${prefix}${v.name}`, dur, width));
      if (running || v.error !== undefined) {
        for (const s of v.statuses.values()) {
          const amount = s.total !== undefined && s.total > 0 ? `${formatBytes(s.current)} / ${formatBytes(s.total)}` : '';
          lines.push(fit(` => => ${s.label} ${amount}`.trimEnd(), s.done ? 'done' : '', width));
        }
        const tail = v.logs.slice(-this.#logLines);
        for (const l of tail) lines.push(`\x1b[2m${cut(` => => # ${l}`, width)}\x1b[0m`);
        if (v.error !== undefined) lines.push(cut(`------ ERROR: ${v.error}`, width));
      }
    }
    const rows = this.#out.rows;
    if (!final && rows !== undefined && lines.length > rows - 1) {
      const keep = Math.max(1, rows - 1);
      return [lines[0] ?? '', ...lines.slice(lines.length - (keep - 1))];
    }
    return lines;
  }

  #draw(final: boolean): void {
    this.#lastDraw = this.#now();
    const lines = this.view(final);
    let s = '';
    if (this.#lastLines > 0) s += `${ESC}${this.#lastLines}A`;
    for (const l of lines) s += `${ESC}2K\r${l}\n`;
    // Clear any lines left over from a taller previous frame.
    const extra = this.#lastLines - lines.length;
    for (let i = 0; i < extra; i++) s += `${ESC}2K\n`;
    if (extra > 0) s += `${ESC}${extra}A`;
    this.#out.write(s);
    this.#lastLines = lines.length;
  }

  finish(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#draw(true);
  }
}

/** Visible length of `s` ignoring ANSI sequences. */
function cut(s: string, width: number): string {
  return s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s;
}

/** `left` padded so `right` ends at the terminal's last column; `left` truncated to fit. */
function fit(left: string, right: string, width: number): string {
  const room = width - right.length - 1;
  const l = left.length > room ? `${left.slice(0, Math.max(0, room - 1))}…` : left;
  return right === '' ? l : `${l}${' '.repeat(Math.max(1, width - l.length - right.length))}${right}`;
}
