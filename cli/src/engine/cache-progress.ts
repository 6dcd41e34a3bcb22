import type { ProgressSink } from '@kiln/solver';

/** One progress vertex with BuildKit-like status lines (`writing layer sha256:…`) for cache import/export. */
export function progressVertex(progress: ProgressSink | undefined, vertex: string, name: string) {
  const t0 = Date.now();
  progress?.emit({ kind: 'vertex.started', vertex, name, time: t0 });
  return {
    status(id: string): void {
      const t = Date.now();
      progress?.emit({ kind: 'status', vertex, id, current: 0, started: t, completed: t, time: t });
    },
    done(): void {
      progress?.emit({ kind: 'vertex.done', vertex, time: Date.now() });
    },
    fail(e: unknown): void {
      progress?.emit({ kind: 'vertex.error', vertex, error: e instanceof Error ? e.message : String(e), time: Date.now() });
    },
  };
}

