import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { Snapshotter } from '@kiln/runtime';
import { ContentHashTree, type ChecksumOptions } from '../contenthash/tree.js';
import { headerDigest } from '../contenthash/tarsum.js';
import { toLocalStat, walkLocal } from '../local/walk.js';
import { RuntimeWorker } from './runtime-worker.js';

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
    const worker = new RuntimeWorker({
      root,
      snapshotter,
      executor: { run: () => Promise.reject(new Error('unused')) },
      content: undefined as never,
      ensureImage: () => Promise.reject(new Error('unused')),
      unpackLayer: () => Promise.reject(new Error('unused')),
      applyFileAction: () => Promise.reject(new Error('unused')),
      localDirs: {},
    });
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
