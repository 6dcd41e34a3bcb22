import { expect, test } from 'vitest';
import type { PrefetchImageOptions } from '@kiln/solver';
import { SolverBackend } from './backend.js';
import type { BuildSolver, KilnEngine } from './engine.js';

test('prefetches a frontend starts end with the build (release) or with its interrupt, never outlive it', async () => {
  const seen: { ref: string; opts: PrefetchImageOptions }[] = [];
  const solver: BuildSolver = {
    build: () => Promise.reject(new Error('not used')),
    prefetchImage: (ref, opts) => void seen.push({ ref, opts }),
  };
  const interrupt = new AbortController();
  // release() touches the engine only for results; this build has none.
  const backend = new SolverBackend({} as KilnEngine, solver, { signal: interrupt.signal });
  backend.prefetchImage('docker.io/library/busybox:latest', { platform: { os: 'linux', architecture: 'amd64' } });
  expect(seen).toHaveLength(1);
  expect(seen[0]?.opts.platform).toEqual({ os: 'linux', architecture: 'amd64' });
  expect(seen[0]?.opts.signal?.aborted).toBe(false);
  await backend.release();
  expect(seen[0]?.opts.signal?.aborted).toBe(true);

  const second = new SolverBackend({} as KilnEngine, solver, { signal: interrupt.signal });
  second.prefetchImage('a', {});
  interrupt.abort();
  expect(seen[1]?.opts.signal?.aborted).toBe(true);
  // an interrupted build starts no more prefetches
  second.prefetchImage('b', {});
  expect(seen).toHaveLength(2);
});
