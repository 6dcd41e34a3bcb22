import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { pruneContent } from './content-gc.js';
import { ImageStore } from './image-store.js';
import { importOciLayout, openOciLayout } from './oci-layout.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-gc-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('pruneContent', () => {
  test('keeps everything images reach, deletes the rest (respecting keep and min age)', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    const bb = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
    const files = await importOciLayout(await openOciLayout(join(IMAGES, 'files'), store), store);
    await images.put('localhost:5000/busybox:latest', bb);
    const orphan = await store.writeBlob(Buffer.from('orphan'));
    const kept = await store.writeBlob(Buffer.from('cache layer'));
    expect((await pruneContent(store, images)).deleted).toEqual([]); // too young
    const dry = await pruneContent(store, images, { minAgeMs: 0, dryRun: true, keep: [kept.digest] });
    expect(dry.deleted).toContain(orphan.digest);
    expect(dry.deleted).toContain(files.digest);
    expect(await store.has(orphan.digest)).toBe(true);
    const res = await pruneContent(store, images, { minAgeMs: 0, keep: [kept.digest] });
    expect(res.deleted.length).toBe(dry.deleted.length);
    expect(await store.has(orphan.digest)).toBe(false);
    expect(await store.has(kept.digest)).toBe(true);
    expect(await store.has(bb.digest)).toBe(true);
    expect(await store.has('sha256:a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a' as never)).toBe(true);
    expect(await store.has(files.digest)).toBe(false);
    expect(res.reclaimedBytes).toBeGreaterThan(0);
  });
});
