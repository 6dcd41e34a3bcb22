import { describe, expect, test, vi } from 'vitest';
import type { Definition, Digest, FrontendClient, FrontendWarning, ImageMetaResolver, Ref } from '@kiln/llb-core';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';
import { dockerfileFrontend } from '../frontend.js';
import { CommandChecker } from './commands.js';
import type { CheckWarning } from './linter.js';

const DIGEST = `sha256:${'34'.repeat(32)}` as Digest;
const IMAGE = new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: {} }));
const resolver: ImageMetaResolver = { resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: IMAGE }) };
/** A multi-platform image: the config matches the platform asked for. */
const multiPlatform: ImageMetaResolver = {
  resolveImageConfig: (_ref, { platform }) =>
    Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: platform?.architecture ?? 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: {} })) }),
};

function convert(dockerfile: string, opts: ConvertOptions = {}) {
  return convertDockerfile(dockerfile, { metaResolver: resolver, targetPlatform: 'linux/amd64', ...opts });
}

/** A Dockerfile that breaks many rules in reachable stages, and builds fine. */
const MESSY = [
  'ARG TAG',
  'FROM busybox:${TAG} as Builder',
  'MAINTAINER me',
  'ENV SECRET_TOKEN abc',
  'WORKDIR app',
  'ARG V=$undefined',
  'COPY $nothing /x',
  'RUN --mount=type=cache,id=$NOPE,target=/c echo $SHELL_VAR',
  'CMD echo one',
  'CMD echo two',
  'FROM --platform=$TARGETPLATFORM builder',
  'copy --from=Builder /x /y',
  'EXPOSE 80/TCP',
  '',
].join('\n');

