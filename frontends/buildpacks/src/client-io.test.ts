import { describe, expect, test } from 'vitest';
import type { FrontendClient, ResolvedImageConfig } from '@kiln/llb-core';
import { resolveImage } from './client-io.js';

const D = `sha256:${'c'.repeat(64)}`;
const config = new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));

/** A client whose resolver answers every image with `answer` (only what resolveImage uses). */
function clientAnswering(answer: ResolvedImageConfig): FrontendClient {
  const partial: Pick<FrontendClient, 'resolveImageConfig'> = { resolveImageConfig: async () => answer };
  return partial as FrontendClient;
}

describe('resolveImage', () => {
  test('pins the image by the digest it resolved to', async () => {
    const r = await resolveImage(clientAnswering({ digest: D, config }), 'example.com/cnb/run:jammy', 'run');
    expect(r.reference).toBe(`example.com/cnb/run@${D}`);
  });

  test('an image a source policy converted is pinned under the converted name, whose digest it is', async () => {
    const r = await resolveImage(clientAnswering({ digest: D, config, ref: 'mirror.example.com/cnb/run:pinned' }), 'example.com/cnb/run:jammy', 'run');
    expect(r.reference).toBe(`mirror.example.com/cnb/run@${D}`);
  });

  // The hint named `kiln images ls`, which is no command (kiln images takes no argument).
  test('an image that cannot be resolved is KLN0907 naming the option, with commands that exist', async () => {
    const failing: Pick<FrontendClient, 'resolveImageConfig'> = { resolveImageConfig: () => Promise.reject(new Error('fetch failed')) };
    await expect(resolveImage(failing as FrontendClient, 'nosuch/builder', 'builder')).rejects.toMatchObject({
      code: 'KLN0907',
      message: 'cannot resolve the builder image nosuch/builder',
      hint: 'check the builder reference: kiln images lists the kiln store, kiln pull IMAGE or kiln load adds an image to it',
    });
  });
});
