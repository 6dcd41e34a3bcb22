import type { ProgressEvent, ProgressSink } from '@kiln/solver';

/**
 * One progress stream for several concurrent builds. Each target's sink names its steps
 * `[target] …`. A step that builds share (the shared solver runs it once) reaches every build's
 * sink as the same event object: it is shown once, under the target that saw it first. Steps
 * that are not solver vertices (exports, frontend output) get ids of their own per target, since
 * two builds' `export-0` are different steps.
 */
export class BakeProgress {
  readonly #sink: ProgressSink;
  readonly #seen = new WeakSet<ProgressEvent>();
  readonly #owner = new Map<string, string>();
  /** Steps shown as started and not yet done, failed or cached. */
  readonly #open = new Set<string>();

  constructor(sink: ProgressSink) {
    this.#sink = sink;
  }

  /** The sink of the build of `target`; `scope` keeps apart the own steps of a second build of it. */
  forTarget(target: string, scope = target): ProgressSink {
    return {
      emit: (ev) => {
        if (this.#seen.has(ev)) return;
        this.#seen.add(ev);
        const shared = ev.vertex.startsWith('sha256:');
        // The solver cancels a step for a build that leaves it; another target may still run it,
        // so a shared step ends as cancelled only if nobody finishes it (cancelOpen).
        if (shared && ev.kind === 'vertex.error' && ev.error === 'cancelled') return;
        let owner = target;
        if (shared) {
          owner = this.#owner.get(ev.vertex) ?? target;
          this.#owner.set(ev.vertex, owner);
        }
        const vertex = shared ? ev.vertex : `${scope}/${ev.vertex}`;
        if (ev.kind === 'vertex.started') this.#open.add(vertex);
        else if (ev.kind === 'vertex.done' || ev.kind === 'vertex.error' || ev.kind === 'vertex.cached') this.#open.delete(vertex);
        if (ev.kind === 'vertex.started' || ev.kind === 'vertex.cached') this.#sink.emit({ ...ev, vertex, name: `[${owner}] ${ev.name}` });
        else this.#sink.emit({ ...ev, vertex });
      },
    };
  }

  /**
   * Once every build has ended: the shared steps still open were cancelled (every target that
   * needed one was stopped, by another's failure or by Ctrl-C; their cancel events were held back
   * above). Shown as BuildKit shows them, `CANCELED`.
   */
  cancelOpen(time = Date.now()): void {
    for (const vertex of this.#open) this.#sink.emit({ kind: 'vertex.error', vertex, error: 'cancelled', time });
    this.#open.clear();
  }
}
