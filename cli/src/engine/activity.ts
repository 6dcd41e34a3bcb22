import { mkdir, readdir, unlink } from 'node:fs/promises';
import { readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ownPidNamespace } from '@kiln/runtime';
import { pidAlive, throwIfCancelled, untilAborted, withFileLock } from '@kiln/solver';
import { EngineError } from './errors.js';

/**
 * Builds and `kiln prune` in one kiln root, across processes. A build marks itself in
 * `<root>/engine/active/<pid>` for its lifetime; prune runs only when no live process is marked.
 * Both take `<root>/engine/gc.lock` while deciding, so a build that starts during a prune waits
 * for it to finish instead of building on snapshots being deleted. Marks of dead processes
 * (SIGKILL) are ignored. One process may run several builds at once (`kiln daemon`): the mark
 * stays while any of them runs, and a prune in that same process is refused like any other.
 */
export class RootActivity {
  readonly #dir: string;
  readonly #lock: string;
  #mark: string | undefined;
  /** Builds of this process in progress; the mark is written for the first and removed after the last. */
  #builds = 0;
  #marking: { readonly written: Promise<void>; readonly stop: AbortController } | undefined;

  constructor(root: string) {
    this.#dir = join(root, 'engine', 'active');
    this.#lock = join(root, 'engine', 'gc.lock');
  }

  /**
   * Marks this process as building until {@link RootActivity.end}; waits while a prune runs. The
   * builds of this process share one mark and one wait for the lock: `signal` gives up this
   * build's wait only, the others keep waiting.
   */
  async begin(signal?: AbortSignal): Promise<void> {
    throwIfCancelled(signal);
    this.#builds++;
    try {
      await untilAborted((this.#marking ??= this.#writeMark()).written, signal);
    } catch (e) {
      this.end();
      throw e;
    }
  }

  /** Writes the mark under the lock; given up (no mark) when every build waiting for it ended first. */
  #writeMark(): { readonly written: Promise<void>; readonly stop: AbortController } {
    const stop = new AbortController();
    const mark = join(this.#dir, String(process.pid));
    const written = (async () => {
      await mkdir(this.#dir, { recursive: true });
      await withFileLock(this.#lock, stop.signal, async () => {
        // Synchronous from the check to #mark: an end() cannot slip in between.
        if (this.#builds === 0) return;
        writeFileSync(mark, ownPidNamespace() ?? '');
        this.#mark = mark;
      });
    })();
    const marking = { written, stop };
    written.catch(() => {
      if (this.#marking === marking) this.#marking = undefined;
    });
    return marking;
  }

  /**
   * Ends one build begun with {@link RootActivity.begin}; the last one removes this process's mark
   * (synchronously, so it also runs on the way out of a failed build).
   */
  end(): void {
    if (this.#builds === 0) return;
    if (--this.#builds > 0) return;
    // A wait for the lock no build needs any more stops (it would keep the process alive).
    this.#marking?.stop.abort();
    this.#marking = undefined;
    if (this.#mark === undefined) return;
    try {
      unlinkSync(this.#mark);
    } catch {
      // already gone
    }
    this.#mark = undefined;
  }

  /**
   * Whether a build of this root was killed (SIGKILL, crash): a mark whose process is gone. What
   * it left (snapshots, see KilnEngine.sweepOrphans) is cleaned up by the next
   * {@link RootActivity.exclusive} run, which then drops the marks. One directory read.
   */
  killedBuilds(): boolean {
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch {
      return false;
    }
    // The mark is read only for a pid that is not alive here (a kill(0) costs less than a read).
    return names.some((name) => (Number(name) === process.pid ? this.#earlierOwnPid() : !pidAlive(Number(name)) && !this.#foreign(name)));
  }

  /**
   * Whether mark `name` was written in another pid namespace (a kiln in another container sharing
   * this root): its pid says nothing here, so the build counts as running until the mark goes.
   */
  #foreign(name: string): boolean {
    const ns = ownPidNamespace();
    if (ns === undefined) return false;
    try {
      const written = readFileSync(join(this.#dir, name), 'utf8');
      return written !== '' && written !== ns;
    } catch {
      return false;
    }
  }

  /**
   * Whether the mark under this process's pid is an earlier process's that had the same pid (a
   * daemon restarted as pid 1 of its container): one this process neither wrote nor is writing.
   */
  #earlierOwnPid(): boolean {
    if (this.#builds > 0 || this.#mark !== undefined || this.#marking !== undefined) return false;
    // Only a mark written in this pid namespace: a kiln in another container sharing the root
    // may have this same pid and be building right now.
    const ns = ownPidNamespace();
    if (ns === undefined) return false;
    try {
      return readFileSync(join(this.#dir, String(process.pid)), 'utf8') === ns;
    } catch {
      return false;
    }
  }

  /**
   * Runs `fn` (a prune, or the clean-up after killed builds) only while no other live process
   * builds in this root. Marks of dead processes are dropped once `fn` succeeded, so that
   * {@link RootActivity.killedBuilds} still tells the next open when it did not.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.#dir, { recursive: true });
    return withFileLock(this.#lock, undefined, async () => {
      const live: number[] = this.#builds > 0 ? [process.pid] : [];
      const foreign: string[] = [];
      const dead: string[] = [];
      for (const name of await readdir(this.#dir)) {
        const pid = Number(name);
        if (this.#foreign(name)) foreign.push(join(this.#dir, name));
        // No build of this process can write its mark meanwhile: that needs this lock.
        else if (pid === process.pid) {
          if (this.#earlierOwnPid()) dead.push(name);
        } else if (pidAlive(pid)) live.push(pid);
        else dead.push(name);
      }
      if (foreign.length > 0) {
        throw new EngineError('KLN0708', `a kiln in another pid namespace (another container) builds in this kiln root (${foreign.length === 1 ? 'mark' : 'marks'} ${foreign.join(', ')})`, {
          hint: 'kiln cannot tell whether a build there still runs: wait for it, or remove the mark if that container is gone, then prune again',
        });
      }
      if (live.length > 0) {
        throw new EngineError('KLN0708', `${live.length === 1 ? 'a build is' : `${live.length} builds are`} running in this kiln root (pid ${live.join(', ')})`, {
          hint: 'prune removes snapshots running builds use: wait for them to finish, then prune again',
        });
      }
      const result = await fn();
      for (const name of dead) await unlink(join(this.#dir, name)).catch(() => undefined);
      return result;
    });
  }
}
