/**
 * The check runner (BuildKit's linter.Linter): applies the `# check=` configuration to each
 * violation a rule reports, records the warnings, hands each new one to the caller at once, and
 * turns them into one error at the end when `error=true`.
 */
import { KilnError, type SourceLocation } from '../errors.js';
import type { CheckConfig } from '../parser/directives.js';
import type { Range } from '../parser/ast.js';
import type { CheckRule } from './rules.js';

/** One violation of a build check. */
export interface CheckWarning {
  /** The rule name (`StageNameCasing`), as `# check=skip=` takes it. */
  readonly rule: string;
  /** What the rule enforces. */
  readonly description: string;
  /** The rule's documentation page. */
  readonly url: string;
  /** This violation, in one line. */
  readonly message: string;
  /** Where it starts: file, 1-based line and column. */
  readonly location: SourceLocation;
  /** The instruction's span(s). */
  readonly ranges: readonly Range[];
}

/** Receives each warning once, as soon as it is found. */
export type CheckWarningSink = (warning: CheckWarning) => void;

/** `RuleName: message (url)`: a warning as one line (the CLI prefixes `FILE:LINE:`). */
export function formatCheckWarning(w: CheckWarning): string {
  return `${w.rule}: ${w.message} (${w.url})`;
}

/** The same violation at the same place: reported once when several platforms convert a file. */
export function checkWarningKey(w: CheckWarning): string {
  return `${w.location.line}:${w.location.column}:${formatCheckWarning(w)}`;
}

/** No checks skipped, not fatal: BuildKit's default. */
export const DEFAULT_CHECK_CONFIG: CheckConfig = { skip: [], skipAll: false, experimental: [], experimentalAll: false, error: false };

/** Runs rules against a configuration and collects what they report. */
export class Linter {
  readonly #config: CheckConfig;
  readonly #skip: ReadonlySet<string>;
  readonly #experimental: ReadonlySet<string>;
  readonly #file: string;
  readonly #sink: CheckWarningSink | undefined;
  readonly #seen = new Set<string>();
  readonly #warnings: CheckWarning[] = [];

  constructor(config: CheckConfig, file: string, sink?: CheckWarningSink) {
    this.#config = config;
    this.#skip = new Set(config.skip);
    this.#experimental = new Set(config.experimental);
    this.#file = file;
    this.#sink = sink;
  }

  /** Whether `rule` runs under this configuration (experimental rules must be enabled; others not skipped). */
  enabled(rule: Pick<CheckRule, 'name' | 'experimental'>): boolean {
    if (rule.experimental) return this.#config.experimentalAll || this.#experimental.has(rule.name);
    return !this.#config.skipAll && !this.#skip.has(rule.name);
  }

  /**
   * Report one violation of `rule` at `ranges` (the first range gives the location). Skipped
   * rules cost nothing beyond this call; an identical violation (same rule, message and place)
   * is recorded once.
   */
  run<A extends readonly unknown[]>(rule: CheckRule<A>, ranges: Range | readonly Range[], ...args: A): void {
    if (!this.enabled(rule)) return;
    const list: readonly Range[] = Array.isArray(ranges) ? ranges : [ranges as Range];
    const start = list[0]?.start ?? { line: 1, column: 1 };
    const message = rule.format(...args);
    const key = `${rule.name}\0${message}\0${start.line}:${start.column}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    const w: CheckWarning = {
      rule: rule.name,
      description: rule.description,
      url: rule.url,
      message,
      location: { file: this.#file, line: start.line, column: start.column },
      ranges: list,
    };
    this.#warnings.push(w);
    this.#sink?.(w);
  }

  /** Every warning so far, in the order found. */
  get warnings(): readonly CheckWarning[] {
    return this.#warnings;
  }

  /**
   * With `error=true` and at least one warning: the KilnError KLN0509 the build fails with
   * (BuildKit's "lint violation found for rules: …"), located at the first violation in the file
   * and listing every one with its place and URL. Otherwise undefined.
   */
  error(): KilnError | undefined {
    if (!this.#config.error || this.#warnings.length === 0) return undefined;
    const sorted = [...this.#warnings].sort((a, b) => a.location.line - b.location.line || a.location.column - b.location.column);
    const rules = [...new Set(sorted.map((w) => w.rule))];
    const first = sorted[0] as CheckWarning;
    const list = sorted.map((w) => `  ${w.location.file}:${w.location.line}:${w.location.column}: ${formatCheckWarning(w)}`);
    return new KilnError('KLN0509', `lint violation found for rules: ${rules.join(', ')} (${sorted.length} ${sorted.length === 1 ? 'violation' : 'violations'}, check=error=true)`, {
      location: first.location,
      hint: [`fix each violation, or skip its rule with \`# check=skip=${rules.join(',')}\` (or --build-arg BUILDKIT_DOCKERFILE_CHECK=skip=…):`, ...list].join('\n'),
    });
  }
}
