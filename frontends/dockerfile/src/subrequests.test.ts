import { describe, expect, test } from 'vitest';
import { describeResult, lint, printDescribe, printTargets, subrequest, targets } from './subrequests.js';

const text = (m: ReadonlyMap<string, Uint8Array>, k: string): string => new TextDecoder().decode(m.get(k));
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('frontend.targets', () => {
  // buildx's testBuildCall "targets" Dockerfile
  const df = '\n# build defines stage for compiling the binary\nFROM alpine AS build\nRUN true\n\nFROM busybox as second\nRUN false\n\nFROM alpine\nRUN false\n\n# binary returns the compiled binary\nFROM second AS binary\n';

  test('result.json is targets.List as Go marshals it (field order, omitted empties, pb.Location, sources)', () => {
    const res = targets(enc(df), 'Dockerfile');
    const json = text(res.metadata, 'result.json');
    expect(JSON.parse(json)).toEqual({
      targets: [
        { name: 'build', description: 'defines stage for compiling the binary', base: 'alpine', location: { ranges: [{ start: { line: 3 }, end: { line: 3 } }] } },
        { name: 'second', base: 'busybox', location: { ranges: [{ start: { line: 6 }, end: { line: 6 } }] } },
        { base: 'alpine', location: { ranges: [{ start: { line: 9 }, end: { line: 9 } }] } },
        { name: 'binary', default: true, description: 'returns the compiled binary', base: 'second', location: { ranges: [{ start: { line: 13 }, end: { line: 13 } }] } },
      ],
      sources: [Buffer.from(df).toString('base64')],
    });
    // Go's MarshalIndent layout, members in struct order: name, default, description, base
    expect(json).toContain('\n    {\n      "name": "binary",\n      "default": true,\n      "description": "returns the compiled binary",\n      "base": "second",\n');
    expect(text(res.metadata, 'version')).toBe('1.0.0');
  });

  test('result.txt is PrintTargets: tabwriter padding 1, an empty description keeps the name cell padded', () => {
    const res = targets(enc(df), 'Dockerfile');
    expect(text(res.metadata, 'result.txt')).toBe('TARGET           DESCRIPTION\nbuild            defines stage for compiling the binary\nsecond           \n                 \nbinary (default) returns the compiled binary\n');
    expect(printTargets('{"targets":[{"name":"a"},{"default":true}]}')).toBe('TARGET    DESCRIPTION\na         \n(default) \n');
  });
});

describe('frontend.lint result.json', () => {
  test('BuildKit lint.LintResults: ruleName/description/url/detail/location per warning, the Dockerfile as source', async () => {
    const df = 'FROM scratch as base\nCOPY a /\n';
    const res = await lint(enc(df), { file: 'Dockerfile' }, [], 'Dockerfile');
    const json = JSON.parse(text(res.metadata, 'result.json')) as { warnings: { ruleName: string; detail: string; location: unknown; url: string }[]; sources: unknown[] };
    expect(json.warnings).toHaveLength(1);
    expect(json.warnings[0]).toMatchObject({ ruleName: 'FromAsCasing', detail: "'as' and 'FROM' keywords' casing do not match", location: { ranges: [{ start: { line: 1 }, end: { line: 1 } }] } });
    expect(json.warnings[0]?.url).toMatch(/^https:\/\/docs\.docker\.com\//);
    expect(json.sources).toEqual([{ filename: 'Dockerfile', data: Buffer.from(df).toString('base64'), language: 'Dockerfile' }]);
    expect(text(res.metadata, 'result.statuscode')).toBe('1');

    const clean = await lint(enc('FROM scratch AS base\n'), { file: 'Dockerfile' }, [], 'Dockerfile');
    // a nil warnings slice marshals as null
    expect(text(clean.metadata, 'result.json')).toMatch(/^\{\n {2}"warnings": null,\n {2}"sources": \[/);
    expect(text(clean.metadata, 'result.statuscode')).toBe('0');

    const broken = await lint(enc('FROM scratch\nCOPY --from=9 a /\n'), { file: 'Dockerfile' }, [], 'Dockerfile');
    expect(JSON.parse(text(broken.metadata, 'result.json')).buildError).toMatchObject({ message: expect.stringMatching(/invalid stage index 9/) });
    expect(text(broken.metadata, 'result.statuscode')).toBe('1');
  });
});

describe('frontend.subrequests.describe', () => {
  const meta = (name: string, opts: string): string =>
    `  {\n    "name": "${name}",\n    "version": "1.0.0",\n    "type": "rpc",\n    "description": "${({ 'frontend.outline': 'List all parameters current build target supports', 'frontend.targets': 'List all targets current build supports', 'frontend.subrequests.describe': 'List available subrequest types' } as Record<string, string>)[name]}",\n    "opts": ${opts},\n    "inputs": null,\n    "metadata": [\n      {\n        "name": "result.json",\n        "description": ""\n      },\n      {\n        "name": "result.txt",\n        "description": ""\n      }\n    ],\n    "refs": null\n  }`;

  test('the requestid is answered without a build: dockerui lists outline, targets and describe (not lint), as Go marshals []subrequests.Request', async () => {
    const res = await subrequest('frontend.subrequests.describe', enc('FROM scratch\n'), {}, [], 'Dockerfile');
    const target = '[\n      {\n        "name": "target",\n        "description": "Target build stage"\n      }\n    ]';
    expect(text(res?.metadata ?? new Map(), 'result.json')).toBe(`[\n${meta('frontend.outline', target)},\n${meta('frontend.targets', '[]')},\n${meta('frontend.subrequests.describe', 'null')}\n]`);
    expect(text(res?.metadata ?? new Map(), 'version')).toBe('1.0.0');
    expect(res?.metadata.has('result.statuscode')).toBe(false);
  });

  test('result.txt is PrintDescribe: names without "frontend.", tabwriter padding 1 (the text buildx docs show)', () => {
    expect(text(describeResult().metadata, 'result.txt')).toBe(
      'NAME                 VERSION DESCRIPTION\n' +
        'outline              1.0.0   List all parameters current build target supports\n' +
        'targets              1.0.0   List all targets current build supports\n' +
        'subrequests.describe 1.0.0   List available subrequest types\n',
    );
    expect(printDescribe('[{"name":"frontend.x","version":"2.0.0","description":"d"},{"name":"y","version":"1.0.0"}]')).toBe('NAME VERSION DESCRIPTION\nx    2.0.0   d\ny    1.0.0   \n');
  });

  test('an unknown requestid is still refused (KLN0504) and the message names describe among the answers', async () => {
    await expect(subrequest('frontend.nope', enc('FROM scratch\n'), {}, [], 'Dockerfile')).rejects.toMatchObject({ code: 'KLN0504', hint: expect.stringContaining('frontend.subrequests.describe') });
  });
});
