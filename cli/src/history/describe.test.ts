import { describe, expect, test } from 'vitest';
import { parseBuildContext } from '../engine/session.js';
import type { BuildRequest } from '../engine/build.js';
import { describeBuild } from './describe.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('describeBuild', () => {
  test('build contexts are kept as given: oci-layout tags after ":", digests after "@"', () => {
    const contexts = ['base=oci-layout:///l/app:v1', `pinned=oci-layout:///l/app@${D}`, 'plain=oci-layout:///l/app', 'img=docker-image://busybox:1', 'dir=/src/x'];
    const req: BuildRequest = { context: '/src', outputs: [], buildContexts: contexts.map(parseBuildContext) };
    expect(describeBuild(req, '/src').contexts).toEqual({
      base: 'oci-layout:///l/app:v1',
      pinned: `oci-layout:///l/app@${D}`,
      plain: 'oci-layout:///l/app:latest',
      img: 'docker-image://busybox:1',
      dir: '/src/x',
    });
  });

  test("a proxy arg's user and password are not recorded (either case, with or without a scheme); other args are", () => {
    const buildArgs = new Map([
      ['HTTPS_PROXY', 'http://carol:s3cr3t@proxy.local:3128'],
      ['http_proxy', 'carol:s3cr3t@proxy.local:3128'],
      ['NO_PROXY', 'internal'],
      ['TOKEN_URL', 'https://u:kept@example.com'],
    ]);
    expect(describeBuild({ context: '/src', outputs: [], buildArgs }, '/src').buildArgs).toEqual({
      HTTPS_PROXY: 'http://xxxxx:xxxxx@proxy.local:3128',
      http_proxy: 'xxxxx:xxxxx@proxy.local:3128',
      NO_PROXY: 'internal',
      TOKEN_URL: 'https://u:kept@example.com',
    });
  });
});
