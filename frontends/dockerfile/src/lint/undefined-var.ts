/**
 * UndefinedVar: variables a command expands that are neither in the stage's environment nor
 * declared by an ARG. The words are the ones the conversion expands (BuildKit's Expand and
 * ExpandRaw, see {@link expandCommand}); shell-form RUN/CMD/ENTRYPOINT are the shell's business
 * and never checked.
 */
import { suggest } from '../errors.js';
import { expandCommand } from '../instructions/expand.js';
import type { ArgCommand, Command } from '../instructions/commands.js';
import { ShellLex } from '../shell/lex.js';
import type { ArgValue, DispatchState } from '../convert/dispatch-state.js';
import { NON_ENV_ARGS } from '../convert/names.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

/** Build args BuildKit keeps out of the environment; never "undefined". */

const rawLex = new ShellLex('\\', { skipProcessQuotes: true });

/** ARG names the stage has declared so far, its base stages' included (BuildKit's d.buildArgs). */
export function declaredArgs(d: DispatchState): Set<string> {
  const out = new Set<string>();
  for (let s: DispatchState | undefined = d; s !== undefined; s = s.base) for (const a of s.buildArgs) out.add(a.key);
  return out;
}

function report(cmd: Command, unmatched: Iterable<string>, declared: ReadonlySet<string>, env: ReadonlyMap<string, string>, lint: Linter): void {
  let options: string[] | undefined;
  for (const name of unmatched) {
    if (declared.has(name) || NON_ENV_ARGS.has(name)) continue;
    options ??= [...env.keys()];
    lint.run(Rules.UndefinedVar, cmd.location, name, suggest(name, options) ?? '');
  }
}

/** Whether the words the conversion expands hold a `$` (most do not: nothing to check). */
function mentionsVariable(cmd: Command): boolean {
  // RUN expands only its --mount options; its command line is the shell's.
  if (cmd.name === 'run') return cmd.mountSpecs.some((w) => w.value.includes('$'));
  return cmd.node.original.includes('$') || cmd.node.heredocs.some((h) => h.content.includes('$'));
}

/** UndefinedVar for any command but ARG, expanded with `env` (the state's env before it). */
export function checkUndefinedVars(d: DispatchState, cmd: Command, env: ReadonlyMap<string, string>, shlex: ShellLex, lint: Linter): void {
  if (cmd.name === 'arg' || !cmd.expands || !mentionsVariable(cmd)) return;
  const unmatched = new Set<string>();
  const collect = (lex: ShellLex) => (w: string): string => {
    const r = lex.processWordWithMatches(w, env);
    for (const n of r.unmatched) unmatched.add(n);
    return r.result;
  };
  try {
    expandCommand(cmd, { word: collect(shlex), raw: collect(rawLex) });
  } catch {
    // the conversion fails on the same word with a located error
  }
  if (unmatched.size > 0) report(cmd, unmatched, declaredArgs(d), env, lint);
}

/** What an in-stage ARG resolves against (BuildKit's dispatchArg inputs). */
export interface ArgScope {
  readonly buildArgValues: ReadonlyMap<string, string>;
  readonly metaArgs: readonly ArgValue[];
}

/**
 * UndefinedVar for an ARG: only a default that is used (no build arg overrides it) is expanded,
 * each with the names declared before it, in the same instruction too (`ARG A=1 B=$A`).
 */
export function checkArgDefaults(d: DispatchState, cmd: ArgCommand, env: ReadonlyMap<string, string>, scope: ArgScope, shlex: ShellLex, lint: Linter): void {
  if (!mentionsVariable(cmd)) return;
  const declared = declaredArgs(d);
  const local = new Map(env);
  for (const a of cmd.args) {
    let value: string | undefined;
    if (scope.buildArgValues.has(a.key)) value = scope.buildArgValues.get(a.key);
    else if (a.value !== undefined) {
      let r;
      try {
        r = shlex.processWordWithMatches(a.value, local);
      } catch {
        return;
      }
      report(cmd, r.unmatched, declared, local, lint);
      value = r.result;
    } else value = scope.metaArgs.findLast((m) => m.key === a.key)?.value;
    if (value !== undefined) local.set(a.key, value);
    declared.add(a.key);
  }
}
