import type { CliIo } from '../io.js';
import { commandConfig } from './config.js';
import { KilnEngine, type EngineOptions } from './engine.js';

/** Where commands get engines: a plain `kiln` process opens one per command; `kiln daemon` keeps them. */
export interface EngineSource {
  /** The engine of `root`, opened if needed. */
  open(opts: EngineOptions): Promise<KilnEngine>;
  /** Whether engines stay open after a command (the daemon's) or close with it. */
  readonly keepsOpen: boolean;
}

/** Opens an engine for each command and closes it after. */
export const perCommandEngines: EngineSource = { open: (opts) => KilnEngine.open(opts), keepsOpen: false };

/** One command's use of an engine: {@link EngineLease.begin} marks a build; `release` ends the use. */
export interface EngineLease {
  readonly engine: KilnEngine;
  /** Marks a build in this root (a prune waits or is refused meanwhile). */
  begin(signal?: AbortSignal): Promise<void>;
  /** Ends the build mark taken by `begin` and, outside the daemon, closes the engine. Idempotent. */
  release(): void;
}

/** The engine for `root` from the command's engine source. */
export async function acquireEngine(io: CliIo, opts: EngineOptions): Promise<EngineLease> {
  const source = io.engines ?? perCommandEngines;
  // The config file's [registry."HOST"] settings (a daemon's engine has its own, read at its start).
  const hosts = commandConfig(io).registry;
  const engine = await source.open({ ...opts, registry: { ...opts.registry, hosts: { ...hosts, ...opts.registry?.hosts } } });
  // A daemon's engine stays open: what another kiln process killed since left is cleaned up now.
  if (source.keepsOpen && engine.activity.killedBuilds()) await engine.recover();
  let began = false;
  let released = false;
  return {
    engine,
    async begin(signal) {
      await engine.activity.begin(signal);
      began = true;
    },
    release() {
      if (released) return;
      released = true;
      // A cancelled build's ops may still run (see KilnEngine.closeWhenSettled): outside the
      // daemon, whose store stays open for them, the mark then ends when they have settled.
      if (began && (source.keepsOpen || engine.opsSettled)) engine.activity.end();
      // A cache mount's size measured in the background is recorded before the store closes.
      if (!source.keepsOpen) void engine.closeWhenSettled();
    },
  };
}
