/**
 * Checks of FROM lines against the global (meta) ARGs, as BuildKit runs them before resolving
 * base images: InvalidDefaultArgInFrom, UndefinedArgInFrom, RedundantTargetPlatform and
 * FromPlatformFlagConstDisallowed. They cover every stage, built or not.
 */
import { parseImageReference, parsePlatform } from '@kiln/llb-core';
import { suggest } from '../errors.js';
import type { ParsedDockerfile } from '../instructions/parse.js';
import type { Stage } from '../instructions/commands.js';
import type { ShellLex } from '../shell/lex.js';
import type { ArgValue } from '../convert/dispatch-state.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

/** What the FROM checks read. */
export interface FromCheckInput {
  /** The automatic platform ARGs, build args applied (the conversion's first meta ARGs). */
  readonly platformArgs: readonly ArgValue[];
  /** Every meta ARG after build args and defaults were applied (platform ARGs first). */
  readonly metaArgs: readonly ArgValue[];
  readonly shlex: ShellLex;
}

function defined(args: readonly ArgValue[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const a of args) if (a.value !== undefined) env.set(a.key, a.value);
  return env;
}

/**
 * InvalidDefaultArgInFrom: with no build args at all (only the ARG defaults), does every base
 * name still expand to a valid image reference? An expansion error abandons the check (the build
 * reports it).
 */
function checkDefaultBaseNames(parsed: ParsedDockerfile, input: FromCheckInput, lint: Linter): void {
  if (!lint.enabled(Rules.InvalidDefaultArgInFrom)) return;
  const env = defined(input.platformArgs);
  try {
    for (const cmd of parsed.metaArgs) {
      for (const a of cmd.args) if (a.value !== undefined) env.set(a.key, input.shlex.processWord(a.value, env));
    }
    for (const s of parsed.stages) {
      const name = input.shlex.processWord(s.baseName, env);
      try {
        parseImageReference(name);
      } catch {
        lint.run(Rules.InvalidDefaultArgInFrom, s.location, s.baseName);
      }
    }
  } catch {
    // the conversion fails on the same expansion with a located error
  }
}

function checkPlatform(s: Stage, env: ReadonlyMap<string, string>, declared: ReadonlySet<string>, input: FromCheckInput, lint: Linter): void {
  let r;
  try {
    r = input.shlex.processWordWithMatches(s.platform, env);
  } catch {
    return;
  }
  reportUndeclared(r.unmatched, declared, s, lint);
  if (r.matched.size === 1 && r.unmatched.size === 0 && r.matched.has('TARGETPLATFORM') && r.result === env.get('TARGETPLATFORM')) {
    lint.run(Rules.RedundantTargetPlatform, s.location, s.platform);
  }
  if (r.matched.size === 0 && r.unmatched.size === 0) {
    let p;
    try {
      p = parsePlatform(r.result);
    } catch {
      return; // the conversion rejects it
    }
    // `FROM --platform=linux/arm64 … AS build-arm64` names what it pins: allowed.
    if (s.name.includes(p.os) || s.name.includes(p.architecture)) return;
    lint.run(Rules.FromPlatformFlagConstDisallowed, s.location, r.result);
  }
}

function reportUndeclared(unmatched: ReadonlySet<string>, declared: ReadonlySet<string>, s: Stage, lint: Linter): void {
  for (const name of unmatched) {
    if (declared.has(name)) continue;
    lint.run(Rules.UndefinedArgInFrom, s.location, name, suggest(name, [...declared]) ?? '');
  }
}

/** Run the FROM-line checks for every stage. */
export function checkFromLines(parsed: ParsedDockerfile, input: FromCheckInput, lint: Linter): void {
  checkDefaultBaseNames(parsed, input, lint);
  const env = defined(input.metaArgs);
  const declared = new Set(input.metaArgs.map((a) => a.key));
  for (const s of parsed.stages) {
    try {
      reportUndeclared(input.shlex.processWordWithMatches(s.baseName, env).unmatched, declared, s, lint);
    } catch {
      // reported by the conversion
    }
    if (s.platform !== '') checkPlatform(s, env, declared, input, lint);
  }
}
