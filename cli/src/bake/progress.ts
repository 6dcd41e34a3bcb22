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
  /** The builds (by scope) each shared step's events reached and that have not left it. */
  readonly #members = new Map<string, Set<string>>();

  constructor(sink: ProgressSink) {
    this.#sink = sink;
  }

  /** The sink of the build of `target`; `scope` keeps apart the own steps of a second build of it. */
  forTarget(target: string, scope = target): ProgressSink {
    return {
      emit: (ev) => {
        const shared = ev.vertex.startsWith('sha256:');
        // The solver cancels a running step for each build that leaves it (its own event): the
        // step shows as cancelled once no target is left in it (every build still in a running
        // step had its start), not while another may still finish it.
        if (shared && ev.kind === 'vertex.error' && ev.error === 'cancelled') {
          const members = this.#members.get(ev.vertex);
          members?.delete(scope);
          if ((members?.size ?? 0) > 0 || !this.#open.has(ev.vertex)) return;
          this.#members.delete(ev.vertex);
        } else if (shared && (ev.kind === 'vertex.done' || ev.kind === 'vertex.error' || ev.kind === 'vertex.cached')) {
          this.#members.delete(ev.vertex);
        } else if (shared) {
          const members = this.#members.get(ev.vertex) ?? new Set<string>();
          this.#members.set(ev.vertex, members.add(scope));
        }
        if (this.#seen.has(ev)) return;
        this.#seen.add(ev);
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
   * Once every build has ended: the steps still open were cancelled (a target's own step, an
   * export, stopped by another's failure or by Ctrl-C). Shown as BuildKit shows them, `CANCELED`.
   */
  cancelOpen(time = Date.now()): void {
    for (const vertex of this.#open) this.#sink.emit({ kind: 'vertex.error', vertex, error: 'cancelled', time });
    this.#open.clear();
  }
}
