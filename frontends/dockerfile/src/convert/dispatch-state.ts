/**
 * Per-stage conversion state (BuildKit's dispatchState) and what every dispatcher shares
 * (dispatchOpt): the build context, meta ARGs, build args, the shell lexer and caps.
 */
import type { Platform, State, UlimitSpec } from '@kiln/llb-core';
import { formatPlatform } from '@kiln/llb-core';
import type { Range } from '../parser/ast.js';
import { ShellLex } from '../shell/lex.js';
import type { Command, Stage } from '../instructions/commands.js';
import type { DockerImage } from './image.js';
import type { CommandChecks } from '../lint/commands.js';

/** An ARG as seen by a stage: name and value (undefined when declared without any). */
export interface ArgValue {
  readonly key: string;
  readonly value: string | undefined;
}

/** A stage command plus the stages it reads from (`COPY --from`, `RUN --mount=from=`). */
export interface StageCommand {
  readonly command: Command;
  /** For COPY: `[source]`; for RUN: one entry per `--mount`, undefined when none. */
  readonly sources: readonly (DispatchState | undefined)[];
}

/** One stage being converted (BuildKit's dispatchState). */
export class DispatchState {
  /** Base name after meta-ARG expansion (then the pinned reference, once resolved). */
  baseName: string;
  /** The progress name: the AS name, `stage-N`, or `''` for a lone stage. */
  stageName: string;
  platform: Platform | undefined;
  state!: State;
  image!: DockerImage;
  /** The stage this one is `FROM`. */
  base: DispatchState | undefined;
  readonly deps = new Map<DispatchState, Command>();
  buildArgs: ArgValue[] = [];
  commands: StageCommand[] = [];
  /** Build-context paths this stage reads. */
  readonly ctxPaths = new Set<string>();
  /** True once dispatched (BuildKit's noinit). */
  dispatched = false;
  /** Implicit stage for `COPY --from=<image>` / mount `from=<image>`. */
  readonly unregistered: boolean;
  cmdIndex = 0;
  cmdTotal = 0;
  /** A CMD was seen (ENTRYPOINT then keeps it). */
  cmdSet = false;
  /** `--no-cache` for this stage: its RUN and COPY/ADD ops ignore the cache. */
  ignoreCache = false;
  /** True when the base came from a named context (no image resolution). */
  fromNamedContext = false;

  constructor(
    readonly stage: Stage,
    opts: { baseName: string; stageName: string; unregistered?: boolean },
  ) {
    this.baseName = opts.baseName;
    this.stageName = opts.stageName;
    this.unregistered = opts.unregistered === true;
  }

  /** The `AS` name, lower case (`''` when unnamed). */
  get name(): string {
    return this.stage.name;
  }
}

/** All stages, with the lookup rules of BuildKit's dispatchStates. */
export class DispatchStates {
  readonly states: DispatchState[] = [];
  /** Implicit stages (`COPY --from=<image>`, mount sources) by base name. */
  readonly implicit = new Map<string, DispatchState>();
  private readonly byName = new Map<string, DispatchState>();

  /** Adds a stage; a stage whose base names an earlier stage gets it as `base`. */
  add(ds: DispatchState): void {
    if (this.states.includes(ds)) return;
    this.states.push(ds);
    const base = this.byName.get(ds.baseName);
    if (base !== undefined) ds.base = base;
    if (ds.name !== '') this.byName.set(ds.name.toLowerCase(), ds);
  }

  findByName(name: string): DispatchState | undefined {
    return this.byName.get(name.toLowerCase());
  }

  findByIndex(index: number): DispatchState | undefined {
    return index >= 0 && index < this.states.length ? this.states[index] : undefined;
  }

  /** Display names of every stage that has one (for hints). */
  names(): string[] {
    return this.states.filter((s) => s.name !== '').map((s) => s.name);
  }
}

/** Receives source locations of the ops a command creates (for Definition.source). */
export type LocationSink = (customName: string, ranges: readonly Range[]) => void;

