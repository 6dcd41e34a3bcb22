import { describe, expect, test } from 'vitest';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';

const DIGEST = `sha256:${'cd'.repeat(32)}` as Digest;
const resolver: ImageMetaResolver = {
  resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: {} })) }),
};

/** `LINE RULE: message` of one rule's warnings. */
async function warnings(rule: string, dockerfile: string, opts: ConvertOptions = {}): Promise<string[]> {
  const res = await convertDockerfile(dockerfile, { metaResolver: resolver, targetPlatform: 'linux/amd64', ...opts });
  return res.checkWarnings.filter((w) => w.rule === rule).map((w) => `${w.location.line} ${w.message}`);
}

describe('UndefinedArgInFrom', () => {
  test('an undeclared variable in FROM is reported, with the closest declared ARG', async () => {
    expect(await warnings('UndefinedArgInFrom', 'ARG VERSION=1.36\nFROM busybox:${VERSON:-latest}\n')).toEqual(["2 FROM argument 'VERSON' is not declared (did you mean VERSION?)"]);
    expect(await warnings('UndefinedArgInFrom', 'FROM busybox:${TAG:-1}\n')).toEqual(["1 FROM argument 'TAG' is not declared"]);
  });
  test('declared ARGs (with or without a default), build args given for them and platform ARGs pass', async () => {
    expect(await warnings('UndefinedArgInFrom', 'ARG TAG\nARG IMG=busybox\nFROM ${IMG}:${TAG}\nFROM --platform=$BUILDPLATFORM busybox:$TARGETARCH\n', { buildArgs: { TAG: '1' } })).toEqual([]);
  });
  test('an undeclared variable in --platform is reported too', async () => {
    expect(await warnings('UndefinedArgInFrom', 'FROM --platform=${PLATFROM:-linux/amd64} busybox\n')).toEqual(["1 FROM argument 'PLATFROM' is not declared"]);
  });
});

describe('InvalidDefaultArgInFrom', () => {
  test('a base name that is invalid with only the ARG defaults is reported, even when a build arg fixes it', async () => {
    expect(await warnings('InvalidDefaultArgInFrom', 'ARG TAG\nFROM busybox:${TAG}\n', { buildArgs: { TAG: '1.36' } })).toEqual(['2 Default value for ARG busybox:${TAG} results in empty or invalid base image name']);
    expect(await warnings('InvalidDefaultArgInFrom', 'ARG IMAGE\nFROM $IMAGE\n', { buildArgs: { IMAGE: 'busybox' } })).toEqual(['2 Default value for ARG $IMAGE results in empty or invalid base image name']);
  });
  test('defaults that give a valid reference pass', async () => {
    expect(await warnings('InvalidDefaultArgInFrom', 'ARG TAG=1.36\nARG IMAGE=busybox:$TAG\nFROM $IMAGE\nFROM busybox:${V:-latest}\nFROM scratch\n')).toEqual([]);
  });
});

describe('RedundantTargetPlatform', () => {
  test('--platform=$TARGETPLATFORM (either spelling) is the default and reported', async () => {
    expect(await warnings('RedundantTargetPlatform', 'FROM --platform=$TARGETPLATFORM busybox\nFROM --platform=${TARGETPLATFORM} busybox\n')).toEqual([
      '1 Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
      '2 Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior',
    ]);
  });
  test('$BUILDPLATFORM and composite values pass', async () => {
    expect(await warnings('RedundantTargetPlatform', 'FROM --platform=$BUILDPLATFORM busybox\nFROM --platform=$TARGETOS/$TARGETARCH busybox\n')).toEqual([]);
  });
});

describe('FromPlatformFlagConstDisallowed', () => {
  test('a constant --platform is reported', async () => {
    expect(await warnings('FromPlatformFlagConstDisallowed', 'FROM --platform=linux/arm64 busybox AS build\n')).toEqual(['1 FROM --platform flag should not use constant value "linux/arm64"']);
  });
  test('a stage named after the pinned os or architecture, or a variable, passes', async () => {
    expect(await warnings('FromPlatformFlagConstDisallowed', 'FROM --platform=linux/arm64 busybox AS build-arm64\nFROM --platform=$BUILDPLATFORM busybox AS b\n')).toEqual([]);
  });
});
