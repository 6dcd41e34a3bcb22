import type { Op as LlbOp } from '@kiln/llb-core';
import { SolverError } from '../errors.js';
import type { Op, ResolveOp, SolverVertex } from '../scheduler/types.js';
import { execCacheMap, fileCacheMap, plainCacheMap, sourceCacheMap } from './cache-map.js';
import type { ExecPreparation } from '@kiln/runtime';
import type { Worker, WorkerOpContext } from './worker.js';

/**
 * Maps LLB vertices to solver ops on a {@link Worker}: each kind gets BuildKit's cache map and
 * runs on the matching worker method (BuildKit's llbsolver/ops).
 */
export function resolveLlbOp(worker: Worker): ResolveOp {
  return (vertex: SolverVertex): Op => {
    const op = vertex.op as LlbOp;
    const wctx = (ctx: import('../scheduler/types.js').OpContext): WorkerOpContext => ({ ...ctx, platform: op.platform });
    const checksum = worker.checksum.bind(worker);
    switch (op.kind) {
      case 'source': {
        let local = false;
        return {
          get cacheable() {
            return !local;
          },
          get recordKind() {
            return local ? ('source.local' as const) : ('regular' as const);
          },
          cacheMap: async (ctx) => {
            const key = await worker.sourceCacheKey(op.source, wctx(ctx));
            local = key.startsWith('session:');
            return sourceCacheMap(key);
          },
          exec: async (ctx) => [await worker.source(op.source, wctx(ctx))],
        };
      }
      case 'exec': {
        let prepared: ExecPreparation | undefined;
        return {
          resourceClass: 'exec',
          prepare: () => {
            prepared ??= worker.prepareExec?.();
            const p = prepared;
            return p === undefined ? undefined : () => p.release();
          },
          cacheMap: async () => {
            worker.validateExec?.(op.exec);
            return execCacheMap(op, checksum);
          },
          exec: (ctx, inputs) => worker.exec(op.exec, inputs, prepared === undefined ? wctx(ctx) : { ...wctx(ctx), prepared }),
        };
      }
      case 'file':
        return {
          cacheMap: async () => fileCacheMap(op, checksum),
          exec: (ctx, inputs) => worker.file(op.file, inputs, wctx(ctx)),
        };
      case 'merge':
        return {
          cacheMap: async () => plainCacheMap(op, 'buildkit.merge.v0'),
          exec: async (ctx, inputs) => [await worker.merge(op.merge, inputs, wctx(ctx))],
        };
      case 'diff':
        return {
          cacheMap: async () => plainCacheMap(op, 'buildkit.diff.v0'),
          exec: async (ctx, inputs) => [await worker.diff(op.diff, inputs, wctx(ctx))],
        };
      case 'build': {
        const build = worker.build?.bind(worker);
        const def = op.build.def;
        return {
          cacheMap: async () => plainCacheMap(op, 'buildkit.build.v0'),
          exec: async (ctx) => {
            if (build === undefined || def === undefined) throw new SolverError('SOLVER_UNSUPPORTED', 'BuildOp is not supported by this worker');
            return [await build(def, wctx(ctx))];
          },
        };
      }
      case 'none':
        throw new SolverError('SOLVER_INVALID_DEFINITION', `op ${vertex.digest} has no body`);
      default: {
        const never: never = op;
        return never;
      }
    }
  };
}
