import { expect, test } from 'vitest';
import { decodeOp, scratch, type ImageMetaResolver } from '@kiln/llb-core';
import { convertDockerfile } from './convert.js';

/** A resolver that fails as kiln's registry client does offline: the error carries its hint. */
const offline: ImageMetaResolver = {
  resolveImageConfig: (ref) =>
    Promise.reject(
      Object.assign(new Error(`HEAD https://registry-1.docker.io/v2/library/${ref}: fetch failed (getaddrinfo ENOTFOUND registry-1.docker.io)`), {
        hint: 'registry-1.docker.io does not resolve: check the registry name, and that this machine has DNS and network access',
      }),
    ),
};

const rejection = (p: Promise<unknown>): Promise<Error & { code?: string; hint?: string }> =>
  p.then(
    () => Promise.reject(new Error('expected a failure')),
    (e: unknown) => e as Error,
  );

// Before: "check the image name and that the registry is reachable", whatever the resolver knew.
test('FROM an image the registry client cannot reach keeps the client hint (offline: the name does not resolve)', async () => {
  const e = await rejection(convertDockerfile('FROM node:20\n', { metaResolver: offline, targetPlatform: 'linux/amd64' }));
  expect(e).toMatchObject({ code: 'KLN0503', location: { line: 1, column: 1 }, hint: expect.stringMatching(/^registry-1\.docker\.io does not resolve/) });
});

test('a named context image (docker-image://) too', async () => {
  const e = await rejection(
    convertDockerfile('FROM base\n', { metaResolver: offline, targetPlatform: 'linux/amd64', namedContexts: new Map([['base', { state: scratch(), imageRef: 'node:20' }]]) }),
  );
  expect(e).toMatchObject({ code: 'KLN0503', hint: expect.stringMatching(/^registry-1\.docker\.io does not resolve/) });
});

test('a hintless resolver error keeps the generic hint; a close stage name still wins', async () => {
  const plain: ImageMetaResolver = { resolveImageConfig: () => Promise.reject(new Error('manifest unknown')) };
  const e = await rejection(convertDockerfile('FROM somewhere/app:1\n', { metaResolver: plain, targetPlatform: 'linux/amd64' }));
  expect(e).toMatchObject({ hint: 'check the image name and that the registry is reachable' });
  const s = await rejection(convertDockerfile('FROM node:20 AS builder\nFROM buidler\n', { metaResolver: offline, targetPlatform: 'linux/amd64' }));
  expect(s).toMatchObject({ hint: 'did you mean the stage "builder"?' });
});

// A source policy converts the image a FROM resolves (kiln's engine returns the converted
// reference as `ref`): the stage is pinned under that reference, as BuildKit's dockerfile2llb
// takes the resolver's mutated ref. Before, `FROM busybox` became busybox@<the converted image's
// digest>, which the solver's policy no longer matched (busybox:latest is not busybox) and pulled
// from Docker Hub, where that digest does not exist.
test('a reference the resolver rewrote (source policy CONVERT) is the one the stage is pinned under', async () => {
  const digest = `sha256:${'cd'.repeat(32)}`;
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] }, config: { Env: ['V=1'] } }));
  const calls: string[] = [];
  const converting: ImageMetaResolver = {
    resolveImageConfig: (ref) => {
      calls.push(ref);
      return Promise.resolve(ref === 'docker.io/library/busybox:latest' ? { digest, config, ref: `registry.local/team/busybox@${digest}` } : { digest, config });
    },
  };
  const ids = async (text: string): Promise<string[]> => {
    const res = await convertDockerfile(text, { metaResolver: converting, targetPlatform: 'linux/amd64' });
    return res.definition.def.slice(0, -1).flatMap((b) => {
      const op = decodeOp(b);
      return op.kind === 'source' && op.source.identifier !== undefined ? [op.source.identifier] : [];
    });
  };
  expect(await ids('FROM busybox\nRUN true\n')).toEqual([`docker-image://registry.local/team/busybox@${digest}`]);
  expect(await ids('FROM busybox:latest\nRUN true\n')).toEqual([`docker-image://registry.local/team/busybox@${digest}`]);
  // Not rewritten: the name as written (no tag added), pinned, as BuildKit v0.11 marshals it.
  expect(await ids('FROM alpine\nRUN true\n')).toEqual([`docker-image://docker.io/library/alpine@${digest}`]);
  expect(calls).toEqual(['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest', 'docker.io/library/alpine:latest']);
});
