import { digestOf, encodeOp, type Definition, type Digest, type Op, type OpMetadata } from '@kiln/llb-core';
import { describe, expect, test } from 'vitest';
import { CacheStore } from './cache/store.js';
import { ExecFailedError, type Worker, type WorkerOpContext } from './llb/worker.js';
import { ProgressStream } from './progress/events.js';
import type { WorkerRef } from './scheduler/types.js';
import { Solver } from './solver.js';

/** Builds a Definition from ops listed inputs-first; the last op is made the terminal. */
function definition(ops: Op[], names: Record<number, string> = {}, extra: Record<number, OpMetadata> = {}): Definition {
  const def: Uint8Array[] = [];
  const metadata = new Map<Digest, OpMetadata>();
  ops.forEach((op, i) => {
    const bytes = encodeOp(op);
    def.push(bytes);
    const d = digestOf(bytes);
    const name = names[i];
    metadata.set(d, { ...(name === undefined ? {} : { description: new Map([['llb.customname', name]]) }), ...(extra[i] ?? {}) });
  });
  const last = def[def.length - 1];
  if (last === undefined) throw new Error('no ops');
  def.push(encodeOp({ kind: 'none', inputs: [{ digest: digestOf(last), index: 0 }] }));
  return { def, metadata };
}
const dg = (ops: Op[], i: number): Digest => digestOf(encodeOp(ops[i] as Op));

