/**
 * Build checks of one conversion (BuildKit's Dockerfile linter, Dockerfile ≥ 1.8), in the
 * order BuildKit runs them: parse-time rules, FROM-line rules against the meta ARGs, then the
 * dispatch-time rules as each command is dispatched. Checks only read what the conversion
 * computes: the LLB is the same with or without them.
 */
import type { ParsedDockerfile } from '../instructions/parse.js';
import type { ShellLex } from '../shell/lex.js';
import type { ArgValue, DispatchState } from '../convert/dispatch-state.js';
import { platformArgs, type PlatformOptions } from '../convert/platform-args.js';
import { checkBasePlatforms } from './base-platform.js';
import { CommandChecker } from './commands.js';
import { resolveCheckConfig } from './config.js';
import { checkFromLines } from './from-args.js';
import { Linter, type CheckWarning, type CheckWarningSink } from './linter.js';
import { checkParsed } from './parsed.js';

/** Options of {@link startChecks}. */
export interface StartChecksOptions {
  readonly file: string;
  /** Build args (`BUILDKIT_DOCKERFILE_CHECK` among them overrides `# check=`). */
  readonly buildArgs: ReadonlyMap<string, string>;
  /** Receives each warning once, when found. */
  readonly onWarning?: CheckWarningSink | undefined;
  /** The build context's `.dockerignore` patterns (for CopyIgnoredFile). */
  readonly excludePatterns?: readonly string[] | undefined;
}

/** The checks of one conversion, fed by the converter at each phase. */
export class DockerfileChecks {
  /** The dispatcher's hook (see DispatchOptions.checks). */
  readonly commands: CommandChecker;
  readonly #lint: Linter;
  readonly #parsed: ParsedDockerfile;

  constructor(parsed: ParsedDockerfile, lint: Linter, excludePatterns: readonly string[] = []) {
    this.#parsed = parsed;
    this.#lint = lint;
    this.commands = new CommandChecker(lint, excludePatterns);
  }

  /** FROM-line rules, once the meta ARGs are known (`metaArgs` as the conversion computed them). */
  checkFrom(platforms: PlatformOptions, buildArgs: ReadonlyMap<string, string>, metaArgs: readonly ArgValue[], shlex: ShellLex): void {
    const pa = platformArgs(platforms).map((a) => (buildArgs.has(a.key) ? { key: a.key, value: buildArgs.get(a.key) } : a));
    checkFromLines(this.#parsed, { platformArgs: pa, metaArgs, shlex }, this.#lint);
  }

  /** InvalidBaseImagePlatform, once the reachable base images are resolved. */
  checkBaseImages(states: readonly DispatchState[], reachable: ReadonlySet<DispatchState>, metaEnv: ReadonlyMap<string, string>, shlex: ShellLex): void {
    checkBasePlatforms(states, reachable, metaEnv, shlex, this.#lint);
  }

  /**
   * After dispatch: every warning found (each was already handed to `onWarning`). Throws the
   * KLN0509 error when the configuration says `error=true` and any check fired.
   */
  finish(): readonly CheckWarning[] {
    const err = this.#lint.error();
    if (err !== undefined) throw err;
    return this.#lint.warnings;
  }
}

/**
 * Resolve the check configuration (`BUILDKIT_DOCKERFILE_CHECK`, else `# check=`) and run the
 * parse-time rules. Throws KilnError KLN0102 on an invalid configuration.
 */
export function startChecks(parsed: ParsedDockerfile, text: string, options: StartChecksOptions): DockerfileChecks {
  const lint = new Linter(resolveCheckConfig(text, options.buildArgs, options.file), options.file, options.onWarning);
  checkParsed(parsed, lint);
  return new DockerfileChecks(parsed, lint, options.excludePatterns);
}
