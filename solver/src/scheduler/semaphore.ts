/** A counting semaphore: at most `limit` holders at once, FIFO. */
export class Semaphore {
  readonly #limit: number;
  #active = 0;
  readonly #queue: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /** Waits for a slot; resolves with the release function (idempotent). Rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const grant = (): (() => void) => {
      this.#active++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        this.#active--;
        this.#queue.shift()?.();
      };
    };
    if (this.#active < this.#limit) return Promise.resolve(grant());
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#queue.indexOf(wake);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(grant());
      };
      if (signal?.aborted === true) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(wake);
    });
  }

  get active(): number {
    return this.#active;
  }
}