/** A fake worker counting calls per op kind; a "local" source's content is a mutable string. */
class CountingWorker implements Worker {
  readonly calls: Record<string, number> = { source: 0, exec: 0, file: 0, merge: 0, diff: 0, checksum: 0 };
  localContent = 'v1';
  failExec: string | undefined;
  #n = 0;
  #ref(kind: string): WorkerRef {
    this.calls[kind] = (this.calls[kind] ?? 0) + 1;
    return { snapshot: `${kind}-${++this.#n}`, size: 1 };
  }
  async sourceCacheKey(op: { identifier?: string }): Promise<string> {
    return op.identifier?.startsWith('local://') === true ? `session:${Math.random()}` : `sha256:${'1'.repeat(64)}`;
  }
  async source(): Promise<WorkerRef> {
    return this.#ref('source');
  }
  async exec(op: { meta?: { args?: readonly string[] } }, _inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef[]> {
    const cmd = (op.meta?.args ?? []).join(' ');
    ctx.log(1, Buffer.from(`ran ${cmd}\n`));
    if (this.failExec !== undefined && cmd.includes(this.failExec)) {
      ctx.log(2, Buffer.from('boom\n'));
      this.calls.exec = (this.calls.exec ?? 0) + 1;
      throw new ExecFailedError(cmd, 2);
    }
    return [this.#ref('exec')];
  }
  async file(): Promise<WorkerRef[]> {
    return [this.#ref('file')];
  }
  async merge(): Promise<WorkerRef> {
    return this.#ref('merge');
  }
  async diff(): Promise<WorkerRef> {
    return this.#ref('diff');
  }
  /** Cache mount ids pruned per solve, with the exec count at that moment. */
  readonly pruned: Array<{ ids: readonly string[]; execsBefore: number }> = [];
  async pruneCacheMounts(ids: readonly string[]): Promise<void> {
    this.pruned.push({ ids: [...ids], execsBefore: this.calls.exec ?? 0 });
  }
  async checksum(ref: WorkerRef, path: string): Promise<string> {
    this.calls.checksum = (this.calls.checksum ?? 0) + 1;
    return digestOf(new TextEncoder().encode(`${ref.snapshot.startsWith('source') ? this.localContent : ref.snapshot}:${path}`));
  }
}

function graph(): Op[] {
  const img: Op = { kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } };
  const ctx: Op = { kind: 'source', inputs: [], source: { identifier: 'local://context' } };
  const ops: Op[] = [img, ctx];
  const run1: Op = {
    kind: 'exec',
    inputs: [{ digest: dg(ops, 0), index: 0 }],
    exec: { meta: { args: ['/bin/sh', '-c', 'echo one'], cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] },
  };
  ops.push(run1);
  const copy: Op = {
    kind: 'file',
    inputs: [{ digest: dg(ops, 2), index: 0 }, { digest: dg(ops, 1), index: 0 }],
    file: { actions: [{ input: 0, secondaryInput: 1, output: 0, action: { kind: 'copy', copy: { src: '/app', dest: '/app', createDestPath: true } } }] },
  };
  ops.push(copy);
  const run2: Op = {
    kind: 'exec',
    inputs: [{ digest: dg(ops, 3), index: 0 }],
    exec: { meta: { args: ['/bin/sh', '-c', 'make'], cwd: '/app' }, mounts: [{ input: 0, dest: '/', output: 0 }] },
  };
  ops.push(run2);
  return ops;
}

describe('Solver.solve(definition)', () => {
  test('first build runs every op; an unchanged rebuild runs no exec; a context change re-runs only what depends on it', async () => {
    const w = new CountingWorker();
    const solver = new Solver({ worker: w, store: CacheStore.open({ path: ':memory:' }), parallelism: 2 });
    const ops = graph();
    const names = { 0: '[base 1/1] FROM busybox', 2: '[stage 1/3] RUN echo one', 3: '[stage 2/3] COPY app /app', 4: '[stage 3/3] RUN make' };
    const r1 = await solver.solve(definition(ops, names));
    expect(r1?.cached).toBe(false);
    expect(w.calls).toMatchObject({ source: 2, exec: 2, file: 1 });

    const progress = new ProgressStream();
    const r2 = await solver.solve(definition(graph(), names), { progress });
    progress.close();
    expect(r2?.cached).toBe(true);
    expect(r2?.ref.snapshot).toBe(r1?.ref.snapshot);
    // The local source is re-synced (never cached), everything else is a hit.
    expect(w.calls).toMatchObject({ source: 3, exec: 2, file: 1 });
    const cachedNames = progress.events().flatMap((e) => (e.kind === 'vertex.cached' ? [e.name] : []));
    expect(cachedNames).toEqual(expect.arrayContaining(['[stage 3/3] RUN make', '[stage 2/3] COPY app /app', '[stage 1/3] RUN echo one']));

    w.localContent = 'v2';
    const r3 = await solver.solve(definition(graph(), names));
    expect(r3?.cached).toBe(false);
    expect(w.calls).toMatchObject({ source: 4, exec: 3, file: 2 });
  });

  test('a failing RUN reports the command, exit code, Dockerfile line and output', async () => {
    const w = new CountingWorker();
    w.failExec = 'make';
    const solver = new Solver({ worker: w, store: CacheStore.open({ path: ':memory:' }) });
    const ops = graph();
    const def = definition(ops, { 4: '[stage 3/3] RUN make' });
    const withSource: Definition = {
      ...def,
      source: {
        infos: [{ filename: 'Dockerfile', data: new TextEncoder().encode('FROM busybox\nRUN echo one\nCOPY app /app\nRUN make\n') }],
        locations: new Map([[dg(ops, 4), { locations: [{ sourceIndex: 0, ranges: [{ start: { line: 4, character: 0 }, end: { line: 4, character: 8 } }] }] }]]),
      },
    };
    await expect(solver.solve(withSource)).rejects.toMatchObject({
      code: 'SOLVER_EXEC_FAILED',
      message: 'process "/bin/sh -c make" did not complete successfully: exit code: 2',
      exitCode: 2,
      command: '/bin/sh -c make',
      op: 'exec',
      vertexName: '[stage 3/3] RUN make',
      location: { file: 'Dockerfile', line: 4, column: 1, source: 'RUN make' },
      logTail: ['ran /bin/sh -c make', 'boom'],
    });
  });

  test('the cache mounts of an exec that ignores the cache are pruned before the build, as BuildKit does for --no-cache (llbsolver detectPrunedCacheID, Worker.PruneCacheMounts)', async () => {
    const w = new CountingWorker();
    const solver = new Solver({ worker: w, store: CacheStore.open({ path: ':memory:' }) });
    const ops = graph();
    const run = ops[4];
    if (run?.kind !== 'exec') throw new Error('graph changed');
    // A cache mount without an id is keyed by its target (dockerfile2llb, mounts.go).
    ops[4] = {
      ...run,
      exec: {
        ...run.exec,
        mounts: [
          ...(run.exec.mounts ?? []),
          { input: -1, dest: '/root/.cache/go-build', output: -1, mountType: 3, cacheOpt: { id: 'gocache' } },
          { input: -1, dest: '/var/cache/apt', output: -1, mountType: 3, cacheOpt: {} },
        ],
      },
    };
    await solver.solve(definition(ops));
    expect(w.pruned).toEqual([]);
    await solver.solve(definition(ops, {}, { 4: { ignoreCache: true } }));
    expect(w.pruned).toEqual([{ ids: ['gocache', '/var/cache/apt'], execsBefore: 2 }]);
    expect(w.calls.exec).toBe(3);
    // --no-cache-filter (a predicate) and --no-cache do the same; an exec that keeps its cache does not.
    await solver.solve(definition(ops), { noCacheFilter: (v) => v.digest === dg(ops, 4) });
    await solver.solve(definition(ops), { noCacheFilter: (v) => v.digest === dg(ops, 2) });
    await solver.solve(definition(ops), { noCache: true });
    expect(w.pruned.map((p) => p.ids)).toEqual([['gocache', '/var/cache/apt'], ['gocache', '/var/cache/apt'], ['gocache', '/var/cache/apt']]);
  });

  test('ignore_cache metadata re-runs a vertex; an empty definition solves to nothing', async () => {
    const w = new CountingWorker();
    const solver = new Solver({ worker: w, store: CacheStore.open({ path: ':memory:' }) });
    await solver.solve(definition(graph()));
    await solver.solve(definition(graph(), {}, { 4: { ignoreCache: true } }));
    expect(w.calls.exec).toBe(3);
    expect(await solver.solve({ def: [], metadata: new Map() })).toBeUndefined();
  });
});
