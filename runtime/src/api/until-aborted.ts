/**
 * `p`, or a rejection with `reason()` as soon as `signal` aborts (at once when it already has;
 * default: the signal's own reason). `p` goes on for whoever else waits on it: a shared fetch or
 * unpack one caller gives up on.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, reason: () => unknown = () => signal?.reason): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(reason());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
