import { describe, expect, test } from 'vitest';
import { scratch } from '@kiln/llb-core';
import { dockerfileOutline, outline, printOutline } from './outline.js';
import { subrequest } from './subrequests.js';
import { tabwrite } from './subrequest-format.js';

const text = (m: ReadonlyMap<string, Uint8Array>, k: string): string => new TextDecoder().decode(m.get(k));
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

// buildx's own --call=outline test (tests/build.go testBuildCall): the target reads `third` (its
// base) and `first` (COPY --from); `second` is not reachable, so its secret and ssh id are not listed.
const BUILDX_CASE = `
FROM busybox AS first
RUN --mount=type=secret,target=/etc/passwd,required=true --mount=type=ssh true

FROM alpine AS second
RUN --mount=type=secret,id=unused --mount=type=ssh,id=ssh2 true

FROM scratch AS third
ARG BAR
RUN --mount=type=secret,id=second\${BAR} true

FROM third AS target
COPY --from=first /foo /
RUN --mount=type=ssh,id=ssh3,required true

FROM second
`;

describe('frontend.outline', () => {
  test('buildx testBuildCall: args, secrets and ssh ids of the target, its base and the stages it copies from', () => {
    const o = dockerfileOutline(BUILDX_CASE, { target: 'target', buildArgs: new Map([['BAR', '678']]) });
    expect(o.name).toBe('target');
    expect(o.args.map((a) => [a.name, a.value])).toEqual([['BAR', '678']]);
    expect(o.secrets.map((s) => [s.name, s.required])).toEqual([['passwd', true], ['second678', false]]);
    expect(o.ssh.map((s) => [s.name, s.required])).toEqual([['default', false], ['ssh3', true]]);
    const res = outline(enc(BUILDX_CASE), { target: 'target', buildArgs: new Map([['BAR', '678']]) });
    // PrintOutline's tables (tabwriter, padding 3): a cell before an empty last cell keeps its padding
    expect(text(res.metadata, 'result.txt')).toBe(
      [
        'TARGET: target',
        '',
        'BUILD ARG   VALUE   DESCRIPTION',
        'BAR         678     ',
        '',
        'SECRET      REQUIRED',
        'passwd      true',
        'second678   ',
        '',
        'SSH       REQUIRED',
        'default   ',
        'ssh3      true',
        '',
        '',
      ].join('\n'),
    );
    expect(text(res.metadata, 'version')).toBe('1.0.0');
  });

  test('meta args count when FROM uses them (and the meta args their defaults expand), with comments as descriptions', () => {
    const df = [
      '# REGISTRY where images come from',
      'ARG REGISTRY=docker.io',
      'ARG IMAGE=${REGISTRY}/library/alpine',
      '# UNUSED is never read',
      'ARG UNUSED=1',
      '# VERSION the release',
      'ARG VERSION=1.0',
      '',
      '# build compiles it',
      'FROM $IMAGE AS build',
      'ARG VERSION',
      '# GOFLAGS for go build',
      'ARG GOFLAGS="-trimpath -v"',
      'ENV CGO=0',
      'ARG MODE=$CGO-x',
      'RUN --mount=type=secret,id=npmrc,env=NPMRC true',
      '',
      'FROM build AS release',
      'RUN --mount=type=ssh,id=github,required=true true',
      'RUN --mount=type=secret,id=npmrc,required=true true',
      '',
    ].join('\n');
    const o = dockerfileOutline(df, { target: 'release' });
    expect(o.name).toBe('release');
    expect(o.description).toBe('');
    // VERSION is redeclared bare in `build`: the meta ARG's value, comment and line are shown
    expect(o.args).toEqual([
      { name: 'REGISTRY', value: 'docker.io', description: 'where images come from', location: expect.objectContaining({ start: expect.objectContaining({ line: 2 }) }) },
      { name: 'IMAGE', value: 'docker.io/library/alpine', description: '', location: expect.objectContaining({ start: expect.objectContaining({ line: 3 }) }) },
      { name: 'VERSION', value: '1.0', description: 'the release', location: expect.objectContaining({ start: expect.objectContaining({ line: 7 }) }) },
      { name: 'GOFLAGS', value: '-trimpath -v', description: 'for go build', location: expect.objectContaining({ start: expect.objectContaining({ line: 13 }) }) },
      { name: 'MODE', value: '0-x', description: '', location: expect.objectContaining({ start: expect.objectContaining({ line: 15 }) }) },
    ]);
    // the target's own RUN is first in the walk, but the list is in line order
    expect(o.secrets.map((s) => [s.name, s.required, s.location.start.line])).toEqual([['npmrc', true, 20]]);
    expect(o.ssh.map((s) => [s.name, s.required])).toEqual([['github', true]]);

    // --build-arg replaces a meta ARG's value; the default target (`release`, the last) is the same
    const withArg = dockerfileOutline(df, { buildArgs: new Map([['VERSION', '2.0'], ['REGISTRY', 'ghcr.io']]) });
    expect(withArg.args.find((a) => a.name === 'VERSION')?.value).toBe('2.0');
    expect(withArg.args.find((a) => a.name === 'IMAGE')?.value).toBe('ghcr.io/library/alpine');

    // --target build: the release stage's ssh id and required secret are not its inputs
    const build = dockerfileOutline(df, { target: 'build' });
    expect(build.description).toBe('compiles it');
    expect(build.secrets.map((s) => [s.name, s.required])).toEqual([['npmrc', false]]);
    expect(build.ssh).toEqual([]);
    const txt = printOutline(JSON.stringify({ name: build.name, description: build.description, args: build.args.map((a) => ({ name: a.name, value: a.value, description: a.description })) }));
    expect(txt.split('\n').slice(0, 3)).toEqual(['TARGET:      build', 'DESCRIPTION: compiles it', '']);
    expect(txt).toContain('\nGOFLAGS     -trimpath -v               for go build\n');
  });

  test('result.json is outline.Outline as Go marshals it: omitted empties, pb.Location ranges, the Dockerfile as a base64 source', () => {
    const df = 'FROM busybox\n# A the letter <a>\nARG A=1 B\nRUN --mount=type=ssh \\\n  true\n';
    const res = outline(enc(df), {});
    expect(text(res.metadata, 'result.json')).toBe(
      [
        '{',
        '  "args": [',
        '    {',
        '      "name": "A",',
        '      "description": "the letter \\u003ca\\u003e",',
        '      "value": "1",',
        '      "location": {',
        '        "ranges": [',
        '          {',
        '            "start": {',
        '              "line": 3',
        '            },',
        '            "end": {',
        '              "line": 3',
        '            }',
        '          }',
        '        ]',
        '      }',
        '    },',
        '    {',
        '      "name": "B",',
        '      "location": {',
        '        "ranges": [',
        '          {',
        '            "start": {',
        '              "line": 3',
        '            },',
        '            "end": {',
        '              "line": 3',
        '            }',
        '          }',
        '        ]',
        '      }',
        '    }',
        '  ],',
        '  "ssh": [',
        '    {',
        '      "name": "default",',
        '      "location": {',
        '        "ranges": [',
        '          {',
        '            "start": {',
        '              "line": 4',
        '            },',
        '            "end": {',
        '              "line": 5',
        '            }',
        '          }',
        '        ]',
        '      }',
        '    }',
        '  ],',
        '  "sources": [',
        `    "${Buffer.from(df).toString('base64')}"`,
        '  ]',
        '}',
      ].join('\n'),
    );
    // an unnamed default stage has no TARGET line
    expect(text(res.metadata, 'result.txt')).toBe('BUILD ARG   VALUE   DESCRIPTION\nA           1       the letter <a>\nB                   \n\nSSH       REQUIRED\ndefault   \n\n');
  });

  test('a stage with no inputs prints nothing (buildx prints no table), and bad requests are refused', async () => {
    const res = outline(enc('FROM scratch\nCOPY a /\n'), {});
    expect(text(res.metadata, 'result.txt')).toBe('');
    expect(JSON.parse(text(res.metadata, 'result.json'))).toEqual({ sources: [Buffer.from('FROM scratch\nCOPY a /\n').toString('base64')] });
    expect(() => dockerfileOutline('FROM scratch AS a\n', { target: 'nope' })).toThrow(/KLN0501|target stage "nope" could not be found/);
    await expect(subrequest('frontend.nope', enc('FROM scratch\n'), {}, [], 'Dockerfile')).rejects.toThrow(/unsupported request frontend\.nope.*|KLN0504/);
    expect(await subrequest(undefined, enc('FROM scratch\n'), {}, [], 'Dockerfile')).toBeUndefined();
    const viaDispatch = await subrequest('frontend.outline', enc(BUILDX_CASE), { target: 'target', buildArgs: new Map([['BAR', '9']]) }, [], 'Dockerfile');
    expect(JSON.parse(text(viaDispatch?.metadata ?? new Map(), 'result.json')).args).toEqual([{ name: 'BAR', value: '9', location: { ranges: [{ start: { line: 9 }, end: { line: 9 } }] } }]);
  });
});

