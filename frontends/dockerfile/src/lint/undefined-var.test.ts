import { describe, expect, test } from 'vitest';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';

const DIGEST = `sha256:${'12'.repeat(32)}` as Digest;
/** Every image has `PYTHON_VERSION` in its env (as the python image does). */
const resolver: ImageMetaResolver = {
  resolveImageConfig: () =>
    Promise.resolve({
      digest: DIGEST,
      config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: { Env: ['PATH=/usr/bin:/bin', 'PYTHON_VERSION=3.12'] } })),
    }),
};

async function undefinedVars(dockerfile: string, opts: ConvertOptions = {}): Promise<string[]> {
  const res = await convertDockerfile(dockerfile, { metaResolver: resolver, targetPlatform: 'linux/amd64', ...opts });
  return res.checkWarnings.filter((w) => w.rule === 'UndefinedVar').map((w) => `${w.location.line} ${w.message}`);
}

describe('UndefinedVar', () => {
  test('an undeclared variable in an expanded word is reported', async () => {
    expect(await undefinedVars('FROM busybox AS base\nCOPY $foo .\n')).toEqual(["2 Usage of undefined variable '$foo'"]);
  });
  test('a typo gets the closest name in the environment', async () => {
    expect(await undefinedVars('FROM busybox\nENV PATH=$PAHT:/app/bin\n')).toEqual(["2 Usage of undefined variable '$PAHT' (did you mean $PATH?)"]);
  });
  test('declared ARGs (with or without a value), ENV, the base image env and base-stage ARGs pass', async () => {
    const df = ['FROM busybox AS base', 'ARG FROM_BASE', 'FROM base', 'ARG foo', 'ENV DIR=/app', 'COPY $foo $FROM_BASE ${DIR}/', 'ARG VERSION=$PYTHON_VERSION', ''].join('\n');
    expect(await undefinedVars(df)).toEqual([]);
  });
  test('an ARG default is checked against names declared before it, in the same ARG too', async () => {
    expect(await undefinedVars('FROM busybox\nARG VERSION=$foo\nARG A=1 B=$A\n')).toEqual(["2 Usage of undefined variable '$foo'"]);
  });
  test('an ARG default a build arg overrides is not expanded, so not checked', async () => {
    expect(await undefinedVars('FROM busybox\nARG VERSION=$foo\n', { buildArgs: { VERSION: '1' } })).toEqual([]);
  });
  test('shell forms are the shell’s business: RUN, CMD and ENTRYPOINT are not checked', async () => {
    expect(await undefinedVars('FROM busybox\nRUN echo $nope\nCMD echo $nope\nENTRYPOINT ["echo", "$nope"]\n')).toEqual([]);
  });
  test('heredoc sources are checked unless the delimiter is quoted', async () => {
    expect(await undefinedVars('FROM busybox\nCOPY <<EOF /a\n$nope\nEOF\nCOPY <<"EOF" /b\n$quoted\nEOF\n')).toEqual(["2 Usage of undefined variable '$nope'"]);
  });
  test('RUN --mount options are checked', async () => {
    expect(await undefinedVars('FROM busybox\nRUN --mount=type=cache,id=$CACHE_ID,target=/cache true\n')).toEqual(["2 Usage of undefined variable '$CACHE_ID'"]);
  });
});
