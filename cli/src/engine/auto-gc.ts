import { formatBytes } from '@kiln/solver';
import { callerEnv, type CliIo } from '../io.js';
import type { KilnEngine } from './engine.js';
import { commandConfig } from './config.js';
import { gcDue, resolveGcPolicy, type GcPolicy } from './gc-policy.js';
import { acquireEngine } from './lease.js';

/** The environment variable with the automatic GC's cap (`0` / `off`: no automatic GC). */
export const GC_KEEP_STORAGE_ENV = 'KILN_GC_KEEP_STORAGE';

/**
 * The automatic GC after a build of a plain `kiln` process, as buildkitd collects after builds:
 * decided now (while the build's engine is open: one SQL SUM, see gcDue) and returned as a step
 * to run once the build mark is gone and the results are delivered; undefined when nothing is due.
 * In `kiln daemon` (remote io) the daemon collects after the client has its answer instead, with
 * its own policy. Never throws: a malformed `KILN_GC_KEEP_STORAGE` is a warning.
 */
export function gcAfterBuild(engine: KilnEngine, io: CliIo): (() => Promise<void>) | undefined {
  if (io.remote === true) return undefined;
  let policy: GcPolicy | undefined;
  try {
    // KILN_GC_KEEP_STORAGE over the config file's [worker.oci] (the build has read the file already).
    policy = resolveGcPolicy({ env: callerEnv(io)[GC_KEEP_STORAGE_ENV], file: commandConfig(io).gc }, engine.root);
  } catch (e) {
    io.stderr.write(`WARNING: ${GC_KEEP_STORAGE_ENV}: ${e instanceof Error ? e.message : String(e)}; no automatic GC\n`);
    return undefined;
  }
  try {
    if (policy === undefined || !gcDue(policy, engine.cache, Date.now())) return undefined;
  } catch (e) {
    // The cache store could not be read (the build itself is done): no GC this time.
    io.stderr.write(`WARNING: automatic build cache GC failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return undefined;
  }
  const due = policy;
  return async () => {
    try {
      // The build's own engine is closed by now (plain process): this one is opened for the GC.
      const lease = await acquireEngine(io, { root: engine.root });
      try {
        const { collectGarbage } = await import('../commands/prune.js');
        await collectGarbage(lease.engine, due);
      } finally {
        lease.release();
      }
    } catch (e) {
      io.stderr.write(`WARNING: automatic build cache GC failed: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  };
}

/**
 * The automatic GC of `kiln daemon`: after each build command has answered its client, one GC run
 * at a time; a build that ends while one runs asks for another pass after it. A run while another
 * build of the daemon is in progress does nothing (prune's exclusion); the next build's end tries again.
 */
export class DaemonGc {
  readonly #policy: GcPolicy;
  readonly #log: ((line: string) => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(policy: GcPolicy, log?: (line: string) => void) {
    this.#policy = policy;
    this.#log = log;
  }

  /** Schedules a GC pass over `engine` (returns at once). */
  afterBuild(engine: KilnEngine): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#pass(engine);
      } while (this.#again && !this.#stopped);
    })().finally(() => (this.#running = undefined));
  }

  /**
   * No more passes (the daemon is stopping): the builds it interrupts end without starting one,
   * so a SIGTERM is not followed by a whole prune. A pass already running finishes (see idle).
   */
  stop(): void {
    this.#stopped = true;
    this.#again = false;
  }

  /** Resolves once no pass runs (before the daemon closes its engine). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async #pass(engine: KilnEngine): Promise<void> {
    try {
      const t0 = performance.now();
      const { collectGarbage } = await import('../commands/prune.js');
      const removed = await collectGarbage(engine, this.#policy);
      if (removed !== undefined && removed.length > 0) {
        this.#log?.(`gc: removed ${removed.length} records, ${formatBytes(removed.reduce((n, r) => n + r.size, 0))} in ${Math.round(performance.now() - t0)} ms (keep ${formatBytes(this.#policy.keepBytes)})`);
      }
    } catch (e) {
      this.#log?.(`gc failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
