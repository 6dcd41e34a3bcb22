import type { ProgressSink } from '@kiln/solver';

/** The progress vertex that shows a frontend's own output (a kiln/ts build file's console). */
export const FRONTEND_LOG_VERTEX = 'frontend-output';

/**
 * Lines a frontend writes ({@link FrontendClient.log}) as the log of one progress vertex, started
 * at the first line, as BuildKit shows an external frontend's stderr: `#N [frontend] output`,
 * `#N 0.012 <line>`. Nothing shows for a frontend that writes nothing.
 */
export function frontendLog(progress: ProgressSink | undefined): { log(line: string): void; done(): void } {
  let started = false;
  return {
    log(line) {
      if (progress === undefined) return;
      const time = Date.now();
      if (!started) {
        started = true;
        progress.emit({ kind: 'vertex.started', vertex: FRONTEND_LOG_VERTEX, name: '[frontend] output', time });
      }
      progress.emit({ kind: 'log', vertex: FRONTEND_LOG_VERTEX, stream: 2, data: Buffer.from(`${line}\n`), time });
    },
    done() {
      if (started) progress?.emit({ kind: 'vertex.done', vertex: FRONTEND_LOG_VERTEX, time: Date.now() });
      started = false;
    },
  };
}
