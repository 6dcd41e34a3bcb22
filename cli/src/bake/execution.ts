import type { ProgressSink } from '@kiln/solver';
import { BakeError } from './errors.js';

/**
 * buildx bake's `--execution`: `fail-fast` (the first failure cancels the other targets),
 * `defer-output` (the same, and no target exports before every target has solved) and
 * `defer-error` (independent targets run to their end; the failure is reported after).
 */
export type ExecutionMode = 'fail-fast' | 'defer-output' | 'defer-error';

export const EXECUTION_MODES: readonly ExecutionMode[] = ['fail-fast', 'defer-output', 'defer-error'];

/** `--execution MODE` (default fail-fast, as buildx). */
export function parseExecution(value: string | undefined): ExecutionMode {
  const v = (value ?? 'fail-fast').trim();
  const mode = EXECUTION_MODES.find((m) => m === v);
  if (mode === undefined) throw new BakeError('KLN0854', `invalid --execution "${value ?? ''}"`, { hint: `use ${EXECUTION_MODES.join(', ')}` });
  return mode;
}

/** How one target ended, in buildx's words (its `[internal] target results` step). */
export type TargetStatus = 'succeeded' | 'failed' | 'aborted' | 'not started';

/**
 * The `defer-output` barrier: every target arrives once solved; {@link wait} resolves when all
 * have, and rejects as soon as one of them ends without arriving (failed, cancelled, not started).
 */
export class ExportBarrier {
  readonly #pending: Set<string>;
  readonly #arrived = new Set<string>();
  #broken = false;
  readonly #done: Promise<void>;
  #resolve: () => void = () => undefined;
  #reject: (e: unknown) => void = () => undefined;

  constructor(targets: Iterable<string>) {
    this.#pending = new Set(targets);
    this.#done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Nobody may be waiting when it breaks.
    this.#done.catch(() => undefined);
    if (this.#pending.size === 0) this.#resolve();
  }

  /** `target` solved: its exports may start once every other target has too. */
  arrive(target: string): void {
    if (!this.#pending.delete(target)) return;
    this.#arrived.add(target);
    if (this.#pending.size === 0) this.#resolve();
  }

  /** `target` ended without solving: nothing waiting at the barrier exports. */
  break(target: string): void {
    if (!this.#pending.has(target) || this.#broken) return;
    this.#broken = true;
    this.#reject(new BakeError('KLN0857', `not exported: target "${target}" did not succeed (--execution defer-output)`));
  }

  /** Whether `target` had solved when the barrier broke: it ended there, not by its own fault. */
  heldAfterBreak(target: string): boolean {
    return this.#broken && this.#arrived.has(target);
  }

  /** Resolves when every target solved; rejects when one did not, or when `signal` aborts. */
  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#done.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }
}

/**
 * buildx's `[internal] target results` step: one status line per target, `NAME: STATUS`, at the
 * end of a failed multi-target bake (plain: `#N app: succeeded 0.0s done`; rawjson: a status).
 */
export function emitTargetResults(sink: ProgressSink, results: ReadonlyMap<string, TargetStatus>, now = Date.now()): void {
  const vertex = 'bake/target-results';
  sink.emit({ kind: 'vertex.started', vertex, name: '[internal] target results', time: now });
  for (const name of [...results.keys()].sort()) {
    sink.emit({ kind: 'status', vertex, id: `${name}: ${results.get(name) ?? 'not started'}`, current: 0, started: now, completed: now, time: now });
  }
  sink.emit({ kind: 'vertex.done', vertex, time: now });
}

/** The closing error of a bake with failed targets: which failed, and what became of the others. */
export function targetsFailedError(results: ReadonlyMap<string, TargetStatus>, mode: ExecutionMode): BakeError {
  const named = (s: TargetStatus): string[] => [...results].filter(([, v]) => v === s).map(([k]) => k).sort();
  const failed = named('failed');
  const aborted = named('aborted');
  const unstarted = named('not started');
  const parts = [`${failed.length} target${failed.length === 1 ? '' : 's'} failed: ${failed.join(', ')}`];
  if (aborted.length > 0) parts.push(`${aborted.length} cancelled: ${aborted.join(', ')}`);
  if (unstarted.length > 0) parts.push(`${unstarted.length} not started: ${unstarted.join(', ')}`);
  const others = aborted.length + unstarted.length;
  return new BakeError('KLN0857', `${parts.join('; ')} (--execution ${mode})`, {
    ...(mode !== 'defer-error' && others > 0 ? { hint: '--execution defer-error lets the targets that do not depend on a failed one run to their end' } : {}),
  });
}