describe('frontend.outline: meta ARGs declared again', () => {
  test('ARG A=${A}x keeps what the earlier A expanded in use (buildMetaArgs merges its deps), at the last declaration', () => {
    const o = dockerfileOutline('ARG B=1\nARG A=${B}\nARG A=${A}x\nARG C=c\nFROM busybox:${A}\n');
    expect(o.args.map((a) => [a.name, a.value, a.location.start.line])).toEqual([['B', '1', 1], ['A', '1x', 3]]);
  });
});

describe('frontend.outline with --build-context', () => {
  // BuildKit's buildDispatchStates: a stage a named context replaces is that context (no base,
  // its FROM's args unused, its instructions never dispatched), so it asks for nothing.
  const DF = `ARG BASE=busybox
FROM \${BASE} AS base
ARG SA=1
RUN --mount=type=secret,id=s1 --mount=type=ssh true

FROM busybox AS other
ARG OTHERARG
RUN --mount=type=secret,id=os,env=OSENV --mount=type=ssh,id=gh,required true

FROM base AS final
ARG LOCAL
COPY --from=other / /
`;
  const names = (o: ReturnType<typeof dockerfileOutline>): string[][] => [o.args.map((a) => a.name), o.secrets.map((s) => s.name), o.ssh.map((s) => s.name)];

  test('a replaced stage (COPY --from or FROM) contributes no args, secrets or ssh ids', async () => {
    expect(names(dockerfileOutline(DF))).toEqual([['BASE', 'SA', 'OTHERARG', 'LOCAL'], ['s1', 'os'], ['default', 'gh']]);
    expect(names(dockerfileOutline(DF, { namedContexts: new Map([['other', { state: scratch() }]]) }))).toEqual([['BASE', 'SA', 'LOCAL'], ['s1'], ['default']]);
    expect(names(dockerfileOutline(DF, { namedContexts: new Map([['base', { state: scratch() }]]) }))).toEqual([['OTHERARG', 'LOCAL'], ['os'], ['gh']]);
    // the frontend passes its --build-context names through
    const res = await subrequest('frontend.outline', enc(DF), { namedContexts: new Map([['other', { state: scratch() }]]) }, [], 'Dockerfile');
    expect(text(res?.metadata ?? new Map(), 'result.txt')).not.toMatch(/OTHERARG|os|gh/);
  });
});

describe('tabwrite (Go text/tabwriter, spaces)', () => {
  test('columns are as wide as their widest cell plus padding; the last cell is not padded; tabless lines end a block', () => {
    expect(tabwrite('a\tbb\tc\naaa\t\tlast\n', 2)).toBe('a    bb  c\naaa      last\n');
    expect(tabwrite('x\ty\n\nlonger\tz\n', 1)).toBe('x y\n\nlonger z\n');
    expect(tabwrite('ünï\tx\nab\ty\n', 1)).toBe('ünï x\nab  y\n');
  });
});
