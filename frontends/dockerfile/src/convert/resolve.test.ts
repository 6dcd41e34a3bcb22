import { expect, test } from 'vitest';
import { scratch, type ImageMetaResolver } from '@kiln/llb-core';
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
