import { describe, expect, test } from 'vitest';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';

const DIGEST = `sha256:${'56'.repeat(32)}` as Digest;

/** Every image is a single-platform image of `arch` (with a layer unless `empty`). */
function resolver(arch: string, empty = false): ImageMetaResolver {
  const config = { os: 'linux', architecture: arch, rootfs: { type: 'layers', diff_ids: empty ? [] : [DIGEST] }, config: {} };
  return { resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify(config)) }) };
}

async function warnings(dockerfile: string, opts: ConvertOptions): Promise<string[]> {
  const res = await convertDockerfile(dockerfile, opts);
  return res.checkWarnings.filter((w) => w.rule === 'InvalidBaseImagePlatform').map((w) => `${w.location.line} ${w.message}`);
}

describe('InvalidBaseImagePlatform', () => {
  test('an image whose config has another architecture than requested is reported, with the name as written', async () => {
    expect(await warnings('ARG IMG=busybox\nFROM $IMG\nCOPY --from=alpine /x /x\n', { metaResolver: resolver('arm64'), targetPlatform: 'linux/amd64' })).toEqual([
      '2 Base image busybox was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
      '3 Base image alpine was pulled with platform "linux/arm64", expected "linux/amd64" for current build',
    ]);
  });
  test('a matching image, an image matching a build platform when no target is given, and layerless images pass', async () => {
    expect(await warnings('FROM busybox\n', { metaResolver: resolver('amd64'), targetPlatform: 'linux/amd64' })).toEqual([]);
    expect(await warnings('FROM busybox\n', { metaResolver: resolver('arm64'), buildPlatforms: ['linux/amd64', 'linux/arm64'] })).toEqual([]);
    expect(await warnings('FROM busybox\n', { metaResolver: resolver('arm64', true), targetPlatform: 'linux/amd64' })).toEqual([]);
  });
  test('stages the target does not need are not resolved, so not checked', async () => {
    expect(await warnings('FROM busybox AS unused\nFROM scratch\n', { metaResolver: resolver('arm64'), targetPlatform: 'linux/amd64' })).toEqual([]);
  });
});
