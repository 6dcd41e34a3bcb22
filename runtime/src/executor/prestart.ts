import { closeSync, constants, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ExecPreparation } from '../api/executor.js';
import { mkfifoViaHelper } from './process-helper.js';

/** A started runc process. */
export interface Started {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Exit code (128 + signal number when killed by a signal). */
  readonly exit: Promise<number>;
  running(): boolean;
  /** Makes a process started unheld keep the event loop alive from now on. */
  hold(): void;
  /** SIGKILL, while it runs. */
  kill(): void;
}

/** Where a run lives: its container id and bundle directory. */
export interface RunDirs {
  readonly id: string;
  readonly bundle: string;
}

/** What {@link RuncPrestarter} needs from the executor. */
export interface PrestartOptions {
  /** A new container id and bundle path (not yet created). */
  newRun(): RunDirs;
  /** Starts the runc of a run; `held: false` for a process that may wait for input indefinitely. */
  start(run: RunDirs, held: boolean): Promise<Started>;
}

/** Pre-started runc processes kept waiting at most: one for the next step of a chain, one spare. */
const MAX_WAITING = 2;

/**
 * What a runc that is not needed reads instead of a config: not JSON, so it fails at once
 * ("invalid character 'k'") without creating anything.
 */
const DISCARD = 'kiln: not needed\n';

/**
 * A runc started before its container's inputs exist. `runc run` spends ~17 ms (of 60-80 per
 * container here) starting its Go runtime and parsing flags before it reads `config.json`; that
 * file is a FIFO kiln holds open, so runc waits there until {@link PrestartedRunc.deliver} writes
 * the config. The config (it carries secret env values) never touches a disk.
 */
export interface PrestartedRunc extends RunDirs {
  /**
   * Writes `config` to the waiting runc and returns it, held. Undefined when that runc is gone: it
   * has then exited without creating anything, and the caller starts runc itself with the same id
   * and bundle (replacing the FIFO `config.json` and any log it left).
   */
  deliver(config: string): Promise<Started | undefined>;
  /** Gives it up: it reads {@link DISCARD} and exits; the bundle goes once it has. */
  discard(): void;
  /**
   * After a delivered runc exited, in the same turn of the event loop: whether bytes of the
   * config are still in the FIFO, i.e. runc died before it read it and created nothing.
   */
  configUnread(): boolean;
}

/**
 * Keeps runc processes started ahead for announced runs ({@link RuncPrestarter.prepare}): at most
 * {@link MAX_WAITING}, never more than runs announced and not yet taken, so a build that ends
 * leaves none behind. Taken ones are replaced when a container exits ({@link RuncPrestarter.refill}),
 * not when it starts: runc is CPU-bound, and on two cores a runc starting next to a container that
 * is being created slows that one down (spares started there saved 2 ms a step of a chain; started
 * at exits, about 5 % of the chain's time in process). Off when the process helper is unavailable.
 */
export class RuncPrestarter {
  readonly #opts: PrestartOptions;
  readonly #live = new Set<ExecPreparation>();
  readonly #ready: PrestartedRunc[] = [];
  /** Being started; a run that finds none ready takes the oldest of these. */
  readonly #starting: Array<{ readonly runc: Promise<PrestartedRunc | undefined>; claimed: boolean }> = [];
  #off = false;

  constructor(opts: PrestartOptions) {
    this.#opts = opts;
  }

