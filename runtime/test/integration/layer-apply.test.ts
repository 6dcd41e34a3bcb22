import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readFile, readlink, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { applyLayer } from '@kiln/runtime';

const BUSYBOX = new URL('../../../../shared/conformance/images/busybox/blobs/sha256/', import.meta.url).pathname;
const LAYER = 'a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a';
const DIFF_ID = 'sha256:52ac1a37baf98ab219e45024ed1d97da4a018a6a52de1baba1e23735910758c5';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('the busybox conformance layer applies with its recorded diff_id', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-bb-'));
  dirs.push(dir);
  const r = await applyLayer(dir, createReadStream(join(BUSYBOX, LAYER)));
  expect(r.diffID).toBe(DIFF_ID);
  expect(r.compression).toBe('gzip');
  expect(await readlink(join(dir, 'bin/sh'))).toMatch(/busybox$/);
  expect((await lstat(join(dir, 'bin/busybox'))).mode & 0o777).toBe(0o755);
  expect((await lstat(join(dir, 'tmp'))).mode & 0o7777).toBe(0o1777);
  expect((await lstat(join(dir, 'root'))).mode & 0o7777).toBe(0o700);
  const home = await lstat(join(dir, 'home/app'));
  expect([home.uid, home.gid]).toEqual([1000, 1000]);
  expect(home.mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
  expect(await readFile(join(dir, 'etc/passwd'), 'utf8')).toContain('app:x:1000:1000');
  expect((await readdir(join(dir, 'bin'))).length).toBe(77);
  expect(r.entries).toBe(280);
});

/** Every (layer blob, diff_id) pair the conformance layouts declare, found by walking index → manifest → config. */
async function conformanceLayers(): Promise<[string, string, string][]> {
  const { readFileSync, readdirSync } = await import('node:fs');
  const imagesDir = new URL('../../../../shared/conformance/images/', import.meta.url).pathname;
  const out: [string, string, string][] = [];
  for (const image of readdirSync(imagesDir).filter((d) => !d.includes('.'))) {
    const blob = (d: string): string => join(imagesDir, image, 'blobs/sha256', d.replace('sha256:', ''));
    const json = (d: string): Record<string, unknown> => JSON.parse(readFileSync(blob(d), 'utf8')) as Record<string, unknown>;
    const seen = new Set<string>();
    const visit = (d: string): void => {
      if (seen.has(d)) return;
      seen.add(d);
      const doc = json(d);
      if (Array.isArray(doc['manifests'])) for (const m of doc['manifests'] as { digest: string }[]) visit(m.digest);
      if (Array.isArray(doc['layers'])) {
        const config = json((doc['config'] as { digest: string }).digest) as { rootfs: { diff_ids: string[] } };
        (doc['layers'] as { digest: string }[]).forEach((l, i) => out.push([`${image} ${l.digest.slice(7, 19)}`, blob(l.digest), config.rootfs.diff_ids[i] ?? '']));
      }
    };
    const index = JSON.parse(readFileSync(join(imagesDir, image, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    for (const m of index.manifests) visit(m.digest);
  }
  return out;
}

const LAYERS = await conformanceLayers();

test('the conformance layouts declare layers', () => {
  expect(LAYERS.length).toBeGreaterThanOrEqual(3);
});

test.for(LAYERS)('conformance layer %s applies with its config diff_id', async ([, path, diffID]) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-conf-'));
  dirs.push(dir);
  const r = await applyLayer(dir, createReadStream(path));
  expect(r.diffID).toBe(diffID);
  expect(r.entries).toBeGreaterThan(0);
});
