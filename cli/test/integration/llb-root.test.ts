import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { compileCli, runKiln, type KilnSandbox } from './build-helpers.js';

let dir: string;

beforeAll(async () => {
  compileCli();
  dir = await mkdtemp(join(tmpdir(), 'kiln-llb-root-'));
}, 300_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('kiln llb --root resolves FROM from that kiln store (as kiln build does) and pins its digest; without it the registry is asked', async () => {
  const root = join(dir, 'root');
  const images = await ImageStore.open(root);
  const made = await createBusyboxImage(await ContentStore.open(root), { names: ['docker.io/library/busybox:latest'], images });
  await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\nRUN true\n');
  const sb = { path: process.env.PATH ?? '' } as unknown as KilnSandbox;
  const found = await runKiln(sb, ['llb', dir, '--root', root]);
  expect(found.code, found.stderr).toBe(0);
  const source = found.stdout.split('\n').find((l) => l.includes('docker-image://'));
  expect(source).toContain(`docker-image://docker.io/library/busybox@${made.manifest.digest}`);
  // An empty store: the registry is asked (no network here), and the error points at the FROM line.
  const missing = await runKiln(sb, ['llb', dir, '--root', join(dir, 'empty-root')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('Dockerfile:1:1');
});
