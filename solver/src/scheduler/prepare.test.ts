import { describe, expect, test } from 'vitest';
import { CacheManager } from '../cache/cache-manager.js';
import { CacheStore } from '../cache/store.js';
import { ProgressStream } from '../progress/events.js';
import { Scheduler } from './scheduler.js';
import type { Op, SolverVertex } from './types.js';
import { VertexError } from './vertex-error.js';

// Op.prepare (an exec announcing its run ahead) failing: the op fails like any other step of it.

const D = (s: string): string => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;

function vertex(name: string, inputs: SolverVertex[] = []): SolverVertex {
  return { digest: D(name), name, inputs: inputs.map((v) => ({ vertex: v, index: 0 })), options: { locations: [{ file: 'Dockerfile', line: 4, column: 1 }] }, op: name };
}

describe('Op.prepare', () => {
  test('a prepare that throws fails its vertex with a VertexError (location, vertex.error event), not a bare error', async () => {
    let execs = 0;
    const resolveOp = (v: SolverVertex): Op => ({
      resourceClass: 'exec',
      cacheMap: async () => ({ digest: v.digest, deps: v.inputs.map(() => ({})) }),
      ...(v.name === 'run'
        ? {
            prepare: () => {
              throw Object.assign(new Error('ENOTDIR: not a directory, mkdir'), { code: 'ENOTDIR' });
            },
          }
        : {}),
      exec: async () => {
        execs++;
        return [{ snapshot: `${v.name}-snap`, size: 1 }];
      },
    });
    const s = new Scheduler({ resolveOp, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), parallelism: 2, sessionBound: () => false });
    const progress = new ProgressStream();
    const p = s.build({ vertex: vertex('run', [vertex('base')]), index: 0 }, { progress });
    await expect(p).rejects.toBeInstanceOf(VertexError);
    await expect(p).rejects.toMatchObject({ code: 'SOLVER_EXEC_FAILED', vertexName: 'run', locations: [{ file: 'Dockerfile', line: 4, column: 1 }] });
    progress.close();
    expect(progress.events().filter((e) => e.kind === 'vertex.error').length).toBe(1);
    expect(execs).toBeLessThanOrEqual(1);
  });
});
