import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../instructions/parse.js';
import { DEFAULT_CHECK_CONFIG, Linter } from './linter.js';
import { checkArgDescription, checkDefinitionDescription, checkStageNames } from './stages.js';

function lintNames(text: string): string[] {
  const lint = new Linter(DEFAULT_CHECK_CONFIG, 'Dockerfile');
  checkStageNames(parseDockerfile(text).stages, lint);
  return lint.warnings.map((w) => `${w.location.line}:${w.rule}: ${w.message}`);
}

function lintDescriptions(text: string): string[] {
  const lint = new Linter({ ...DEFAULT_CHECK_CONFIG, experimental: ['InvalidDefinitionDescription'] }, 'Dockerfile');
  const parsed = parseDockerfile(text);
  for (const a of parsed.metaArgs) checkArgDescription(a, lint);
  for (const s of parsed.stages) if (s.name !== '') checkDefinitionDescription('FROM', [s.name], s.node.prevComment, s.location, lint);
  return lint.warnings.map((w) => `${w.location.line}: ${w.message}`);
}

describe('DuplicateStageName', () => {
  test('a name used twice (any case) is reported at the second stage', () => {
    expect(lintNames('FROM scratch AS base\nFROM scratch AS BASE\n')).toEqual(['2:DuplicateStageName: Duplicate stage name "base", stage names should be unique']);
  });
  test('distinct names pass', () => {
    expect(lintNames('FROM scratch AS base\nFROM scratch AS app\nFROM scratch\n')).toEqual([]);
  });
});

describe('ReservedStageName', () => {
  test('context and scratch are reserved', () => {
    expect(lintNames('FROM scratch AS context\nFROM scratch AS Scratch\n')).toEqual([
      '1:ReservedStageName: Stage name should not use the same name as reserved stage "context"',
      '2:ReservedStageName: Stage name should not use the same name as reserved stage "scratch"',
    ]);
  });
  test('names that merely contain them pass', () => {
    expect(lintNames('FROM scratch AS build-context\n')).toEqual([]);
  });
});

describe('InvalidDefinitionDescription (experimental)', () => {
  test('a comment right above ARG/FROM must start with the name', () => {
    expect(lintDescriptions('# the version\nARG VERSION=1\n# compiles things\nFROM scratch AS build\n')).toEqual([
      '2: Comment for ARG should follow the format: `# VERSION <description>`',
      '4: Comment for FROM should follow the format: `# build <description>`',
    ]);
    expect(lintDescriptions('# comment\nARG A B\nFROM scratch\n')).toEqual(['2: Comment for ARG should follow the format: `# <arg_key> <description>`']);
  });
  test('descriptions that name the thing, and comments ended by an empty `#` line, pass', () => {
    expect(lintDescriptions('# VERSION of the app\nARG VERSION=1\n# not a description\n#\nFROM scratch AS build\nFROM scratch AS other\n')).toEqual([]);
  });
});
