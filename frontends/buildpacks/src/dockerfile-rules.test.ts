import { describe, expect, test } from 'vitest';
import { checkBuildDockerfile, checkRunDockerfile, fromImage, scanDockerfile } from './dockerfile-rules.js';
import { planRunImage, type GeneratedDockerfile } from './generate.js';
import { scratch } from '@kiln/llb-core';

const PREAMBLE = 'ARG base_image\nFROM ${base_image}\n';

describe('scanDockerfile', () => {
  test('instructions with lines; comments, continuations and heredoc bodies skipped', () => {
    const text = '# syntax=docker/dockerfile:1\n' + PREAMBLE + '# a comment\nRUN echo a \\\n  # inside\n  && echo b\nRUN <<EOF\nFROM not-an-instruction\nEOF\nexpose 80\n';
    expect(scanDockerfile(text).map((i) => `${i.line}:${i.name}`)).toEqual(['2:ARG', '3:FROM', '5:RUN', '8:RUN', '11:EXPOSE']);
  });
  test('an empty line inside a continuation does not end the instruction (BuildKit skips it)', () => {
    expect(scanDockerfile(PREAMBLE + 'RUN echo a \\\n\n  \nFROM x \\\n\nUSER y\nUSER z\n').map((i) => `${i.line}:${i.name}`)).toEqual(['1:ARG', '2:FROM', '3:RUN', '9:USER']);
    expect(checkBuildDockerfile(PREAMBLE + 'RUN echo a \\\n\nFROM x\n', 'kt/x')).toEqual([]);
  });
  test('the escape directive changes the continuation character', () => {
    expect(scanDockerfile('# escape=`\nFROM a\nRUN dir `\n  c:\\\\\nUSER x\n').map((i) => i.name)).toEqual(['FROM', 'RUN', 'USER']);
  });
  test('FROM image: flags skipped, AS ignored', () => {
    expect(fromImage('--platform=$BUILDPLATFORM kt/run AS base')).toBe('kt/run');
  });
});

describe('build.Dockerfile rules (lifecycle ValidateBuildDockerfile)', () => {
  test('the preamble and recommended instructions pass; others only warn, with their line', () => {
    expect(checkBuildDockerfile(PREAMBLE + 'USER root\nRUN true\nARG user_id\nUSER ${user_id}\n', 'kt/x')).toEqual([]);
    expect(checkBuildDockerfile(PREAMBLE + 'EXPOSE 80\nCMD ["x"]\n', 'kt/x')).toEqual([
      { message: 'build.Dockerfile command EXPOSE on line 3 is not recommended', line: 3 },
      { message: 'build.Dockerfile command CMD on line 4 is not recommended', line: 4 },
    ]);
  });
  test.for([
    ['a second FROM', PREAMBLE + 'RUN true\nFROM busybox\n', 4, /is not permitted to use multistage build/],
    ['no ARG', 'FROM ${base_image}\n', 1, /did not start with required ARG command/],
    ['another ARG first', 'ARG x\nFROM ${base_image}\n', 1, /did not start with required ARG command/],
    ['two ARGs before FROM', 'ARG base_image\nARG x\nFROM ${base_image}\n', 2, /did not start with required ARG command/],
    ['FROM another image', 'ARG base_image\nFROM busybox\n', 2, /did not contain required FROM \$\{base_image\} command/],
    ['no stage', 'ARG base_image\n', 1, /should have at least one stage/],
  ] as const)('refused: %s (KLN0908 at the extension file and line)', ([, text, line, message]) => {
    expect(() => checkBuildDockerfile(text, 'kt/x')).toThrow(expect.objectContaining({ code: 'KLN0908', location: { file: 'kt/x: build.Dockerfile', line, column: 1 }, message: expect.stringMatching(message) }));
  });
  test('ARG base_image with a default is accepted', () => {
    expect(checkBuildDockerfile('ARG base_image=busybox\nFROM ${base_image}\n', 'kt/x')).toEqual([]);
  });
});

describe('run.Dockerfile rules (lifecycle ValidateRunDockerfile)', () => {
  test('FROM another image switches; instructions extend; ${base_image} alone does neither', () => {
    expect(checkRunDockerfile('FROM kt/run-alt\n', 'kt/x').info).toEqual({ withBase: 'kt/run-alt', extend: false });
    expect(checkRunDockerfile(PREAMBLE + 'RUN true\n', 'kt/x').info).toEqual({ extend: true });
    expect(checkRunDockerfile('FROM kt/run-alt\nLABEL a=b\n', 'kt/x').info).toEqual({ withBase: 'kt/run-alt', extend: true });
    expect(checkRunDockerfile(PREAMBLE, 'kt/x').info).toEqual({ extend: false });
  });
  test('multistage and empty run.Dockerfiles are KLN0908', () => {
    expect(() => checkRunDockerfile('FROM a\nFROM b\n', 'kt/r')).toThrow(expect.objectContaining({ code: 'KLN0908', location: { file: 'kt/r: run.Dockerfile', line: 2, column: 1 } }));
    expect(() => checkRunDockerfile('# nothing\n', 'kt/r')).toThrow(/should have at least one stage/);
  });
});

describe('planRunImage (lifecycle runImageFrom)', () => {
  const df = (id: string, kind: 'build' | 'run', run?: { withBase?: string; extend: boolean }): GeneratedDockerfile =>
    ({ extension: { id, version: '1', optional: false, extension: true, descriptor: { api: '0.10', id, version: '1', clearEnv: false, targets: [] } }, kind, text: '', args: [], context: scratch(), ...(run === undefined ? {} : { run }) });
  test('the last switch wins and earlier run.Dockerfiles are ignored; later ones extend', () => {
    const p = planRunImage([df('a', 'run', { extend: true }), df('b', 'run', { withBase: 'x', extend: false }), df('c', 'build'), df('d', 'run', { withBase: 'y', extend: false }), df('e', 'run', { extend: true })]);
    expect(p.withBase).toBe('y');
    expect(p.extend).toBe(true);
    // d only switches (FROM y): nothing to apply on y
    expect(p.apply.map((d) => d.extension.id)).toEqual(['e']);
  });
  test('a switch alone does not extend; no run.Dockerfile changes nothing', () => {
    expect(planRunImage([df('a', 'run', { extend: true }), df('b', 'run', { withBase: 'x', extend: false })])).toEqual({ withBase: 'x', extend: false, apply: [] });
    expect(planRunImage([df('a', 'run', { withBase: 'x', extend: true })]).apply.map((d) => d.extension.id)).toEqual(['a']);
    expect(planRunImage([df('c', 'build')])).toEqual({ extend: false, apply: [] });
  });
});
