import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { Snapshotter } from '@kiln/runtime';
import { ContentHashTree, type ChecksumOptions } from '../contenthash/tree.js';
import { headerDigest } from '../contenthash/tarsum.js';
import { toLocalStat, walkLocal } from '../local/walk.js';
import { RuntimeWorker } from './runtime-worker.js';

/** A worker whose only working part is `snapshotter` (the rest fails if a test reaches it). */
function snapshotterOnlyWorker(root: string, snapshotter: Snapshotter): RuntimeWorker {
  const unused = (): Promise<never> => Promise.reject(new Error('unused'));
  return new RuntimeWorker({
    root,
    snapshotter,
    executor: { run: unused },
    content: undefined as never,
    ensureImage: unused,
    unpackLayer: unused,
    applyFileAction: unused,
    localDirs: {},
  });
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('RuntimeWorker.checksum of a snapshot', () => {
  test('hashing only the selected subtree gives the same digests as hashing the whole tree', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-ck-'));
    dirs.push(root);
    mkdirSync(join(root, 'app/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    writeFileSync(join(root, 'app/bin/tool'), 'tool');
    writeFileSync(join(root, 'app/a.txt'), 'a');
    writeFileSync(join(root, 'app/b.txt'), 'b');
    writeFileSync(join(root, 'usr/lib/x.so'), 'x');
    symlinkSync('/usr/lib', join(root, 'lib'));
    symlinkSync('app/a.txt', join(root, 'alink'));
    // Mounted (no mount description to read it in place from).
    const snapshotter = { mounts: async () => [], mount: async () => ({ path: root, release: async () => undefined }) } as unknown as Snapshotter;
    const worker = snapshotterOnlyWorker(root, snapshotter);
    const full = ContentHashTree.fromEntries(walkLocal(root), { root, rootHeaderDigest: headerDigest(toLocalStat(lstatSync(root), root)) });
    const signal = new AbortController().signal;
    const cases: Array<[string, ChecksumOptions]> = [
      ['/app', {}],
      ['/app/bin/tool', {}],
      ['/app/*.txt', { wildcard: true }],
      ['/app', { includePatterns: ['*.txt'] }],
      ['/lib/x.so', { followLinks: true }],
      ['/alink', {}],
      ['/alink', { followLinks: true }],
      ['/', {}],
    ];
    for (const [p, o] of cases) {
      expect(await worker.checksum({ snapshot: 's', size: 0 }, p, o, signal), `${p} ${JSON.stringify(o)}`).toBe(await full.checksum(p, o));
    }
    await expect(worker.checksum({ snapshot: 's', size: 0 }, '/nope', {}, signal)).rejects.toMatchObject({ code: 'SOLVER_NOT_FOUND' });
  });
});

describe('RuntimeWorker.diff', () => {
  test('an input index past the op inputs fails the definition instead of reading as scratch', async () => {
    const calls: string[] = [];
    const snapshotter = {
      diffLayers: async (id: string, lower: string | undefined, upper: string) => {
        calls.push(`diffLayers ${String(lower)} ${upper}`);
        return { id, kind: 'committed' };
      },
      diffTrees: async (id: string, lower: string | undefined, upper: string | undefined) => {
        calls.push(`diffTrees ${String(lower)} ${String(upper)}`);
        return { id, kind: 'committed' };
      },
    } as unknown as Snapshotter;
    const worker = snapshotterOnlyWorker('/nonexistent', snapshotter);
    const ctx = { signal: new AbortController().signal } as unknown as Parameters<RuntimeWorker['diff']>[2];
    const inputs = [{ snapshot: 'a', size: 0 }, { snapshot: 'c', size: 0 }];
    await expect(worker.diff({ lower: { input: 2 }, upper: { input: 1 } }, inputs, ctx)).rejects.toMatchObject({ code: 'SOLVER_INVALID_DEFINITION' });
    await expect(worker.diff({ lower: { input: 0 }, upper: { input: 5 } }, inputs, ctx)).rejects.toMatchObject({ code: 'SOLVER_INVALID_DEFINITION' });
    expect(calls).toEqual([]);
    // In range: unset is input 0, -1 is scratch.
    await worker.diff({ upper: { input: 1 } }, inputs, ctx);
    await worker.diff({ lower: { input: -1 }, upper: { input: 1 } }, inputs, ctx);
    expect(calls).toEqual(['diffLayers a c', 'diffLayers undefined c']);
  });
});
