import { describe, expect, test } from 'vitest';
import { SourcePolicyError, VertexError } from '@kiln/solver';
import { TsDslError } from '@kiln/ts-dsl';
import { KilnError } from '@kiln/dockerfile';
import { formatBuildError } from './report.js';

describe('formatBuildError: source policy errors', () => {
  const denial = (): SourcePolicyError =>
    new SourcePolicyError('KLN0952', 'source "docker-image://docker.io/library/busybox:latest" denied by policy: rules[0] (DENY "docker-image://*") in p.json', { hint: 'allow it in p.json' });

  test('a kiln/ts image() the policy denied: the policy\'s code and message at the build file\'s line', () => {
    const ts = new TsDslError('KLN0803', 'base image busybox: source … denied', { location: { file: 'kiln.build.ts', line: 2, column: 22 }, hint: 'allow it in p.json', cause: denial() });
    const out = formatBuildError(new Error('frontend kiln/ts failed', { cause: ts }));
    expect(out).toBe('kiln: error KLN0952: kiln.build.ts:2:22: source "docker-image://docker.io/library/busybox:latest" denied by policy: rules[0] (DENY "docker-image://*") in p.json\nhint: allow it in p.json\n');
  });

  test('without a place to name, the policy error alone', () => {
    expect(formatBuildError(denial())).toBe('kiln: error KLN0952: source "docker-image://docker.io/library/busybox:latest" denied by policy: rules[0] (DENY "docker-image://*") in p.json\nhint: allow it in p.json\n');
  });
});

describe('formatBuildError: a failed step', () => {
  const runcSaid = 'runc run failed: unable to start container process: exec: "/missing": stat /missing: no such file or directory';
  const failed = (logTail: string[], message: string): VertexError =>
    new VertexError({ vertex: 'sha256:1', name: '[2/2] RUN ["/missing"]', op: 'exec', locations: [{ file: '', line: 2, column: 1 }], logTail }, new Error(message));

  test('output that only repeats the message (runc\'s own failure) is not listed again under last output lines', () => {
    const out = formatBuildError(failed([`${runcSaid}  `], runcSaid), { dockerfileText: 'FROM busybox\nRUN ["/missing"]\n' });
    expect(out).toBe(`kiln: error SOLVER_EXEC_FAILED: Dockerfile:2:1: ${runcSaid}\n  2 | RUN ["/missing"]\n`);
  });

  test('the output of a process that ran is listed even when its command holds the same words', () => {
    const e = new VertexError({ vertex: 'sha256:3', name: '[2/2] RUN echo failing && exit 3', op: 'exec', locations: [{ file: '', line: 2, column: 1 }], command: '/bin/sh -c echo failing && exit 3', exitCode: 3, logTail: ['failing'] }, new Error('exit 3'));
    expect(formatBuildError(e, {})).toContain('last output lines:\n  > failing\n');
  });

  test('output with anything else is listed whole', () => {
    const out = formatBuildError(failed(['starting', runcSaid], runcSaid), { dockerfileText: 'FROM busybox\nRUN ["/missing"]\n' });
    expect(out).toContain(`last output lines:\n  > starting\n  > ${runcSaid}\n`);
  });
});

describe('formatBuildError: an error in another file than the main Dockerfile', () => {
  const main = { dockerfileText: '[io.buildpacks]\nbuilder = "kt/builder"\nx = 1\ny = 2\n', dockerfileName: 'project.toml' };

  test('a Dockerfile error located in a generated Dockerfile is not quoted with the main file\'s line', () => {
    const e = new KilnError('KLN0401', 'unknown instruction: RUNN', { location: { file: 'kt_x/build.Dockerfile', line: 4, column: 1 } });
    expect(formatBuildError(e, main)).toBe('kiln: error: kt_x/build.Dockerfile:4:1: unknown instruction: RUNN [KLN0401]\n');
    const own = new KilnError('KLN0401', 'unknown instruction: RUNN', { location: { file: '', line: 2, column: 1 } });
    expect(formatBuildError(own, { dockerfileText: 'FROM busybox\nRUNN x\n' })).toContain('  2 | RUNN x\n');
  });

  test('a failed step of a generated Dockerfile is not quoted with the main file\'s line', () => {
    const e = new VertexError({ vertex: 'sha256:2', name: '[extend] RUN false', op: 'exec', locations: [{ file: 'kt_x/build.Dockerfile', line: 3, column: 1 }], command: '/bin/sh -c false', exitCode: 1, logTail: [] }, new Error('exit 1'));
    const out = formatBuildError(e, main);
    expect(out).toContain('kt_x/build.Dockerfile:3:1: process "/bin/sh -c false" did not complete successfully: exit code: 1\n');
    expect(out).not.toContain('x = 1');
    expect(out).toContain('  in [extend] RUN false\n');
  });
});
