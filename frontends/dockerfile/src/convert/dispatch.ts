/**
 * The instruction dispatcher (BuildKit's dispatch): expand variables, then hand each command to
 * its module. Also runs ONBUILD triggers inherited from the base image or stage.
 */
import { KilnError } from '../errors.js';
import { expandCommand } from '../instructions/expand.js';
import { parseInstruction } from '../instructions/parse.js';
import type { Command } from '../instructions/commands.js';
import { parse } from '../parser/parser.js';
import { ShellLex } from '../shell/lex.js';
import { dispatchArg } from './arg.js';
import {
  dispatchCmd,
  dispatchEntrypoint,
  dispatchEnv,
  dispatchExpose,
  dispatchHealthcheck,
  dispatchLabel,
  dispatchMaintainer,
  dispatchOnbuild,
  dispatchShell,
  dispatchStopSignal,
  dispatchUser,
  dispatchVolume,
} from './config.js';
import { dispatchAdd, dispatchCopyCommand } from './copy.js';
import { envOf, type DispatchOptions, type DispatchState, type StageCommand } from './dispatch-state.js';
import { dispatchRun } from './run.js';
import { toCommand } from './stage-graph.js';
import { dispatchWorkdir } from './workdir.js';

const rawLex = new ShellLex('\\', { skipProcessQuotes: true });

/** Turn any error into a KilnError located at `at` (the innermost location wins). */
export function locate(e: unknown, file: string, at: { readonly location: { readonly start: { line: number; column: number } }; readonly source?: string }): KilnError {
  const err = e instanceof KilnError ? e : new KilnError(errorCode(e), e instanceof Error ? e.message : String(e), { cause: e });
  return err.withLocation({ file, ...at.location.start }, at.source);
}

function errorCode(e: unknown): 'KLN0504' | 'KLN0505' | 'KLN0405' {
  const code = (e as { code?: unknown }).code;
  if (code === 'LLB_PLATFORM') return 'KLN0505';
  if (code === 'LLB_INVALID_STATE') return 'KLN0504';
  return 'KLN0405';
}

/** Dispatch one command of `d` (variables expanded with the stage's current env). */
export function dispatch(d: DispatchState, sc: StageCommand, opt: DispatchOptions): void {
  const env = envOf(d.state);
  const cmd = expandCommand(
    sc.command,
    { word: (w) => opt.shlex.processWord(w, env), raw: (w) => rawLex.processWord(w, env) },
    opt.file,
  );
  opt.checks?.command(d, sc.command, cmd, env, opt);
  try {
    dispatchExpanded(d, cmd, sc.sources, opt);
  } catch (e) {
    throw locate(e, opt.file, { location: cmd.location, source: cmd.node.original });
  }
}

function dispatchExpanded(d: DispatchState, c: Command, sources: StageCommand['sources'], opt: DispatchOptions): void {
  switch (c.name) {
    case 'maintainer': return dispatchMaintainer(d, c);
    case 'env': return dispatchEnv(d, c);
    case 'run': return dispatchRun(d, c, sources, opt);
    case 'workdir': return dispatchWorkdir(d, c, opt);
    case 'add': return dispatchAdd(d, c, opt);
    case 'copy': return dispatchCopyCommand(d, c, sources, opt);
    case 'label': return dispatchLabel(d, c);
    case 'onbuild': return dispatchOnbuild(d, c);
    case 'cmd': return dispatchCmd(d, c);
    case 'entrypoint': return dispatchEntrypoint(d, c);
    case 'healthcheck': return dispatchHealthcheck(d, c);
    case 'expose': return dispatchExpose(d, c, opt);
    case 'user': return dispatchUser(d, c, true);
    case 'volume': return dispatchVolume(d, c);
    case 'stopsignal': return dispatchStopSignal(d, c);
    case 'shell': return dispatchShell(d, c);
    case 'arg': return dispatchArg(d, c, opt);
    default: {
      const never: never = c;
      throw new KilnError('KLN0401', `unknown instruction ${(never as Command).name}`);
    }
  }
}

/**
 * Run ONBUILD triggers (BuildKit dispatchOnBuildTriggers). Each trigger is parsed as a one-line
 * Dockerfile; errors point at the stage's FROM line.
 */
export function dispatchOnBuildTriggers(d: DispatchState, triggers: readonly string[], opt: DispatchOptions): void {
  const at = { location: d.stage.location, source: d.stage.node.original };
  for (const trigger of triggers) {
    try {
      const ast = parse(trigger, { file: opt.file });
      if (ast.children.length !== 1) throw new KilnError('KLN0406', 'onbuild trigger should be a single expression');
      const ic = parseInstruction(ast.children[0] as (typeof ast.children)[number], { file: opt.file, escapeToken: ast.escapeToken });
      if (ic.name === 'from') throw new KilnError('KLN0406', "FROM isn't allowed as an ONBUILD trigger");
      const moved = { ...ic, location: d.stage.location } as Command;
      dispatch(d, toCommand(moved, opt.states), opt);
    } catch (e) {
      const err = locate(e, opt.file, at);
      err.location = { file: opt.file, ...d.stage.location.start };
      err.source = `${d.stage.node.original} (ONBUILD ${trigger.split('\n')[0] ?? ''})`;
      throw err;
    }
  }
}
