import { setMaxListeners } from 'node:events';
import { homedir } from 'node:os';
import { callerUid, resolveKilnRoot, type KilnRoot } from '@kiln/runtime';
import { checkRootlessRoot } from './root-dir.js';
import { createRenderer, ProgressStream, renderProgress, type ProgressMode } from '@kiln/solver';
import { callerEnv, callerPath, processInterrupts, type CliIo } from '../io.js';
import { EngineError } from './errors.js';

export { ReportedError } from '../io.js';

/** Parses `--parallelism <n>` (a positive integer) for commander. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('KLN0707', `invalid --parallelism "${value}"`, { hint: 'use a positive integer' });
  return n;
}

/**
 * The kiln root (an absolute path) from `--root`, the caller's `KILN_ROOT`, or the default for this
 * user (the user's own in rootless kiln's namespace, where this process is uid 0).
 */
export function kilnRoot(root: string | undefined, io: CliIo): KilnRoot {
  const r = resolveKilnRoot({ root, env: callerEnv(io), uid: callerUid(), home: homedir() });
  const path = callerPath(io, r.path);
  checkRootlessRoot(path);
  return { ...r, path };
}

/** A live progress display on stderr: events go to `sink`; `finish` flushes it. */
export interface ProgressDisplay {
  readonly sink: ProgressStream;
  finish(): Promise<void>;
}

/** Starts rendering progress in `mode` to the CLI's stderr. */
export function startProgress(mode: string, io: CliIo): ProgressDisplay {
  if (!['auto', 'plain', 'tty', 'rawjson', 'quiet'].includes(mode)) {
    throw new EngineError('KLN0707', `invalid --progress "${mode}"`, { hint: 'use auto, plain, tty, rawjson or quiet' });
  }
  const sink = new ProgressStream();
  const stderr = io.stderr as { write(s: string | Uint8Array): unknown; isTTY?: boolean; columns?: number; rows?: number };
  if (mode === 'quiet') {
    const drain = (async () => {
      for await (const _ of sink) {
        // Discarded: --progress=quiet prints nothing but the result.
      }
    })();
    return { sink, finish: async () => (sink.close(), drain) };
  }
  const renderer = createRenderer(mode as ProgressMode, {
    write: (s) => void stderr.write(s),
    isTTY: stderr.isTTY === true,
    columns: stderr.columns,
    rows: stderr.rows,
  });
  const done = renderProgress(sink, renderer);
  return {
    sink,
    finish: async () => {
      sink.close();
      await done;
    },
  };
}

/**
 * An AbortSignal fired by the caller's SIGINT/SIGTERM while `fn` runs: the build cancels (running
 * containers are killed, the cache store stays consistent) instead of the process dying
 * mid-write. A second Ctrl-C gives up at once.
 */
export async function withInterrupt<T>(io: CliIo, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  // Every solve, prefetch and container of the build listens on this one signal.
  setMaxListeners(0, ac.signal);
  const interrupts = io.interrupts ?? processInterrupts;
  const off = interrupts.on((sig) => {
    if (ac.signal.aborted) interrupts.giveUp();
    else ac.abort(new EngineError('KLN0705', `interrupted (${sig})`));
  });
  try {
    return await fn(ac.signal);
  } catch (e) {
    if (ac.signal.aborted) throw ac.signal.reason;
    throw e;
  } finally {
    off();
  }
}
