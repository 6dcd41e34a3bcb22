import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ProgressEvent, ProgressSink } from '@kiln/solver';
import type { ExportResult } from '@kiln/runtime';
import { formatBuildError } from '../engine/report.js';
import { DEFAULT_LOG_LIMIT, LogEncoder } from './log.js';
import { newRef, ownOwner, type HistoryErrorLocation, type HistoryExport, type HistoryFailure, type HistoryRecord, type HistoryStatus } from './record.js';
import { DEFAULT_RETENTION, HistoryStore, recordFiles, type RetentionPolicy } from './store.js';

/** What is recorded of a build before it runs (see {@link HistoryRecord}). */
export type BuildDescription = Omit<HistoryRecord, 'version' | 'ref' | 'status' | 'createdAt' | 'completedAt' | 'durationMs' | 'steps' | 'error' | 'exports' | 'log' | 'owner'>;

/** Options of {@link startRecording}. */
export interface RecordOptions {
  /** The kiln root whose `history/` gets the record. */
  readonly root: string;
  /** The caller's environment: `KILN_HISTORY=0` records nothing. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The build's cancel signal: a build that fails after it fired was canceled. */
  readonly signal?: AbortSignal;
  /** The build file, to quote the failing line in the error report (read only after a failure). */
  readonly buildFile?: { readonly path?: string; readonly text?: string };
  /** Output destinations as the user named them (a temp file that stands for `dest=-`). */
  readonly displayDests?: ReadonlyMap<string, string>;
  /** Where a record that could not be written is reported (never fails the build). */
  readonly onWarning?: (message: string) => void;
  readonly now?: () => number;
  readonly logLimit?: number;
  readonly retention?: RetentionPolicy;
}

/** What a build returns that the record keeps. */
export interface RecordedResult {
  readonly exports: readonly ExportResult[];
  readonly frontend?: string;
}

/** The recording of one build (see {@link startRecording}). */
export interface BuildRecording {
  /** The progress sink to give the build: it records and passes every event on. */
  readonly sink: ProgressSink;
  /** The record's ref (`kiln history inspect REF`); undefined when nothing is recorded. */
  readonly ref: string | undefined;
  /**
   * A sink for another solve of the same build (bake's second, own-outputs build), passed on to
   * `to` and recorded too; its steps that are not solver vertices (exports: `export-0`) are
   * recorded as `SCOPE/ID`, apart from the first solve's steps of the same id.
   */
  tee(to: ProgressSink, scope: string): ProgressSink;
  /** Awaits the build, records how it ended, then resolves or rejects as the build did. */
  track<T extends RecordedResult>(build: Promise<T>): Promise<T>;
  /** Records a build that succeeded (when {@link BuildRecording.track} does not fit). */
  completed(result: RecordedResult): Promise<void>;
  /** Records a build that failed, or was canceled: `canceled`, or its signal fired, or the error is an interrupt. */
  failed(error: unknown, canceled?: boolean): Promise<void>;
}

/**
 * Starts recording a build whose progress goes to `sink`: hand the build
 * {@link BuildRecording.sink}, then {@link BuildRecording.track} its promise. The record is
 * written when the build starts (running) and when it ends, however it ends. Recording costs the
 * build two small asynchronous writes and the rawjson encoding of its events; a record that
 * cannot be written is a warning, never the build's failure.
 */
export function startRecording(desc: BuildDescription, sink: ProgressSink, opts: RecordOptions): BuildRecording {
  if (opts.env['KILN_HISTORY'] === '0') return recording(sink, undefined, async () => undefined, async () => undefined);
  const recorder = new BuildRecorder(desc, sink, opts);
  return recording(
    recorder,
    recorder.ref,
    (r) => recorder.end('completed', r.exports, r.frontend),
    (e, canceled = false) => recorder.end(canceled || opts.signal?.aborted === true || (e as { code?: unknown } | undefined)?.code === 'KLN0705' ? 'canceled' : 'error', [], undefined, e),
    (to, scope) => recorder.tee(to, scope),
  );
}

/** A {@link BuildRecording} of `sink` whose `track` ends in `completed` or `failed`. */
export function recording(sink: ProgressSink, ref: string | undefined, completed: BuildRecording['completed'], failed: BuildRecording['failed'], tee: BuildRecording['tee'] = (to) => to): BuildRecording {
  return {
    sink,
    ref,
    tee,
    completed,
    failed,
    track: async (build) => {
      let result;
      try {
        result = await build;
      } catch (e) {
        await failed(e);
        throw e;
      }
      await completed(result);
      return result;
    },
  };
}

