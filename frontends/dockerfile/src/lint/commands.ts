/**
 * The checks BuildKit runs while dispatching a stage's commands (so only for stages the build
 * reaches, ONBUILD triggers included): JSONArgsRecommended, MultipleInstructionsDisallowed,
 * LegacyKeyValueFormat, SecretsUsedInArgOrEnv, WorkdirRelativePath, ExposeProtoCasing,
 * ExposeInvalidFormat, UndefinedVar and CopyIgnoredFile. They read the stage as it is at that command (SHELL,
 * environment, declared ARGs) and never change it.
 */
import { LlbError, PatternMatcher, cleanPath } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import type { AddCommand, Command, CopyCommand, ExposeCommand } from '../instructions/commands.js';
import { parseGitRef } from '../convert/git-ref.js';
import type { Range } from '../parser/ast.js';
import type { DispatchOptions, DispatchState } from '../convert/dispatch-state.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';
import { isSecretName } from './secrets.js';
import { checkArgDefaults, checkUndefinedVars } from './undefined-var.js';

/** What one stage's checks remember between its commands. */
interface StageMemory {
  /** An absolute WORKDIR was set in this build (this stage or a base stage). */
  workdirSet: boolean;
  /** Where the last CMD / ENTRYPOINT / HEALTHCHECK of the stage is. */
  readonly last: Map<'cmd' | 'entrypoint' | 'healthcheck', Range>;
}

/** The hook the dispatcher calls for each command (see {@link CommandChecker}). */
export interface CommandChecks {
  /** A dispatch pass starts: what earlier passes saw is forgotten. */
  beginPass(): void;
  /** `raw` (as written) is about to be dispatched as `expanded`, with `env` the stage's env before it. */
  command(d: DispatchState, raw: Command, expanded: Command, env: ReadonlyMap<string, string>, opt: DispatchOptions): void;
}

/** The `.dockerignore` matcher; a malformed pattern is the user's to fix, so it says where. */
function ignoreMatcher(patterns: readonly string[]): PatternMatcher {
  try {
    return new PatternMatcher(patterns);
  } catch (e) {
    if (e instanceof LlbError) throw new KilnError('KLN0510', `.dockerignore: ${e.message}`, { hint: 'fix the pattern (Go filepath.Match syntax plus **) or remove it' });
    throw e;
  }
}

function isAbs(path: string, os: string): boolean {
  return os === 'windows' ? /^(?:[a-zA-Z]:)?[\\/]/.test(path) : path.startsWith('/');
}

/** Runs the dispatch-time checks into a {@link Linter}. */
export class CommandChecker implements CommandChecks {
  readonly #lint: Linter;
  readonly #ignore: readonly string[];
  #ignoreMatcher: PatternMatcher | undefined;
  #stages = new WeakMap<DispatchState, StageMemory>();

  constructor(lint: Linter, ignore: readonly string[] = []) {
    this.#lint = lint;
    this.#ignore = ignore;
  }

  beginPass(): void {
    this.#stages = new WeakMap();
  }

  #memory(d: DispatchState): StageMemory {
    let m = this.#stages.get(d);
    if (m === undefined) {
      // A stage built FROM another inherits whether a WORKDIR was set (BuildKit's init()).
      m = { workdirSet: d.base === undefined ? false : this.#memory(d.base).workdirSet, last: new Map() };
      this.#stages.set(d, m);
    }
    return m;
  }

