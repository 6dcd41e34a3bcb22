import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../instructions/parse.js';
import { checkFromCasing, checkInstructionCasing } from './casing.js';
import { DEFAULT_CHECK_CONFIG, Linter } from './linter.js';

function lintFrom(text: string): string[] {
  const lint = new Linter(DEFAULT_CHECK_CONFIG, 'Dockerfile');
  for (const s of parseDockerfile(text).stages) checkFromCasing(s, lint);
  return lint.warnings.map((w) => `${w.location.line}:${w.rule}: ${w.message}`);
}

function lintCasing(text: string): string[] {
  const lint = new Linter(DEFAULT_CHECK_CONFIG, 'Dockerfile');
  checkInstructionCasing(parseDockerfile(text).ast.children, lint);
  return lint.warnings.map((w) => `${w.location.line}:${w.location.column}: ${w.message}`);
}

describe('StageNameCasing', () => {
  test('an AS name with upper case is reported with the name as written', () => {
    expect(lintFrom('FROM scratch AS Builder\n')).toEqual(["1:StageNameCasing: Stage name 'Builder' should be lowercase"]);
  });
  test('lower-case names and unnamed stages pass', () => {
    expect(lintFrom('FROM scratch AS builder-1\nFROM scratch\n')).toEqual([]);
  });
});

describe('FromAsCasing', () => {
  test('FROM … as and from … AS are reported', () => {
    expect(lintFrom('FROM scratch as a\nfrom scratch AS b\n')).toEqual([
      "1:FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
      "2:FromAsCasing: 'AS' and 'from' keywords' casing do not match",
    ]);
  });
  test('matching case passes; a mixed-case From is left to ConsistentInstructionCasing', () => {
    expect(lintFrom('FROM scratch AS a\nfrom scratch as b\nFrom scratch as c\n')).toEqual([]);
  });
});

describe('ConsistentInstructionCasing', () => {
  test('the minority case is reported against the majority (upper case)', () => {
    expect(lintCasing('FROM scratch\nCOPY a b\n  run echo\nCMD ["x"]\n')).toEqual(["3:3: Command 'run' should match the case of the command majority (uppercase)"]);
  });
  test('lower-case majority; mixed-case keywords never count and are always reported', () => {
    expect(lintCasing('from scratch\ncopy a b\nRun echo\nCMD ["x"]\n')).toEqual([
      "3:1: Command 'Run' should match the case of the command majority (lowercase)",
      "4:1: Command 'CMD' should match the case of the command majority (lowercase)",
    ]);
  });
  test('a tie goes to upper case', () => {
    expect(lintCasing('from scratch\nCOPY a b\n')).toEqual(["1:1: Command 'from' should match the case of the command majority (uppercase)"]);
  });
  test('a consistently cased file passes; ARGs before the first FROM and ONBUILD triggers do not count', () => {
    expect(lintCasing('FROM scratch AS a\nCOPY a b\nONBUILD run x\n')).toEqual([]);
    expect(lintCasing('arg V=1\narg W=2\nFROM scratch\n')).toEqual([]);
  });
});
