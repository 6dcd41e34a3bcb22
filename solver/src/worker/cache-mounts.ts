import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheSharingOpt } from '@kiln/llb-core';
import { throwIfCancelled } from '../errors.js';
import { pidAlive, withFileLock } from './file-lock.js';

/** A cache mount directory handed to one exec. */
export interface AcquiredCacheMount {
  readonly dir: string;
  /** True when the directory is new (empty): a `from` input may seed it. */
  readonly created: boolean;
  release(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Persistent cache mount directories (`RUN --mount=type=cache`) under `<root>/solver/cachemounts`,
 * with BuildKit's sharing modes working across processes (concurrent `kiln build`s), not only
 * within one: every user holds a marker file `<dir>.users/<pid>-<random>` and changes to the
 * marker set happen under a short exclusive lock file. `shared` users use the directory together;
 * a `locked` user waits until no one else uses it; a `private` user that finds it in use gets a
 * fresh throw-away directory. Markers of dead processes are ignored and removed.
 */
export class CacheMounts {
  readonly #root: string;
  readonly #pollMs: number;

  constructor(root: string, opts: { pollMs?: number } = {}) {
    this.#root = join(root, 'solver', 'cachemounts');
    this.#pollMs = opts.pollMs ?? 50;
  }

  /** The directory of cache mount `id`. */
  dirOf(id: string): string {
    return join(this.#root, safeName(id));
  }

  /**
   * Removes a cache mount (prune), unless a live process is using it right now (a running build
   * in another `kiln` process): then it is kept and false is returned. Checked under the same lock
   * {@link CacheMounts.acquire} takes, so a directory is never deleted under a running container.
   */
  async remove(id: string): Promise<boolean> {
    const dir = this.dirOf(id);
    await mkdir(this.#root, { recursive: true });
    return withFileLock(`${dir}.lock`, undefined, async () => {
      if ((await this.#liveUsers(`${dir}.users`)) > 0) return false;
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.users`, { recursive: true, force: true });
      return true;
    });
  }

  /**
   * Empties cache mount `id` as BuildKit's Worker.PruneCacheMounts does for an exec that ignores
   * the cache (`--no-cache`, `--no-cache-filter`): every directory of the id, those seeded `from`
   * an input (`<id>:<snapshot>`) too, is removed, so the next user starts empty. A directory a
   * running build uses (another process) is kept as it is: BuildKit hands new users a fresh one
   * while it is in use; kiln's directories are found by name, so it stays shared.
   */
  async prune(id: string): Promise<void> {
    const name = safeName(id);
    const seeded = `${safeName(`${id}:`)}`;
    let names: string[];
    try {
      names = await readdir(this.#root);
    } catch {
      return;
    }
    for (const n of names) {
      if (n !== name && !(n.startsWith(seeded) && !n.includes('.'))) continue;
      const dir = join(this.#root, n);
      await withFileLock(`${dir}.lock`, undefined, async () => {
        if ((await this.#liveUsers(`${dir}.users`)) > 0) return;
        await rm(dir, { recursive: true, force: true });
        await rm(`${dir}.users`, { recursive: true, force: true });
      });
    }
  }

  /**
   * Takes cache mount `id` for one exec with BuildKit's `sharing` mode. `seed` fills a directory
   * that did not exist yet (`from`/`source`), still under the lock, so a concurrent user never sees
   * a half-seeded cache; if it fails the directory is removed again.
   */
  async acquire(id: string, sharing: number, signal?: AbortSignal, seed?: (dir: string) => Promise<void>): Promise<AcquiredCacheMount> {
    const dir = this.dirOf(id);
    const users = `${dir}.users`;
    await mkdir(this.#root, { recursive: true });
    const marker = join(users, `${process.pid}-${randomBytes(6).toString('hex')}`);
    for (;;) {
      throwIfCancelled(signal);
      const outcome = await withFileLock(`${dir}.lock`, signal, async () => {
        const busy = (await this.#liveUsers(users)) > 0;
        if (busy && sharing === CacheSharingOpt.LOCKED) return 'wait' as const;
        if (busy && sharing === CacheSharingOpt.PRIVATE) return 'private' as const;
        // Created under the lock: a concurrent remove() cannot delete it between here and use.
        const created = (await mkdir(dir, { recursive: true })) !== undefined;
        if (created && seed !== undefined) {
          try {
            await seed(dir);
          } catch (err) {
            await rm(dir, { recursive: true, force: true });
            throw err;
          }
        }
        await mkdir(users, { recursive: true });
        await (await open(marker, 'wx')).close();
        return { created };
      });
      if (typeof outcome === 'object') return { dir, created: outcome.created, release: () => unlink(marker).catch(() => undefined) };
      if (outcome === 'private') {
        // In use elsewhere: this exec gets a private, throw-away directory (BuildKit makes a new ref).
        const tmp = await mkdtemp(join(this.#root, `${safeName(id)}.private-`));
        if (seed !== undefined) await seed(tmp);
        return { dir: tmp, created: true, release: () => rm(tmp, { recursive: true, force: true }) };
      }
      await sleep(this.#pollMs);
    }
  }

  async #liveUsers(users: string): Promise<number> {
    let n = 0;
    for (const name of await readdir(users).catch(() => [] as string[])) {
      if (pidAlive(Number(name.split('-')[0]))) n++;
      else await unlink(join(users, name)).catch(() => undefined);
    }
    return n;
  }
}

/**
 * One directory name per id, inside the cache mounts root: every character but [A-Za-z0-9_-] is
 * %-encoded, `.` included, so an id from a raw LLB (`.`, `..`, `x.lock`, `x.users`) can neither
 * leave the root nor collide with the lock and marker names kiln adds.
 */
function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
