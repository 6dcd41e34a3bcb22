import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * A long-lived helper process (perl mount/spawn helpers) keeps the event loop alive only while
 * it has work: `busy` refs it and its output pipe, otherwise everything is unref-ed, so an idle
 * helper never holds a finished kiln process open.
 */
export function holdHelper(child: ChildProcessWithoutNullStreams, busy: boolean): void {
  if (busy) {
    child.ref();
    (child.stdout as unknown as Socket).ref();
    return;
  }
  child.unref();
  for (const s of [child.stdout, child.stdin, child.stderr]) (s as unknown as Socket).unref();
}