/** Options every dispatcher reads (BuildKit's dispatchOpt). */
export interface DispatchOptions {
  readonly file: string;
  readonly states: DispatchStates;
  readonly metaArgs: readonly ArgValue[];
  readonly buildArgValues: ReadonlyMap<string, string>;
  readonly shlex: ShellLex;
  /** The build context (`local://context`), or the `context` named context. */
  readonly buildContext: State;
  readonly proxyEnv: ProxyEnvValues | undefined;
  readonly cacheIdNamespace: string;
  readonly targetPlatform: Platform;
  readonly buildPlatforms: readonly Platform[];
  readonly caps: ReadonlySet<string>;
  readonly multiPlatform: boolean;
  readonly location: LocationSink;
  readonly extraHosts: readonly { readonly host: string; readonly ip: string }[];
  readonly shmSize: number;
  readonly ulimits: readonly UlimitSpec[];
  readonly cgroupParent: string;
  /** Next `COPY --link` progress group id. */
  nextProgressGroup(): string;
  /** Build checks run on each dispatched command (they never change the state). */
  readonly checks?: CommandChecks;
}

/** Proxy build args passed to execs outside their env. */
export interface ProxyEnvValues {
  httpProxy?: string;
  httpsProxy?: string;
  ftpProxy?: string;
  noProxy?: string;
  allProxy?: string;
}

/** The environment of a state as the shell lexer sees it. */
export function envOf(state: State): Map<string, string> {
  // States share their values object until a value changes: one Map per distinct env.
  const values = state.values;
  let m = envCache.get(values);
  if (m === undefined) {
    m = new Map(values.env.map(([k, v]) => [k, v] as const));
    envCache.set(values, m);
  }
  return m;
}
const envCache = new WeakMap<State['values'], Map<string, string>>();

/** BuildKit's uppercaseCmd: upper-case the first word. */
export function uppercaseCmd(s: string): string {
  const i = s.indexOf(' ');
  return i < 0 ? s.toUpperCase() : s.slice(0, i).toUpperCase() + s.slice(i);
}

/** BuildKit's processCmdEnv: expand variables in a progress name; on error keep it as is. */
export function processCmdEnv(lex: ShellLex, cmd: string, env: Map<string, string>): string {
  try {
    return lex.processWord(cmd, env);
  } catch {
    return cmd;
  }
}

/** The lexer BuildKit uses for RUN progress names (raw quotes, unset variables kept). */
export function runNameLex(lex: ShellLex): ShellLex {
  return new ShellLex(lex.escapeToken, { rawQuotes: true, skipUnsetEnv: true });
}

function platformFromEnv(env: Map<string, string>): Platform | undefined {
  const tp = env.get('TARGETPLATFORM');
  if (tp !== undefined) {
    const [os, architecture, variant] = tp.split('/');
    if (os && architecture) return variant ? { os, architecture, variant } : { os, architecture };
  }
  const os = env.get('TARGETOS');
  const arch = env.get('TARGETARCH');
  const variant = env.get('TARGETVARIANT');
  if (os === undefined && arch === undefined && variant === undefined) return undefined;
  return { os: os ?? '', architecture: arch ?? '', ...(variant ? { variant } : {}) };
}

function formatTargetPlatform(base: Platform, target: Platform | undefined): string {
  if (target === undefined) return '';
  const p = { os: target.os || base.os, architecture: target.architecture || base.architecture, variant: target.variant };
  if (p.os === base.os && p.architecture !== base.architecture) return `->${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
  if (p.os !== base.os) return `->${formatPlatform(p.variant ? { os: p.os, architecture: p.architecture, variant: p.variant } : p)}`;
  return '';
}

/**
 * BuildKit's prefixCommand: `[stage i/n] text` (plus the platform for multi-platform builds).
 * Increments the stage's command index, as BuildKit does, even beyond the total.
 */
export function prefixCommand(ds: DispatchState, text: string, prefixPlatform: boolean, platform: Platform | undefined, env?: Map<string, string>): string {
  if (ds.cmdTotal === 0) return text;
  let out = '[';
  if (prefixPlatform && platform !== undefined) out += `${formatPlatform(platform)}${formatTargetPlatform(platform, env === undefined ? undefined : platformFromEnv(env))} `;
  if (ds.stageName !== '') out += `${ds.stageName} `;
  ds.cmdIndex++;
  const width = Math.floor(1 + Math.log10(ds.cmdTotal));
  out += `${String(ds.cmdIndex).padStart(width, ' ')}/${ds.cmdTotal}] `;
  return out + text;
}

/** Anything with a location in the Dockerfile. */
export interface Located {
  readonly location: Range;
}
