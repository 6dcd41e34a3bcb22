import { describe, expect, test } from 'vitest';
import { CacheManager } from '../cache/cache-manager.js';
import { CacheStore } from '../cache/store.js';
import { SolverError } from '../errors.js';
import { ProgressStream, type ProgressEvent } from '../progress/events.js';
import { InflightIndex, NO_DIGESTS, mergeId } from './inflight.js';
import { Scheduler } from './scheduler.js';
import type { Op, SolverEdge, SolverVertex, WorkerRef } from './types.js';
import { VertexError } from './vertex-error.js';

// Merging by cache key (BuildKit's edge merging): two builds' vertices with different digests
// (below their own local sources) whose keys meet once the contexts' checksums are known.

interface FakeOp {
  readonly kind: 'local' | 'copy' | 'exec' | 'source';
  /** What a local source holds: its content digest. */
  readonly content?: string;
  readonly delay?: number;
  readonly fail?: boolean;
}

const D = (s: string): string => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;

class FakeWorker {
  readonly execs = new Map<string, number>();
  readonly contents = new Map<string, string>();
  /** Resolves when `name` has started running (its n-th run). */
  readonly started = new Map<string, () => void>();

  count(name: string): number {
    return this.execs.get(name) ?? 0;
  }

  resolve = (v: SolverVertex): Op => {
    const op = v.op as FakeOp;
    return {
      cacheable: op.kind !== 'local',
      resourceClass: op.kind === 'exec' ? 'exec' : 'cpu',
      cacheMap: async () => ({
        // A local source's key is random per build (BuildKit: a session-bound source).
        digest: op.kind === 'local' ? `random:${Math.random()}` : D(`op:${v.name.replace(/^\S+ /, '')}`),
        deps: v.inputs.map(() => (op.kind === 'copy' ? { computeDigest: async (ref: WorkerRef) => this.contents.get(ref.snapshot) ?? ref.snapshot } : {})),
      }),
      exec: async (ctx, inputs) => {
        const n = this.count(v.name) + 1;
        this.execs.set(v.name, n);
        ctx.log(1, Buffer.from(`running ${v.name}\n`));
        this.started.get(v.name)?.();
        if (op.delay !== undefined) {
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(resolve, op.delay);
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(t);
              reject(new Error('killed'));
            });
          });
        }
        if (op.fail === true) {
          ctx.log(2, Buffer.from('boom\n'));
          throw Object.assign(new Error('exit status 1'), { exitCode: 1, command: '/bin/sh -c slow-thing' });
        }
        const snapshot = `${v.name}#${n}<${inputs.map((i) => i.snapshot).join(',')}>`;
        if (op.content !== undefined) this.contents.set(snapshot, op.content);
        return [{ snapshot, size: 1 }];
      },
    };
  };

  /** Resolves once `name` runs. */
  whenStarted(name: string): Promise<void> {
    return new Promise((resolve) => this.started.set(name, resolve));
  }
}

/**
 * One build's graph: its own local source (`ctx`), `COPY . /src` onto a base image, then the
 * shared `RUN`. Each build's vertices have digests of their own (`tag` is part of every name,
 * as the session is part of a local source's identity), at Dockerfile line `line`.
 */
function graph(tag: string, opts: { content?: string; run?: Partial<FakeOp>; line?: number; ignoreCache?: boolean } = {}): SolverEdge {
  const v = (name: string, op: FakeOp, inputs: SolverVertex[] = [], ignoreCache = false): SolverVertex => ({
    digest: D(`${tag}:${name}`),
    name: `${tag} ${name}`,
    inputs: inputs.map((vertex) => ({ vertex, index: 0 })),
    options: { ignoreCache, locations: [{ file: `${tag}.Dockerfile`, line: opts.line ?? 3, column: 1 }] },
    op,
  });
  const base = v('base', { kind: 'source' });
  const ctx = v('ctx', { kind: 'local', content: opts.content ?? 'context-1' });
  const copy = v('copy', { kind: 'copy' }, [ctx]);
  const run = v('run', { kind: 'exec', delay: 150, ...opts.run }, [base, copy], opts.ignoreCache === true);
  return { vertex: run, index: 0 };
}

