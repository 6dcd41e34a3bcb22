import type { ExecRequest, ExecResult, Executor, OutputLine } from '../api/executor.js';

/** A running process whose output is read as an `AsyncIterable`; see {@link runStreaming}. */
export interface StreamingRun {
  /** Every output line in arrival order; ends when the process has exited (or the run failed). */
  readonly output: AsyncIterable<OutputLine>;
  /** Settles like {@link Executor.run}. */
  readonly result: Promise<ExecResult>;
}

/**
 * Starts `req` on `executor` and exposes its output as an `AsyncIterable` (lines are queued
 * until read, so a slow reader never loses one). The iterable can be read once.
 */
export function runStreaming(executor: Executor, req: Omit<ExecRequest, 'onOutput'>): StreamingRun {
  const queue: OutputLine[] = [];
  let finished = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const result = executor.run({
    ...req,
    onOutput: (l) => {
      queue.push(l);
      notify();
    },
  });
  const done = (): void => {
    finished = true;
    notify();
  };
  result.then(done, done);
  async function* output(): AsyncGenerator<OutputLine> {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (finished) return;
      await new Promise<void>((r) => (wake = r));
    }
  }
  return { output: output(), result };
}
