import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../instructions/parse.js';
import { DEFAULT_CHECK_CONFIG, Linter } from './linter.js';
import { checkParsed } from './parsed.js';

function lint(text: string): string[] {
  const l = new Linter(DEFAULT_CHECK_CONFIG, 'Dockerfile');
  checkParsed(parseDockerfile(text), l);
  return l.warnings.map((w) => `${w.location.line}:${w.location.column} ${w.rule}: ${w.message}`);
}

describe('parse-time checks', () => {
  test('NoEmptyContinuation: an empty line inside a continuation, at the instruction', () => {
    expect(lint('FROM scratch\nCOPY a \\\n\n  b /\n')).toEqual(['2:1 NoEmptyContinuation: Empty continuation line']);
  });
  test('a comment line inside a continuation is not empty', () => {
    expect(lint('FROM scratch\nCOPY a \\\n# note\n  b /\n')).toEqual([]);
  });
  test('MaintainerDeprecated, in every stage (built or not)', () => {
    expect(lint('FROM scratch AS a\nMAINTAINER me\nFROM scratch\nLABEL org.opencontainers.image.authors=me\n')).toEqual(['2:1 MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label']);
  });
  test('all parse-time rules together, in file order within each rule family', () => {
    expect(lint('FROM scratch as Base\nFROM scratch AS base\nrun x\n')).toEqual([
      "1:1 StageNameCasing: Stage name 'Base' should be lowercase",
      "1:1 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
      '2:1 DuplicateStageName: Duplicate stage name "base", stage names should be unique',
      "3:1 ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase)",
    ]);
  });
  test('a clean file passes', () => {
    expect(lint('ARG V=1\nFROM scratch AS build\nCOPY a /\nCMD ["/a"]\n')).toEqual([]);
  });
});