  /** MultipleInstructionsDisallowed reports the earlier instruction: that is the one ignored. */
  #usedOnce(d: DispatchState, c: Command & { name: 'cmd' | 'entrypoint' | 'healthcheck' }): void {
    const last = this.#memory(d).last;
    const prev = last.get(c.name);
    if (prev !== undefined) this.#lint.run(Rules.MultipleInstructionsDisallowed, prev, c.node.keyword);
    last.set(c.name, c.location);
  }

  #expose(c: ExposeCommand, env: ReadonlyMap<string, string>, opt: DispatchOptions): void {
    const lint = this.#lint;
    for (const spec of c.ports) {
      // nothing to report without a variable, a colon or an upper-case letter (`80`, `53/udp`)
      if (!/[$:A-Z]/.test(spec)) continue;
      let ports: string[];
      try {
        ports = spec.includes('$') ? opt.shlex.processWords(spec, env) : [spec];
      } catch {
        return;
      }
      for (const port of ports) {
        // docker/go-connections nat.ParsePortSpec: [ip:[hostPort]:]containerPort[/proto]
        const parts = port.split(':');
        const proto = (parts[parts.length - 1] ?? '').split('/')[1] ?? '';
        if (proto !== proto.toLowerCase()) lint.run(Rules.ExposeProtoCasing, c.location, port);
        // an IP or a host port before the container port
        if (parts.length > 3 || parts.slice(0, -1).some((x) => x !== '')) lint.run(Rules.ExposeInvalidFormat, c.location, port);
      }
    }
  }

  /**
   * CopyIgnoredFile: a context path a COPY (without --from) or ADD names that `.dockerignore`
   * excludes, so the build cannot see it. As BuildKit does, nothing is reported when the ignore
   * file has `!` exceptions: an excluded directory may still hold re-included files.
   */
  #copyIgnored(c: CopyCommand | AddCommand): void {
    if (this.#ignore.length === 0 || !this.#lint.enabled(Rules.CopyIgnoredFile)) return;
    this.#ignoreMatcher ??= ignoreMatcher(this.#ignore);
    if (this.#ignoreMatcher.exclusions) return;
    const cmd = c.name === 'add' ? 'Add' : 'Copy';
    for (const raw of c.sourcePaths) {
      if (c.name === 'add' && (/^https?:\/\//.test(raw) || parseGitRef(raw) !== undefined)) continue;
      const src = cleanPath(raw);
      if (this.#ignoreMatcher.matchesOrParentMatches(src)) this.#lint.run(Rules.CopyIgnoredFile, c.location, cmd, src);
    }
  }

  command(d: DispatchState, raw: Command, c: Command, env: ReadonlyMap<string, string>, opt: DispatchOptions): void {
    const lint = this.#lint;
    switch (c.name) {
      case 'cmd':
      case 'entrypoint':
        this.#usedOnce(d, c);
        if (c.prependShell && (d.image.config.Shell ?? []).length === 0) lint.run(Rules.JSONArgsRecommended, c.location, c.node.keyword);
        break;
      case 'healthcheck':
        this.#usedOnce(d, c);
        break;
      case 'env':
        for (const p of c.env) {
          if (p.noDelim) lint.run(Rules.LegacyKeyValueFormat, c.location, c.node.keyword);
          if (isSecretName(p.key)) lint.run(Rules.SecretsUsedInArgOrEnv, c.location, 'ENV', p.key);
        }
        break;
      case 'label':
        for (const p of c.labels) if (p.noDelim) lint.run(Rules.LegacyKeyValueFormat, c.location, c.node.keyword);
        break;
      case 'workdir': {
        const m = this.#memory(d);
        // Only the first WORKDIR matters: fixing it fixes every relative one after it.
        if (!m.workdirSet && !isAbs(c.path, d.platform?.os ?? opt.targetPlatform.os)) lint.run(Rules.WorkdirRelativePath, c.location, c.path);
        m.workdirSet = true;
        break;
      }
      case 'expose':
        this.#expose(c, env, opt);
        break;
      case 'copy':
        if (c.from === '') this.#copyIgnored(c);
        break;
      case 'add':
        this.#copyIgnored(c);
        break;
      default:
    }
    if (raw.name === 'arg') {
      for (const a of raw.args) if (isSecretName(a.key)) lint.run(Rules.SecretsUsedInArgOrEnv, raw.location, 'ARG', a.key);
      if (lint.enabled(Rules.UndefinedVar)) checkArgDefaults(d, raw, env, opt, opt.shlex, lint);
    } else if (lint.enabled(Rules.UndefinedVar)) checkUndefinedVars(d, raw, env, opt.shlex, lint);
  }
}