/** Counts the steps of a build from its progress, as BuildKit's history counts vertexes. */
export class StepCounter {
  readonly #steps = new Map<string, 'started' | 'cached' | 'completed' | 'error'>();

  handle(ev: ProgressEvent): void {
    switch (ev.kind) {
      case 'vertex.started':
        if (!this.#steps.has(ev.vertex)) this.#steps.set(ev.vertex, 'started');
        return;
      case 'vertex.cached':
        // A step that ran stays run when a later solve of the same build (bake's own-outputs one) finds it cached.
        if (this.#steps.get(ev.vertex) !== 'completed') this.#steps.set(ev.vertex, 'cached');
        return;
      case 'vertex.done':
        if (this.#steps.get(ev.vertex) !== 'cached') this.#steps.set(ev.vertex, 'completed');
        return;
      case 'vertex.error':
        if (this.#steps.get(ev.vertex) === 'started' || !this.#steps.has(ev.vertex)) this.#steps.set(ev.vertex, 'error');
        return;
      default:
        return;
    }
  }

  /** Steps seen, taken from the cache, and finished (cached ones included). */
  get counts(): { total: number; cached: number; completed: number } {
    let cached = 0;
    let completed = 0;
    for (const s of this.#steps.values()) {
      if (s === 'cached') cached++;
      if (s === 'cached' || s === 'completed') completed++;
    }
    return { total: this.#steps.size, cached, completed };
  }
}

/** The recording of one build; a {@link ProgressSink} in front of the build's own. */
class BuildRecorder implements ProgressSink {
  readonly #sink: ProgressSink;
  readonly #opts: RecordOptions;
  readonly #store: HistoryStore;
  readonly #steps = new StepCounter();
  readonly #log: LogEncoder;
  readonly #running: HistoryRecord;
  readonly #started: number;
  /** The `running` record's write: the final one must land after it. */
  readonly #marked: Promise<boolean>;
  #ended = false;

  constructor(desc: BuildDescription, sink: ProgressSink, opts: RecordOptions) {
    this.#sink = sink;
    this.#opts = opts;
    this.#store = new HistoryStore(opts.root);
    this.#log = new LogEncoder(opts.logLimit ?? DEFAULT_LOG_LIMIT);
    this.#started = (opts.now ?? Date.now)();
    this.#running = { version: 1, ref: newRef(), ...desc, status: 'running', createdAt: new Date(this.#started).toISOString(), steps: { total: 0, cached: 0, completed: 0 }, exports: [], owner: ownOwner() };
    // Not awaited here: the build starts at once; end() waits for it.
    this.#marked = this.#store.write(this.#running).then(
      () => true,
      (e: unknown) => {
        this.#warn(e);
        return false;
      },
    );
  }

  get ref(): string {
    return this.#running.ref;
  }

  emit(ev: ProgressEvent): void {
    this.#record(ev);
    this.#sink.emit(ev);
  }

  tee(to: ProgressSink, scope: string): ProgressSink {
    return {
      emit: (ev) => {
        this.#record(ev.vertex.startsWith('sha256:') ? ev : { ...ev, vertex: `${scope}/${ev.vertex}` });
        to.emit(ev);
      },
    };
  }

  #record(ev: ProgressEvent): void {
    if (this.#ended) return;
    this.#steps.handle(ev);
    this.#log.handle(ev);
  }

  /** Writes the final record (after the running one), then applies the retention policy. */
  async end(status: Exclude<HistoryStatus, 'running'>, exports: readonly ExportResult[], frontend: string | undefined, error?: unknown): Promise<void> {
    // Once: a build records how it ended, not a later call's idea of it.
    if (this.#ended) return;
    this.#ended = true;
    const completed = (this.#opts.now ?? Date.now)();
    // Whatever fails here, a final record is written: the running one must not stay.
    const log = await this.#log.finish().catch((e: unknown) => void this.#warn(e, 'the log of the build was not kept in kiln history'));
    const failure = error === undefined || status === 'canceled' ? undefined : await this.#failure(error).catch(() => plainFailure(error));
    const { owner: _, ...running } = this.#running;
    const rec: HistoryRecord = {
      ...running,
      ...(frontend === undefined ? {} : { frontend }),
      status,
      completedAt: new Date(completed).toISOString(),
      durationMs: completed - this.#started,
      steps: this.#steps.counts,
      ...(failure === undefined ? {} : { error: failure }),
      exports: exports.map((x) => this.#export(x)),
      ...(log === undefined ? {} : { log: { size: log.bytes.length, truncated: log.truncated, limit: this.#log.limit } }),
    };
    if (!(await this.#marked)) return;
    if (!(await this.#writeFinal(rec, log?.bytes))) return;
    // Not awaited: the build is done; the process (or daemon) lives on until the prune is.
    this.#store.prune(this.#opts.retention ?? DEFAULT_RETENTION, completed).catch((e: unknown) => this.#warn(e));
  }

  /**
   * Writes the final record; when it cannot be (a full disk), the record without its log, and
   * failing that none: the `running` record must not stay, as it would read as Running for as
   * long as this process lives (a daemon's, for days) and could not be removed. False when the
   * record as built could not be written (warned).
   */
  async #writeFinal(rec: HistoryRecord, log: Uint8Array | undefined): Promise<boolean> {
    let first: unknown;
    try {
      await this.#store.write(rec, log, { waited: true });
      return true;
    } catch (e) {
      first = e;
    }
    const files = recordFiles(rec.ref, Date.parse(rec.createdAt));
    const { log: _, ...bare } = rec;
    try {
      // A log cut short where it was written in place.
      await this.#store.removeLog(files);
      await this.#store.write(bare, undefined, { waited: true });
      this.#warn(first, 'the log of the build was not kept in kiln history');
    } catch {
      this.#warn(first);
      await this.#store.remove(files).catch(() => undefined);
    }
    return false;
  }

  #export(x: ExportResult): HistoryExport {
    const dest = x.dest === undefined ? undefined : (this.#opts.displayDests?.get(x.dest) ?? x.dest);
    return { type: x.type, names: [...x.names], ...(x.digest === undefined ? {} : { digest: x.digest }), ...(dest === undefined ? {} : { dest }), pushed: [...x.pushed] };
  }

  /** The error as the build reported it, with its place in the build file. */
  async #failure(e: unknown): Promise<HistoryFailure> {
    const file = this.#opts.buildFile;
    const dockerfileName = file?.path === undefined ? 'Dockerfile' : basename(file.path);
    const dockerfileText = file?.text ?? (file?.path === undefined ? undefined : await readFile(file.path, 'utf8').catch(() => undefined));
    const report = formatBuildError(e, { ...(dockerfileText === undefined ? {} : { dockerfileText }), dockerfileName });
    const first = report.split('\n')[0] ?? '';
    const message = first.replace(/^kiln: error( [A-Z0-9_]+)?: /, '');
    const code = /^kiln: error ([A-Z0-9_]+):/.exec(first)?.[1];
    const location = errorLocation(e, dockerfileName);
    return { message, ...(code === undefined ? {} : { code }), ...(location === undefined ? {} : { location }), report };
  }

  #warn(e: unknown, what = 'the build was not recorded in kiln history'): void {
    this.#opts.onWarning?.(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** An error as a record keeps it when its report cannot be made. */
function plainFailure(e: unknown): HistoryFailure {
  const message = e instanceof Error ? e.message : String(e);
  return { message: message.split('\n')[0] ?? '', report: message };
}

/**
 * The first place in the build file along `e`'s causes: a failed step's (VertexError
 * `locations`), a Dockerfile error's or a frontend's (`location`). `file` '' is the build file.
 */
export function errorLocation(e: unknown, dockerfileName: string): HistoryErrorLocation | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++, cur = cur.cause) {
    const o = cur as { locations?: unknown; location?: unknown; source?: unknown };
    const loc: unknown = Array.isArray(o.locations) ? o.locations[0] : o.location;
    if (typeof loc !== 'object' || loc === null) continue;
    const l = loc as { file?: unknown; line?: unknown; column?: unknown; source?: unknown };
    if (typeof l.line !== 'number' || typeof l.column !== 'number') continue;
    const file = typeof l.file === 'string' && l.file !== '' ? l.file : dockerfileName;
    const source = typeof l.source === 'string' ? l.source : typeof o.source === 'string' ? o.source : undefined;
    return { file, line: l.line, column: l.column, ...(source === undefined ? {} : { source }) };
  }
  return undefined;
}
