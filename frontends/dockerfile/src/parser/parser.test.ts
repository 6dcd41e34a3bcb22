import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError, formatError } from '../errors.js';
import { DirectiveParser, detectSyntax, parseCheckDirective, parseDirective } from './directives.js';
import { dump } from './dump.js';
import { chompHeredocContent, parse } from './parser.js';

const DIR = '/work/shared/conformance/dockerfile-parser';

describe('parser conformance: testfiles', () => {
  const cases = readdirSync(`${DIR}/testfiles`).sort();
  it('has all 33 cases', () => expect(cases.length).toBe(33));
  it.for(cases)('%s', (c) => {
    const text = readFileSync(`${DIR}/testfiles/${c}/Dockerfile`, 'utf8');
    const expected = readFileSync(`${DIR}/testfiles/${c}/result`, 'utf8');
    expect(dump(parse(text).children) + '\n').toBe(expected);
  });
});

describe('parser conformance: testfiles-negative', () => {
  const expectedLine: Record<string, number> = { empty_dockerfile: 1, only_comments: 3, env_no_value: 3, 'shykes-nested-json': 1 };
  const cases = readdirSync(`${DIR}/testfiles-negative`).sort();
  it('has all 4 cases', () => expect(cases.length).toBe(4));
  it.for(cases)('%s', (c) => {
    const text = readFileSync(`${DIR}/testfiles-negative/${c}/Dockerfile`, 'utf8');
    let err: unknown;
    try {
      parse(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    const k = err as KilnError;
    expect(k.location?.line).toBeGreaterThanOrEqual(1);
    if (expectedLine[c] !== undefined) expect(k.location?.line).toBe(expectedLine[c]);
    expect(formatError(k)).toMatch(/^Dockerfile:\d+:\d+: /);
  });
});

function parseError(text: string): KilnError {
  try {
    parse(text);
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error('expected a parse error');
}

describe('parse', () => {
  it('puts positions on instructions, flags and args', () => {
    const r = parse('FROM alpine\n\n  COPY --from=a \\\n   --chown=1:1 x /y\n');
    const copy = r.children[1];
    expect(copy?.location.start).toEqual({ line: 3, column: 3 });
    expect(copy?.location.end).toEqual({ line: 4, column: 19 });
    expect(copy?.flags.map((f) => [f.value, f.position])).toEqual([
      ['--from=a', { line: 3, column: 8 }],
      ['--chown=1:1', { line: 4, column: 4 }],
    ]);
    expect(copy?.args.map((a) => a.position)).toEqual([{ line: 4, column: 16 }, { line: 4, column: 18 }]);
  });

  it('parses directives case-insensitively, only at the top', () => {
    const r = parse('# Syntax = docker/dockerfile:1\n#ESCAPE=`\n# check=skip=all\nFROM a\n# escape=\\\nRUN a `\n b\n');
    expect(r.directives.map((d) => [d.name, d.value, d.location.start.line])).toEqual([
      ['syntax', 'docker/dockerfile:1', 1],
      ['escape', '`', 2],
      ['check', 'skip=all', 3],
    ]);
    expect(r.escapeToken).toBe('`');
    expect(dump(r.children)).toBe('(from "a")\n(run "a  b")');
  });

  it('rejects a duplicate directive and a bad escape with their line', () => {
    const e = parseError('# syntax=a\n# syntax=b\nFROM a');
    expect([e.code, e.location?.line, e.location?.column]).toEqual(['KLN0102', 2, 1]);
    const e2 = parseError('# escape=x\nFROM a');
    expect([e2.code, e2.location?.line]).toEqual(['KLN0102', 1]);
  });

  it('keeps comment and empty lines inside continuations out, and warns on empty ones', () => {
    const r = parse('FROM a\nRUN echo \\\n# comment\n\n  hi\n');
    expect(dump(r.children)).toBe('(from "a")\n(run "echo   hi")');
    expect(r.warnings).toHaveLength(1);
    expect(r.children[1]?.location.end.line).toBe(5);
  });

  it('parses heredocs: several per line, chomp, quoted delimiters, fd', () => {
    const text = 'FROM a\nRUN <<EOF 3<<-"END" cat\necho $X\nEOF\n\tline\n\tEND\nCOPY <<a.txt /dst\nhello\na.txt\n';
    const r = parse(text);
    const run = r.children[1];
    expect(run?.heredocs.map((h) => [h.name, h.fileDescriptor, h.expand, h.chomp, h.content])).toEqual([
      ['EOF', 0, true, false, 'echo $X\n'],
      ['END', 3, false, true, '\tline\n'],
    ]);
    expect(run?.heredocs[1]?.location).toEqual({ start: { line: 5, column: 1 }, end: { line: 6, column: 4 } });
    expect(chompHeredocContent('\t\tline\n\tx\n')).toBe('line\nx\n');
    expect(r.children[2]?.heredocs[0]?.content).toBe('hello\n');
    expect(r.children[2]?.location.start.line).toBe(7);
  });

  it("doesn't take heredocs in JSON form or in other instructions", () => {
    const r = parse('FROM a\nRUN ["cat", "<<EOF"]\nENV A=<<EOF\n');
    expect(r.children.every((n) => n.heredocs.length === 0)).toBe(true);
  });

  it('takes heredocs in ONBUILD RUN', () => {
    const r = parse('FROM a\nONBUILD RUN <<EOF\nx\nEOF\nRUN y\n');
    expect(dump(r.children)).toBe('(from "a")\n(onbuild (run "<<EOF"))\n(run "y")');
    expect(r.children[1]?.heredocs[0]?.content).toBe('x\n');
  });

  it('fails on an unterminated heredoc naming the line', () => {
    const e = parseError('FROM a\n\nRUN <<EOF\nx\n');
    expect([e.code, e.location?.line, e.location?.column]).toEqual(['KLN0105', 3, 1]);
    expect(formatError(e)).toBe(
      'Dockerfile:3:1: unterminated heredoc EOF [KLN0105]\n  3 | RUN <<EOF\nhint: end the heredoc with a line that holds only "EOF"',
    );
  });

  it('names the line of a bad JSON array and of ENV without value', () => {
    const e = parseError('FROM a\n  CMD ["a", 1]\n');
    // located at the offending element
    expect([e.code, e.location?.line, e.location?.column]).toEqual(['KLN0103', 2, 13]);
    const e2 = parseError('FROM a\nLABEL a=b c\n');
    expect([e2.code, e2.location?.line]).toEqual(['KLN0104', 2]);
  });

  it('continues only on an escape not preceded by another escape (BuildKit regex)', () => {
    const r = parse('FROM a\nRUN a\\\\\\\nRUN b\\\\\nRUN c \\\n\\\nd\n');
    expect(dump(r.children)).toBe('(from "a")\n(run "a\\\\\\\\\\\\")\n(run "b\\\\\\\\")\n(run "c d")');
  });

  it('collects comments above an instruction, without directives', () => {
    const r = parse('# syntax=x\n# hello\n  # two\n\n# V the version\nFROM a\n');
    // as BuildKit: blank lines don't reset, an empty `#` does; the text is the line minus its first byte
    expect(r.children[0]?.prevComment).toEqual(['hello', '# two', 'V the version']);
    expect(parse('# a\n#\n# b\nFROM a\n').children[0]?.prevComment).toEqual(['b']);
    const r2 = parse('# syntax=x\n# hello\nFROM a\n');
    expect(r2.children[0]?.prevComment).toEqual(['hello']);
  });

  it('handles a BOM and CRLF', () => {
    const r = parse('\uFEFFFROM a\r\nRUN b \\\r\n c\r\n');
    expect(dump(r.children)).toBe('(from "a")\n(run "b  c")');
    expect(r.children[0]?.location.start).toEqual({ line: 1, column: 1 });
  });

  it('nests ONBUILD with its flags', () => {
    const r = parse('FROM a\nonbuild COPY --from=b x y\n');
    expect(dump(r.children)).toBe('(from "a")\n(onbuild (copy ["--from=b"] "x" "y"))');
    expect(r.children[1]?.next?.flags[0]?.position).toEqual({ line: 2, column: 14 });
  });
});

describe('detectSyntax', () => {
  it.for([
    ['# syntax=docker/dockerfile:1 --foo\nFROM a', 'docker/dockerfile:1', 'docker/dockerfile:1 --foo', 1],
    ['#syntax = x\n', 'x', 'x', 1],
    ['\uFEFF#!/usr/bin/env foo\n# escape=`\n# SYNTAX=y\n', 'y', 'y', 3],
    ['// syntax=kiln/ts\nexport {}', 'kiln/ts', 'kiln/ts', 1],
    ['{"syntax": "z", "other": "q"}', 'z', 'z', 1],
  ] as const)('case %#', ([text, ref, cmdline, line]) => {
    const s = detectSyntax(text);
    expect(s?.ref).toBe(ref);
    expect(s?.cmdline).toBe(cmdline);
    expect(s?.location.start.line).toBe(line);
  });
  it.for([
    'FROM a\n# syntax=x',
    '# hello\n# syntax=x',
    '\n# syntax=x',
    '{"syntax": 1}',
    '# escape=`\n',
  ])('none in case %#', (text) => {
    expect(detectSyntax(text)).toBeUndefined();
  });
});

describe('parseCheckDirective', () => {
  it('parses skip, experimental and error', () => {
    expect(parseCheckDirective(' skip=JSONArgsRecommended, StageNameCasing ;error=true')).toEqual({
      skip: ['JSONArgsRecommended', 'StageNameCasing'], skipAll: false, experimental: [], experimentalAll: false, error: true,
    });
    expect(parseCheckDirective('skip=all;experimental=all')).toMatchObject({ skipAll: true, experimentalAll: true, error: false });
    expect(parseCheckDirective('')).toMatchObject({ skip: [], error: false });
  });
  it.for(['skip', 'nope=1', 'error=maybe'])('rejects %j', (v) => {
    expect(() => parseCheckDirective(v)).toThrow(KilnError);
  });
});

// Inputs from BuildKit's parser/directives_test.go (TestDetectSyntax, TestParseDirective).
describe('detectSyntax / parseDirective: BuildKit cases', () => {
  type Case = [key: 'syntax' | 'check', text: string, ref: string | undefined, cmdline?: string, line?: number];
  const cases: Case[] = [
    ['syntax', '# syntax = dockerfile:experimental // opts\nFROM busybox\n', 'dockerfile:experimental', 'dockerfile:experimental // opts', 1],
    ['syntax', '#!/bin/sh\n# syntax = dockerfile:experimental\nFROM busybox\n', 'dockerfile:experimental', 'dockerfile:experimental', 2],
    ['syntax', '#!/bin/sh\n\n# syntax = dockerfile:experimental\n', undefined],
    ['syntax', 'FROM busybox\nRUN ls\n', undefined],
    ['syntax', '//syntax=foo\n//key=value', 'foo'],
    ['syntax', '#!/bin/sh\n//syntax=x', 'x'],
    ['syntax', '{"syntax": "foo"}', 'foo'],
    ['syntax', '{"syntax": "foo"', undefined],
    ['syntax', '{"syntax": "foo"}\n# syntax=bar', undefined],
    ['check', '#check = skip=all // opts\nFROM busybox\n', 'skip=all', 'skip=all // opts', 1],
    ['check', '#!/bin/sh\n# check = skip=all\nFROM busybox\n', 'skip=all', 'skip=all', 2],
    ['check', '#!/bin/sh\n\n# check = skip=all\n', undefined],
    ['check', '//check=skip=all\n//key=value', 'skip=all'],
    ['check', '{"check": "skip=all"}', 'skip=all'],
  ];
  it.for(cases.map((c, i) => [i, c] as const))('case %i', ([, [key, text, ref, cmdline, line]]) => {
    const d = parseDirective(key, text);
    expect(d?.ref).toBe(ref);
    if (cmdline !== undefined) expect(d?.cmdline).toBe(cmdline);
    if (line !== undefined) expect([d?.location.start.line, d?.location.end.line]).toEqual([line, line]);
  });

  it('DirectiveParser stops at the first non-directive and lower-cases keys', () => {
    for (const text of ['#escape=\\\n# key = FOO bar\n\n# smth\n', '# EScape=\\\n# KEY = FOO bar\n\n# smth\n']) {
      const p = new DirectiveParser();
      const d = p.parseAll(text);
      expect(d.map((x) => [x.name, x.value])).toEqual([['escape', '\\']]);
    }
  });
});
