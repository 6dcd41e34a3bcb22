/**
 * The State API can express what BuildKit's Dockerfile converter emits: rebuilds the
 * `copy-link` dockerfile2llb case (COPY --link as merge + weak progress groups, named
 * ops, all v0.11.6 caps) and compares the whole Definition with the reference bytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { encodeDefinition } from '../pb/definition-codec.js';
import { CAPS_V0_11_6 } from './caps.js';
import { copy } from './file.js';
import { merge } from './merge-diff.js';
import { image, local } from './source.js';
import { scratch } from './state.js';

const caseDir = join(import.meta.dirname, '../../../../shared/conformance/dockerfile2llb/copy-link');

test('copy-link rebuilt through the State API is byte-identical', async () => {
  const ref = 'localhost:5000/busybox@sha256:e14e06e5c350e5445beb0f39fbc33c13636d555eff1e97858958927c6e3cb7dc';
  const base = image(ref, {
    customName: `[1/4] FROM ${ref}`,
    description: { 'com.docker.dockerfile.v1.command': 'FROM localhost:5000/busybox' },
  }).addEnv('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const ctx = local('context', {
    sessionId: 'kiln-conformance',
    sharedKeyHint: 'context',
    followPaths: ['bin', 'etc/app.conf'],
    customName: '[internal] load build context',
  });
  const flags = { followSymlinks: true, copyDirContentsOnly: true, createDestPath: true, allowWildcard: true, allowEmptyWildcard: true };
  const link = (st: typeof base, n: number, step: string, src: string, dest: string, chown?: string) => {
    const pg = { id: `progress-group-${n}`, name: step };
    const layer = scratch().file(copy(ctx, src, dest, chown ? { ...flags, chown } : flags), { progressGroup: { ...pg, weak: true } });
    return merge([st, layer], { customName: step.replace(' COPY', ' LINK COPY'), progressGroup: pg });
  };
  const s1 = link(base, 0, '[2/4] COPY --link bin/ /usr/local/bin/', '/bin', '/usr/local/bin/');
  const s2 = link(s1, 1, '[3/4] COPY --link --chown=1000:1000 etc/app.conf /etc/app/', '/etc/app.conf', '/etc/app/', '1000:1000');
  const run = s2.run({
    args: ['/bin/sh', '-c', 'ls -l /usr/local/bin /etc/app'],
    customName: '[4/4] RUN ls -l /usr/local/bin /etc/app',
    description: { 'com.docker.dockerfile.v1.command': 'RUN ls -l /usr/local/bin /etc/app' },
  });
  const def = await run.marshal({ platform: 'linux/amd64', caps: CAPS_V0_11_6 });
  expect(Buffer.from(encodeDefinition(def)).equals(readFileSync(join(caseDir, 'llb.pb')))).toBe(true);
});