  /** Announces a run: starts a runc for it when fewer are waiting than runs announced. */
  prepare(): ExecPreparation {
    const prep: ExecPreparation = {
      release: () => {
        if (this.#live.delete(prep)) this.#trim();
      },
    };
    this.#live.add(prep);
    this.refill();
    return prep;
  }

  /**
   * A waiting runc for a run (using up `prep`): a ready one, else the oldest one still starting
   * (waiting for it costs no more than starting another); undefined when there is none.
   */
  async take(prep: ExecPreparation | undefined): Promise<PrestartedRunc | undefined> {
    if (prep !== undefined) this.#live.delete(prep);
    const ready = this.#ready.shift();
    const starting = ready === undefined ? this.#starting.find((s) => !s.claimed) : undefined;
    if (starting !== undefined) starting.claimed = true;
    this.#trim();
    return ready ?? (starting === undefined ? undefined : await keepAlive(starting.runc));
  }

  /** Starts runc processes for announced runs that have none waiting (see the class comment). */
  refill(): void {
    while (!this.#off && this.#ready.length + this.#unclaimed() < Math.min(this.#live.size, MAX_WAITING)) {
      const entry = { runc: this.#startOne(), claimed: false };
      this.#starting.push(entry);
      void entry.runc.then((w) => {
        this.#starting.splice(this.#starting.indexOf(entry), 1);
        if (w === undefined || entry.claimed) return;
        this.#ready.push(w);
        this.#trim();
      });
    }
  }

  #unclaimed(): number {
    return this.#starting.filter((s) => !s.claimed).length;
  }

  #trim(): void {
    while (this.#ready.length > 0 && this.#ready.length + this.#unclaimed() > this.#live.size) this.#ready.pop()?.discard();
  }

  async #startOne(): Promise<PrestartedRunc | undefined> {
    const run = this.#opts.newRun();
    const fifo = join(run.bundle, 'config.json');
    let fd: number;
    try {
      mkdirSync(run.bundle, { recursive: true, mode: 0o711 });
      const made = mkfifoViaHelper(fifo);
      if (made === undefined) throw new Error('no process helper');
      await made;
      // Read-write: opening never blocks, and runc's open finds a writer whenever it comes.
      // Non-blocking: a write never stalls the event loop when runc stops reading.
      fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    } catch {
      this.#off = true;
      rmSync(run.bundle, { recursive: true, force: true });
      return undefined;
    }
    return waiting(run, fd, this.#opts.start(run, false).catch(() => undefined));
  }
}

function waiting(run: RunDirs, fd: number, startedP: Promise<Started | undefined>): PrestartedRunc {
  let fed = false;
  let open = true;
  const close = (): void => {
    if (open) closeSync(fd);
    open = false;
  };
  // Closed only once runc has exited: a FIFO drops unread bytes when its last fd closes, and a
  // runc that has not opened it yet would then wait forever. A turn of the event loop later, so
  // that the run can still look for an unread config (configUnread) when it sees the exit.
  const closeAfter = (s: Started | undefined): Promise<void> =>
    (s?.exit ?? Promise.resolve()).then(
      () => new Promise<void>((r) => setImmediate(() => r(close()))),
      () => new Promise<void>((r) => setImmediate(() => r(close()))),
    );
  return {
    ...run,
    discard(): void {
      if (fed) return;
      fed = true;
      // Held until runc has read the marker and gone (a few ms when it waits already): a kiln
      // process ending meanwhile would leave the bundle behind until the next recover().
      void keepAlive(
        startedP.then(async (s) => {
          // The pipe is empty (nothing else was written), so these few bytes fit.
          if (s?.running() === true) writeSync(fd, DISCARD);
          await closeAfter(s);
          rmSync(run.bundle, { recursive: true, force: true });
        }),
      );
    },
    async deliver(config: string): Promise<Started | undefined> {
      if (fed) throw new Error('pre-started runc used twice');
      fed = true;
      const started = await keepAlive(startedP);
      let complete = false;
      if (started?.running() === true) {
        started.hold();
        complete = await writeAll(fd, Buffer.from(config), started);
        // Cut off with runc still reading (a write error): it would wait for the rest.
        if (!complete && started.running()) started.kill();
      }
      const closed = closeAfter(started);
      if (complete) return started;
      await closed;
      return undefined;
    },
    configUnread(): boolean {
      if (!open) return false;
      try {
        return readSync(fd, Buffer.alloc(1), 0, 1, null) > 0;
      } catch {
        return false; // EAGAIN: empty, runc read it all
      }
    },
  };
}

/**
 * Awaits `p` with the event loop held: a run waiting for a runc started unheld must not let the
 * process end (nothing else may be pending while the helper has not answered yet).
 */
async function keepAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => undefined, 1 << 30);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

/** Writes `data` to the non-blocking FIFO while `reader` runs; false when it stopped first or a write failed. */
async function writeAll(fd: number, data: Buffer, reader: Started): Promise<boolean> {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || !reader.running()) return false;
      // A config larger than the pipe (64 KiB): runc is reading it, the rest follows.
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  return true;
}