function setup(): { w: FakeWorker; s: Scheduler } {
  const w = new FakeWorker();
  const store = CacheStore.open({ path: ':memory:' });
  const sessionBound = (v: SolverVertex): boolean => (v.op as FakeOp).kind === 'local';
  return { w, s: new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(store), sessionBound }) };
}

const runs = (w: FakeWorker, kind: string): number => [...w.execs.entries()].filter(([n]) => n.endsWith(` ${kind}`)).reduce((a, [, c]) => a + c, 0);
const noop = (): void => undefined;
const started = (p: ProgressStream): ProgressEvent[] => p.events().filter((e) => e.kind === 'vertex.started' && e.name.endsWith(' run'));

describe('Scheduler: merging by cache key', () => {
  test('two builds with their own local sources of equal content run the step below them once and both take its result', async () => {
    const { w, s } = setup();
    const pa = new ProgressStream();
    const pb = new ProgressStream();
    const [a, b] = await Promise.all([s.build(graph('a'), { session: 'a', progress: pa }), s.build(graph('b'), { session: 'b', progress: pb })]);
    pa.close();
    pb.close();
    expect(runs(w, 'ctx')).toBe(2); // each build syncs its own context
    expect(runs(w, 'copy')).toBe(1);
    expect(runs(w, 'run')).toBe(1);
    expect(b.ref.snapshot).toBe(a.ref.snapshot);
    expect(a.cached || b.cached).toBe(false);
    // The waiting build shows the step as running and done (the same events: a merged progress
    // such as bake's shows it once), not as CACHED.
    const sa = started(pa);
    const sb = started(pb);
    expect(sa).toHaveLength(1);
    expect(sb).toEqual(sa);
    expect(sb[0]).toBe(sa[0]);
    const done = (p: ProgressStream): boolean => p.events().some((e) => e.kind === 'vertex.done' && e.vertex === sa[0]?.vertex);
    expect(done(pa) && done(pb)).toBe(true);
    expect(pb.events().some((e) => e.kind === 'log' && e.vertex === sa[0]?.vertex)).toBe(true);
    expect(pb.events().some((e) => e.kind === 'vertex.cached' && e.vertex === sa[0]?.vertex)).toBe(false);
    // The waiting build does not see the other build's own local source.
    expect(pb.events().some((e) => e.kind === 'vertex.started' && e.name === 'a ctx')).toBe(false);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
    a.release();
    b.release();
  });

  test('different context content: different keys, no merge', async () => {
    const { w, s } = setup();
    const [a, b] = await Promise.all([s.build(graph('a'), { session: 'a' }), s.build(graph('b', { content: 'context-2' }), { session: 'b' })]);
    expect(runs(w, 'run')).toBe(2);
    expect(b.ref.snapshot).not.toBe(a.ref.snapshot);
    expect(s.inflightKeys).toBe(0);
  });

  test('the owner build cancelled while the other waits: the step goes on for the other', async () => {
    const { w, s } = setup();
    const ctl = new AbortController();
    const running = w.whenStarted('a run');
    const a = s.build(graph('a', { run: { delay: 300 } }), { session: 'a', signal: ctl.signal });
    await running;
    const pb = new ProgressStream();
    const b = s.build(graph('b', { run: { delay: 300 } }), { session: 'b', progress: pb });
    await new Promise((r) => setTimeout(r, 50));
    ctl.abort();
    await expect(a).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    const rb = await b;
    pb.close();
    expect(runs(w, 'run')).toBe(1);
    expect(rb.ref.snapshot).toMatch(/^a run#1/);
    // b was not told the step was cancelled: it saw it run and finish.
    expect(pb.events().some((e) => e.kind === 'vertex.error')).toBe(false);
    expect(pb.events().some((e) => e.kind === 'vertex.done' && e.vertex === started(pb)[0]?.vertex)).toBe(true);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
  });

  test('a failing shared step fails both builds, each with its own vertex and line', async () => {
    const { w, s } = setup();
    const a = s.build(graph('a', { run: { fail: true }, line: 3 }), { session: 'a' });
    const b = s.build(graph('b', { run: { fail: true }, line: 7 }), { session: 'b' });
    const [ea, eb] = await Promise.all([a.catch((e: unknown) => e), b.catch((e: unknown) => e)]);
    expect(runs(w, 'run')).toBe(1);
    expect(ea).toBeInstanceOf(VertexError);
    expect(eb).toBeInstanceOf(VertexError);
    expect(ea).toMatchObject({ vertexName: 'a run', exitCode: 1, command: '/bin/sh -c slow-thing', location: { file: 'a.Dockerfile', line: 3 } });
    expect(eb).toMatchObject({ vertexName: 'b run', exitCode: 1, command: '/bin/sh -c slow-thing', location: { file: 'b.Dockerfile', line: 7 } });
    expect((eb as VertexError).logTail).toEqual(['running a run', 'boom']);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
  });

  test('when the run it waits for stops for a reason other than the step failing, the waiting build runs the step itself', async () => {
    const { w, s } = setup();
    // Build a's worker gives up on the RUN (as when its own session goes away under the step):
    // not the step's failure, so b must not fail with it.
    const gaveUp = (v: SolverVertex): Op => {
      const op = w.resolve(v);
      if (!v.name.endsWith(' run')) return op;
      return {
        ...op,
        exec: async () => {
          await new Promise((r) => setTimeout(r, 80));
          throw new SolverError('SOLVER_CANCELLED', 'session closed');
        },
      };
    };
    const running = w.whenStarted('a copy');
    const a = s.build(graph('a'), { session: 'a', resolveOp: gaveUp });
    await running;
    const pb = new ProgressStream();
    const b = s.build(graph('b'), { session: 'b', progress: pb });
    await expect(a).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    const rb = await b;
    pb.close();
    expect(rb.ref.snapshot).toMatch(/^b run#1/);
    expect(runs(w, 'run')).toBe(1); // b's own run: a's never reached the fake worker
    // b did wait for a's run first (it saw it start), then ran its own.
    expect(started(pb).map((e) => (e.kind === 'vertex.started' ? e.name : ''))).toEqual(['a run', 'b run']);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
  });

  test('a waiting build that was cancelled does not run the step itself when the run it waited for stops', async () => {
    const { w, s } = setup();
    const prepared: string[] = [];
    // The RUN's op counts its preparations (a container runtime made ready): a step is prepared
    // only when it is about to run.
    const counting =
      (gaveUp: boolean) =>
      (v: SolverVertex): Op => {
        const op = w.resolve(v);
        if (!v.name.endsWith(' run')) return op;
        const prepare = (): undefined => void prepared.push(v.name);
        if (!gaveUp) return { ...op, prepare };
        return {
          ...op,
          prepare,
          exec: async () => {
            await new Promise((r) => setTimeout(r, 150));
            throw new SolverError('SOLVER_CANCELLED', 'session closed');
          },
        };
      };
    const running = w.whenStarted('a copy');
    const a = s.build(graph('a'), { session: 'a', resolveOp: counting(true) });
    a.catch(noop);
    await running;
    const ctl = new AbortController();
    const b = s.build(graph('b'), { session: 'b', resolveOp: counting(false), signal: ctl.signal });
    b.catch(noop);
    await new Promise((r) => setTimeout(r, 60));
    ctl.abort();
    await expect(b).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    await expect(a).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    await new Promise((r) => setTimeout(r, 50));
    // Only a's run was prepared: b, which nobody needs any more, neither prepares nor runs its own.
    expect(prepared).toEqual(['a run']);
    expect(runs(w, 'run')).toBe(0);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
  });

  test('a run kept going only for the builds that wait for it fails in the session of the build that left: they run the step themselves', async () => {
    const { w, s } = setup();
    const ctl = new AbortController();
    // a's RUN needs a's session to the end (an ssh agent kiln stops when a's build ends): it fails
    // once a has left, which is not a failure of the step for b.
    const sessionBound = (v: SolverVertex): Op => {
      const op = w.resolve(v);
      if (!v.name.endsWith(' run')) return op;
      return {
        ...op,
        exec: async (ctx) => {
          ctx.log(1, Buffer.from('running a run\n'));
          await new Promise((r) => setTimeout(r, 150));
          if (ctl.signal.aborted) throw Object.assign(new Error('exit status 128'), { exitCode: 128, command: '/bin/sh -c git clone' });
          return [{ snapshot: 'a-run', size: 1 }];
        },
      };
    };
    const running = w.whenStarted('a copy');
    const a = s.build(graph('a'), { session: 'a', resolveOp: sessionBound, signal: ctl.signal });
    a.catch(noop);
    await running;
    const pb = new ProgressStream();
    const b = s.build(graph('b'), { session: 'b', progress: pb });
    await new Promise((r) => setTimeout(r, 60));
    ctl.abort();
    await expect(a).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    const rb = await b;
    pb.close();
    expect(rb.ref.snapshot).toMatch(/^b run#1/);
    // b saw a's run start, then end as cancelled for it (not as b's error), then its own run.
    const theRuns = new Set([D('a:run'), D('b:run')]);
    const ofRun = pb.events().filter((e) => (e.kind === 'vertex.started' || e.kind === 'vertex.error' || e.kind === 'vertex.done') && theRuns.has(e.vertex));
    expect(ofRun.map((e) => `${e.kind}${e.kind === 'vertex.error' ? `:${e.error}` : ''}`)).toEqual(['vertex.started', 'vertex.error:cancelled', 'vertex.started', 'vertex.done']);
    expect(s.inflightKeys).toBe(0);
    expect(s.activeVertices).toBe(0);
  });

  test('a build that ignores the cache (--no-cache) runs its own step beside a normal one', async () => {
    for (const first of ['normal', 'no-cache'] as const) {
      const { w, s } = setup();
      const normal = (): Promise<unknown> => s.build(graph('n'), { session: 'n' });
      const fresh = (): Promise<unknown> => s.build(graph('f'), { session: 'f', noCache: true });
      const one = first === 'normal' ? normal() : fresh();
      await w.whenStarted(first === 'normal' ? 'n run' : 'f run');
      await Promise.all([one, first === 'normal' ? fresh() : normal()]);
      expect(runs(w, 'run')).toBe(2);
      expect(s.inflightKeys).toBe(0);
    }
  });

  test('a step that ignores the cache is never merged into a normal run; a normal one may take its new result', async () => {
    for (const first of ['normal', 'no-cache'] as const) {
      const { w, s } = setup();
      const normal = (): Promise<unknown> => s.build(graph('n'), { session: 'n' });
      const fresh = (): Promise<unknown> => s.build(graph('f'), { session: 'f', noCacheFilter: (v) => v.name === 'f run' });
      const one = first === 'normal' ? normal() : fresh();
      await w.whenStarted(first === 'normal' ? 'n run' : 'f run');
      await Promise.all([one, first === 'normal' ? fresh() : normal()]);
      // BuildKit (solver/index.go LoadOrStore): an ignore-cache edge does not merge into one that
      // uses the cache; the other way round it does (a new run is as good as any for a miss).
      expect(runs(w, 'run')).toBe(first === 'normal' ? 2 : 1);
      expect(s.inflightKeys).toBe(0);
    }
  });

  test('a step on an input that ignored the cache never takes the run of one built on a cached result', async () => {
    const { w, s } = setup();
    await s.build(graph('old'), { session: 'old' });
    expect(runs(w, 'run')).toBe(1);
    // Same graph with a step after the RUN: the normal build finds the RUN cached and runs `after`;
    // the no-cache-filter build reruns the RUN and must run its own `after` on that new result.
    const withAfter = (tag: string): SolverEdge => {
      const run = graph(tag).vertex;
      return { vertex: { digest: D(`${tag}:after`), name: `${tag} after`, inputs: [{ vertex: run, index: 0 }], options: {}, op: { kind: 'exec', delay: 150 } satisfies FakeOp }, index: 0 };
    };
    const n = s.build(withAfter('n'), { session: 'n' });
    const f = s.build(withAfter('f'), { session: 'f', noCacheFilter: (v) => v.name === 'f run' });
    const [rn, rf] = await Promise.all([n, f]);
    expect(runs(w, 'run')).toBe(2);
    expect(runs(w, 'after')).toBe(2);
    expect(rf.ref.snapshot).toContain('f run#1');
    expect(rn.ref.snapshot).not.toContain('f run#1');
  });
});

describe('InflightIndex', () => {
  test('the first owner of an id keeps it; deleting an owner removes all its ids and only its own', () => {
    const idx = new InflightIndex<object>();
    const a = {};
    const b = {};
    idx.add('k1', a);
    idx.add('k2', a);
    idx.add('k1', b);
    idx.add('k3', b);
    expect(idx.get('k1')).toBe(a);
    expect(idx.size).toBe(3);
    idx.delete(a);
    expect(idx.get('k1')).toBeUndefined();
    expect(idx.get('k2')).toBeUndefined();
    expect(idx.get('k3')).toBe(b);
    idx.delete(a);
    idx.delete(b);
    expect(idx.size).toBe(0);
  });
});

describe('mergeId', () => {
  const cm = { digest: D('exec'), deps: [{}, { selector: D('sel') }] };
  const inputs = [{ id: D('base') }, { id: D('copy') }];
  const id = mergeId(cm, 0, inputs, NO_DIGESTS, true, false);

  test('equal for the same op, output and inputs; different when any of them differs', () => {
    expect(mergeId(cm, 0, inputs, NO_DIGESTS, true, false)).toBe(id);
    expect(mergeId({ ...cm, digest: D('exec2') }, 0, inputs, NO_DIGESTS, true, false)).not.toBe(id);
    expect(mergeId(cm, 1, inputs, NO_DIGESTS, true, false)).not.toBe(id);
    expect(mergeId(cm, 0, [inputs[0] as { id: string }, { id: D('copy2') }], NO_DIGESTS, true, false)).not.toBe(id);
    expect(mergeId({ ...cm, deps: [{}, { selector: D('other') }] }, 0, inputs, NO_DIGESTS, true, false)).not.toBe(id);
  });

  test('an input keyed by content counts by its content digest alone, with its selector', () => {
    const byContent = mergeId(cm, 0, inputs, [undefined, D('files')], true, false);
    expect(byContent).not.toBe(id);
    expect(mergeId(cm, 0, [inputs[0] as { id: string }, { id: D('another-copy') }], [undefined, D('files')], true, false)).toBe(byContent);
    expect(mergeId(cm, 0, inputs, [undefined, D('other-files')], true, false)).not.toBe(byContent);
    expect(mergeId({ ...cm, deps: [{}, { selector: D('other') }] }, 0, inputs, [undefined, D('files')], true, false)).not.toBe(byContent);
  });

  test('an op that ignores the cache has ids of its own; an uncacheable one never merges', () => {
    expect(mergeId(cm, 0, inputs, NO_DIGESTS, true, true)).toBe(`!${id}`);
    expect(mergeId(cm, 0, [{ id: `!${D('base')}` }, inputs[1] as { id: string }], NO_DIGESTS, true, false)).not.toBe(id);
    const local = mergeId({ digest: D('local'), deps: [] }, 0, [], NO_DIGESTS, false, false);
    expect(local).toMatch(/^random:/);
    expect(mergeId({ digest: D('local'), deps: [] }, 0, [], NO_DIGESTS, false, false)).not.toBe(local);
  });
});