describe('build checks in convertDockerfile', () => {
  test('checks never change the LLB or the image config: all rules firing vs all skipped', async () => {
    const seen: CheckWarning[] = [];
    const checked = await convert(MESSY, { buildArgs: { TAG: '1.36' }, onWarning: (w) => seen.push(w) });
    const skipped = await convert(MESSY, { buildArgs: { TAG: '1.36', BUILDKIT_DOCKERFILE_CHECK: 'skip=all' } });
    expect(checked.checkWarnings.length).toBeGreaterThanOrEqual(14);
    expect(new Set(checked.checkWarnings.map((w) => w.rule))).toEqual(
      new Set([
        'StageNameCasing', 'FromAsCasing', 'MaintainerDeprecated', 'ConsistentInstructionCasing', 'InvalidDefaultArgInFrom',
        'RedundantTargetPlatform', 'LegacyKeyValueFormat', 'SecretsUsedInArgOrEnv', 'WorkdirRelativePath', 'UndefinedVar',
        'JSONArgsRecommended', 'MultipleInstructionsDisallowed', 'ExposeProtoCasing',
      ]),
    );
    expect(seen).toEqual(checked.checkWarnings);
    expect(skipped.checkWarnings).toEqual([]);
    expect(checked.definition.def).toEqual(skipped.definition.def);
    expect(checked.imageConfigJson).toBe(skipped.imageConfigJson);
  });

  test('each warning carries rule, message, FILE:LINE:COL and URL', async () => {
    const res = await convert('FROM busybox\n  CMD echo hi\n', { file: 'app.Dockerfile' });
    expect(res.checkWarnings).toEqual([
      {
        rule: 'JSONArgsRecommended',
        description: 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
        url: 'https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
        message: 'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals',
        location: { file: 'app.Dockerfile', line: 2, column: 3 },
        ranges: [expect.objectContaining({ start: { line: 2, column: 3 } })],
      },
    ]);
  });

  test('# check=skip=… silences the named rules only', async () => {
    const res = await convert(`# check=skip=StageNameCasing,FromAsCasing\n${MESSY}`, { buildArgs: { TAG: '1.36' } });
    const rules = new Set(res.checkWarnings.map((w) => w.rule));
    expect(rules.has('StageNameCasing') || rules.has('FromAsCasing')).toBe(false);
    expect(rules.has('MaintainerDeprecated')).toBe(true);
  });

  test('# check=error=true fails after conversion with KLN0509 at the first violation, listing each', async () => {
    const seen: CheckWarning[] = [];
    const p = convert('# check=error=true\nFROM busybox\nENV A 1\nCMD echo hi\n', { onWarning: (w) => seen.push(w) });
    await expect(p).rejects.toMatchObject({
      code: 'KLN0509',
      message: 'lint violation found for rules: LegacyKeyValueFormat, JSONArgsRecommended (2 violations, check=error=true)',
      location: { file: 'Dockerfile', line: 3, column: 1 },
    });
    const hint = ((await p.catch((e: unknown) => e)) as { hint: string }).hint;
    expect(hint).toContain('# check=skip=LegacyKeyValueFormat,JSONArgsRecommended');
    expect(hint).toContain('Dockerfile:4:1: JSONArgsRecommended: JSON arguments recommended for CMD');
    // the warnings were reported before the failure, as BuildKit prints them
    expect(seen.map((w) => w.rule)).toEqual(['LegacyKeyValueFormat', 'JSONArgsRecommended']);
  });

  test('error=true passes when nothing (not skipped) fires', async () => {
    const res = await convert('# check=error=true;skip=JSONArgsRecommended\nFROM busybox\nCMD echo hi\n');
    expect(res.checkWarnings).toEqual([]);
  });

  test('BUILDKIT_DOCKERFILE_CHECK replaces the directive', async () => {
    await expect(convert('FROM busybox\nCMD echo hi\n', { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'error=true' } })).rejects.toMatchObject({ code: 'KLN0509' });
    const res = await convert('# check=error=true\nFROM busybox\nCMD echo hi\n', { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=JSONArgsRecommended' } });
    expect(res.checkWarnings).toEqual([]);
  });

  test('a bad # check= value is a located KLN0102', async () => {
    await expect(convert('# check=skip=all;eror=true\nFROM busybox\n')).rejects.toMatchObject({ code: 'KLN0102', location: { line: 1 } });
  });

  test('CopyIgnoredFile (experimental): context sources of COPY and ADD that .dockerignore excludes', async () => {
    const dockerfile = [
      '# check=experimental=CopyIgnoredFile',
      'FROM busybox AS base',
      'ARG DIR=tmp',
      'COPY ./${DIR}/hello.txt /hello.txt',
      'COPY keep/a.txt secrets /dst/',
      'ADD https://example.com/secrets /x',
      'ADD secrets/key.pem /k',
      'FROM busybox',
      'COPY --from=base /tmp/hello.txt /',
      '',
    ].join('\n');
    const res = await convert(dockerfile, { excludePatterns: ['*/tmp/*', 'tmp', 'secrets'] });
    expect(res.checkWarnings.map((w) => `${w.location.line} ${w.message}`)).toEqual([
      '4 Attempting to Copy file "tmp/hello.txt" that is excluded by .dockerignore',
      '5 Attempting to Copy file "secrets" that is excluded by .dockerignore',
      '7 Attempting to Add file "secrets/key.pem" that is excluded by .dockerignore',
    ]);
    expect(res.checkWarnings[0]?.url).toBe('https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/');
    // experimental: off unless enabled; and off when the ignore file re-includes paths with `!`
    expect((await convert(dockerfile.replace('experimental=CopyIgnoredFile', 'skip=none'), { excludePatterns: ['tmp'] })).checkWarnings).toEqual([]);
    expect((await convert(dockerfile, { excludePatterns: ['tmp', '!tmp/hello.txt'] })).checkWarnings).toEqual([]);
    // a malformed pattern is a KilnError that names the file
    await expect(convert(dockerfile, { excludePatterns: ['['] })).rejects.toMatchObject({ code: 'KLN0510', message: '.dockerignore: syntax error in pattern "["' });
  });

  test('a conversion that dispatches twice (context paths change) reports each violation once', async () => {
    const passes = vi.spyOn(CommandChecker.prototype, 'beginPass');
    const res = await convert('FROM busybox\nARG SRC=a\nCOPY $SRC /\nCMD ["a"]\nCMD ["b"]\n');
    expect(passes).toHaveBeenCalledTimes(2); // `$SRC` is only known in the real pass: it runs again
    passes.mockRestore();
    expect(res.checkWarnings.map((w) => `${w.location.line} ${w.rule}`)).toEqual(['4 MultipleInstructionsDisallowed']);
  });
});

describe('dockerfileFrontend', () => {
  test('warnings reach FrontendClient.warn once, even when every platform converts the file', async () => {
    const warned: FrontendWarning[] = [];
    const files: Record<string, string> = { Dockerfile: 'FROM busybox as build\nCMD echo $TARGETARCH\n' };
    const client: FrontendClient = {
      opts: new Map([['platform', 'linux/amd64,linux/arm64']]),
      inputs: new Map(),
      solve({ definition }: { definition: Definition }) {
        const ref: Ref = {
          definition,
          readFile: (p) => (files[p] === undefined ? Promise.reject(new Error(`${p}: not found`)) : Promise.resolve(new TextEncoder().encode(files[p]))),
          readDir: () => Promise.resolve([]),
          statFile: () => Promise.reject(new Error('not implemented')),
        };
        return Promise.resolve(ref);
      },
      warn: (w) => warned.push(w),
      resolveImageConfig: multiPlatform.resolveImageConfig,
    };
    await dockerfileFrontend(client);
    expect(warned).toEqual([
      { message: "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (https://docs.docker.com/go/dockerfile/rule/from-as-casing/)", file: 'Dockerfile', line: 1, column: 1 },
      { message: 'JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (https://docs.docker.com/go/dockerfile/rule/json-args-recommended/)', file: 'Dockerfile', line: 2, column: 1 },
    ]);
  });

  test('build-arg:BUILDKIT_DOCKERFILE_CHECK=error=true fails the frontend', async () => {
    const files: Record<string, string> = { Dockerfile: 'FROM busybox\nMAINTAINER me\n' };
    const client: FrontendClient = {
      opts: new Map([['build-arg:BUILDKIT_DOCKERFILE_CHECK', 'error=true']]),
      inputs: new Map(),
      solve({ definition }: { definition: Definition }) {
        return Promise.resolve({
          definition,
          readFile: (p: string) => (files[p] === undefined ? Promise.reject(new Error(`${p}: not found`)) : Promise.resolve(new TextEncoder().encode(files[p]))),
          readDir: () => Promise.resolve([]),
          statFile: () => Promise.reject(new Error('not implemented')),
        } as Ref);
      },
      warn: () => undefined,
      resolveImageConfig: resolver.resolveImageConfig,
    };
    await expect(dockerfileFrontend(client)).rejects.toMatchObject({ code: 'KLN0509', location: { line: 2 } });
  });
});
