import { describe, expect, test } from 'vitest';
import { KilnError } from '../errors.js';
import type { CheckConfig } from '../parser/directives.js';
import { DEFAULT_CHECK_CONFIG, Linter, formatCheckWarning, type CheckWarning } from './linter.js';
import { Rules } from './rules.js';

const at = (line: number, column = 1) => ({ start: { line, column }, end: { line, column: column + 3 } });
const cfg = (c: Partial<CheckConfig>): CheckConfig => ({ ...DEFAULT_CHECK_CONFIG, ...c });

describe('Linter', () => {
  test('records a violation with rule, message, location and URL, and hands it to the sink once', () => {
    const sink: CheckWarning[] = [];
    const lint = new Linter(DEFAULT_CHECK_CONFIG, 'build.Dockerfile', (w) => sink.push(w));
    lint.run(Rules.StageNameCasing, at(3, 2), 'Build');
    lint.run(Rules.StageNameCasing, at(3, 2), 'Build'); // the same violation again
    expect(lint.warnings).toEqual([
      {
        rule: 'StageNameCasing',
        description: 'Stage names should be lowercase',
        url: 'https://docs.docker.com/go/dockerfile/rule/stage-name-casing/',
        message: "Stage name 'Build' should be lowercase",
        location: { file: 'build.Dockerfile', line: 3, column: 2 },
        ranges: [at(3, 2)],
      },
    ]);
    expect(sink).toEqual(lint.warnings);
    expect(formatCheckWarning(sink[0] as CheckWarning)).toBe("StageNameCasing: Stage name 'Build' should be lowercase (https://docs.docker.com/go/dockerfile/rule/stage-name-casing/)");
  });

  test('skip=RULE silences that rule only; skip=all every stable rule', () => {
    const some = new Linter(cfg({ skip: ['StageNameCasing'] }), 'Dockerfile');
    some.run(Rules.StageNameCasing, at(1), 'A');
    some.run(Rules.MaintainerDeprecated, at(2));
    expect(some.warnings.map((w) => w.rule)).toEqual(['MaintainerDeprecated']);
    const all = new Linter(cfg({ skipAll: true }), 'Dockerfile');
    all.run(Rules.StageNameCasing, at(1), 'A');
    all.run(Rules.MaintainerDeprecated, at(2));
    expect(all.warnings).toEqual([]);
  });

  test('experimental rules run only when enabled by name or with experimental=all (skip=all does not cover them)', () => {
    const run = (c: Partial<CheckConfig>) => {
      const lint = new Linter(cfg(c), 'Dockerfile');
      lint.run(Rules.InvalidDefinitionDescription, at(1), 'ARG', 'foo');
      return lint.warnings.length;
    };
    expect(run({})).toBe(0);
    expect(run({ experimental: ['InvalidDefinitionDescription'] })).toBe(1);
    expect(run({ experimentalAll: true, skipAll: true })).toBe(1);
  });

  test('error() is undefined unless error=true and something fired', () => {
    const quiet = new Linter(cfg({ error: true }), 'Dockerfile');
    expect(quiet.error()).toBeUndefined();
    const warnOnly = new Linter(DEFAULT_CHECK_CONFIG, 'Dockerfile');
    warnOnly.run(Rules.MaintainerDeprecated, at(2));
    expect(warnOnly.error()).toBeUndefined();
  });

  test('error() names every violation with FILE:LINE:COL, located at the first one in the file', () => {
    const lint = new Linter(cfg({ error: true }), 'Dockerfile');
    lint.run(Rules.MaintainerDeprecated, at(5, 1));
    lint.run(Rules.StageNameCasing, at(2, 1), 'Build');
    const err = lint.error();
    expect(err).toBeInstanceOf(KilnError);
    expect(err).toMatchObject({ code: 'KLN0509', location: { file: 'Dockerfile', line: 2, column: 1 } });
    expect(err?.message).toBe('lint violation found for rules: StageNameCasing, MaintainerDeprecated (2 violations, check=error=true)');
    expect(err?.hint?.split('\n')).toEqual([
      'fix each violation, or skip its rule with `# check=skip=StageNameCasing,MaintainerDeprecated` (or --build-arg BUILDKIT_DOCKERFILE_CHECK=skip=…):',
      "  Dockerfile:2:1: StageNameCasing: Stage name 'Build' should be lowercase (https://docs.docker.com/go/dockerfile/rule/stage-name-casing/)",
      '  Dockerfile:5:1: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/)',
    ]);
  });
});
