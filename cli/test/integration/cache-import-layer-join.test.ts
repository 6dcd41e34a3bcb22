import { mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test as base } from 'vitest';
import { digestOf, encodeOp, type Definition, type Op } from '@kiln/llb-core';
import { createBusyboxImage, type SnapshotOptions } from '@kiln/runtime';
import { ImportedCache, RuntimeWorker, Solver, chainIds, layerSnapshotId, type OpContext, type SolverVertex } from '@kiln/solver';
import { importedResultLoader } from '../../src/engine/cache-import.js';
import { KilnEngine } from '../../src/engine/engine.js';
import { requireTools } from './build-helpers.js';

// A cache import and a FROM of an image that need the same layer at the same moment, on one real
// engine (its overlay snapshotter, content store and cache store): one unpack makes the
// `layer-<chainID>` snapshot and the other joins it, whichever starts first.

const IMAGE = 'localhost:5000/join-busybox:latest';
const RECORD = `sha256:${'1'.repeat(64)}`;

interface Sandbox {
  readonly engine: KilnEngine;
  /** The busybox layer's snapshot id, which both the FROM and the import make. */
  readonly layerId: string;
  readonly cache: ImportedCache;
  /** Every `prepare` of a temporary snapshot to unpack the layer into, and every commit of it. */
  readonly prepares: string[];
  readonly commits: string[];
  /** Holds those prepares until released: the first unpack stays in flight while the other caller starts. */
  readonly gate: { release: () => void };
}

const test = base.extend<{ sandbox: Sandbox }>({
  sandbox: async ({}, use) => {
    requireTools();
    const root = await mkdtemp(join(tmpdir(), 'kiln-layer-join-'));
    const engine = await KilnEngine.open({ root });
    try {
      const img = await createBusyboxImage(engine.content, { names: [IMAGE], images: engine.images });
      const layerId = layerSnapshotId(chainIds([img.diffID])[0] ?? '');
      // The image's own layer as a one-layer cache (as an inline cache of that image would describe it).
      const desc = { mediaType: img.layer.mediaType, digest: img.layer.digest, size: img.layer.size, annotations: { 'containerd.io/uncompressed': img.diffID } };
      const config = { layers: [{ blob: desc.digest, parent: -1 }], records: [{ digest: RECORD, inputs: [], results: [{ layer: 0, createdAt: '2024-01-01T00:00:00Z' }] }] };
      const cache = new ImportedCache('test cache', config, new Map([[desc.digest, desc]]), () => engine.content.readStream(img.layer.digest));
      const prepares: string[] = [];
      const commits: string[] = [];
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      const s = engine.snapshotter;
      const prepare = s.prepare.bind(s);
      const commit = s.commit.bind(s);
      s.prepare = async (id: string, parent?: string, opts?: SnapshotOptions) => {
        if (id.startsWith(`${layerId}.unpack-`)) {
          prepares.push(id);
          await held;
        }
        return prepare(id, parent, opts);
      };
      s.commit = async (id: string, active: string, opts?: SnapshotOptions) => {
        if (id === layerId) commits.push(active);
        return commit(id, active, opts);
      };
      await use({ engine, layerId, cache, prepares, commits, gate: { release } });
    } finally {
      engine.close();
      await rm(root, { recursive: true, force: true });
    }
  },
});

/** A Definition of one FROM of the image. */
function fromImage(): Definition {
  const op: Op = { kind: 'source', inputs: [], source: { identifier: `docker-image://${IMAGE}` } };
  const bytes = encodeOp(op);
  return { def: [bytes, encodeOp({ kind: 'none', inputs: [{ digest: digestOf(bytes), index: 0 }] })], metadata: new Map() };
}

function ctxOf(signal: AbortSignal): OpContext {
  return { signal, vertex: { digest: 'sha256:test', name: 'test' } as SolverVertex, log: () => undefined, status: () => undefined };
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

async function fromBuild(engine: KilnEngine) {
  const solver = new Solver({ worker: new RuntimeWorker(engine.workerDeps({ localDirs: {} })), store: engine.cache });
  return solver.solve(fromImage());
}

describe('a cache import and a FROM of the same layer at once', () => {
  test('the FROM joins the unpack the cache import started: one unpack, one commit, the same working snapshot', async ({ sandbox }) => {
    const { engine, layerId, cache, prepares, commits, gate } = sandbox;
    const step = new AbortController();
    const result = cache.results(RECORD)[0];
    if (result === undefined) throw new Error('no result in the test cache');
    const imported = importedResultLoader(engine)(result, ctxOf(step.signal));
    await until(() => prepares.length === 1); // the import is inside its unpack
    const built = fromBuild(engine);
    await settle();
    expect(prepares).toHaveLength(1); // the FROM waits for the import's unpack
    gate.release();
    const [ref, r] = await Promise.all([imported, built]);
    expect(ref.snapshot).toBe(layerId);
    expect(r?.ref.snapshot).toBe(layerId);
    expect(prepares).toHaveLength(1);
    expect(commits).toHaveLength(1);
    const m = await engine.snapshotter.mount(layerId);
    try {
      expect(await readlink(join(m.path, 'bin/sh'))).toMatch(/busybox$/);
    } finally {
      await m.release();
    }
    r?.release();
    step.abort();
  }, 120_000);

  test('the cache import joins the unpack a FROM started: one unpack, one commit', async ({ sandbox }) => {
    const { engine, layerId, cache, prepares, commits, gate } = sandbox;
    const built = fromBuild(engine);
    await until(() => prepares.length === 1); // the FROM is inside its unpack
    const step = new AbortController();
    const result = cache.results(RECORD)[0];
    if (result === undefined) throw new Error('no result in the test cache');
    const imported = importedResultLoader(engine)(result, ctxOf(step.signal));
    await settle();
    expect(prepares).toHaveLength(1); // the import waits for the FROM's unpack
    gate.release();
    const [r, ref] = await Promise.all([built, imported]);
    expect(r?.ref.snapshot).toBe(layerId);
    expect(ref.snapshot).toBe(layerId);
    expect(prepares).toHaveLength(1);
    expect(commits).toHaveLength(1);
    r?.release();
    step.abort();
  }, 120_000);
});
