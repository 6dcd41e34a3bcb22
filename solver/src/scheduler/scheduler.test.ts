import { describe, expect, test } from 'vitest';
import { CacheManager } from '../cache/cache-manager.js';
import { CacheStore } from '../cache/store.js';
import { ProgressStream } from '../progress/events.js';
import { Scheduler, defaultParallelism } from './scheduler.js';
import type { CacheMapDep, Op, SolverEdge, SolverVertex, WorkerRef } from './types.js';
import { VertexError } from './vertex-error.js';
import { SolverError } from '../errors.js';

/** What a fake vertex does: its op payload. */
interface FakeOp {
  readonly kind: string;
  readonly delay?: number;
  readonly fail?: { exitCode: number; output: string };
  readonly deps?: readonly CacheMapDep[];
  readonly cacheable?: boolean;
  /** The op's resource class (a fake container is `exec`). */
  readonly resourceClass?: 'cpu' | 'exec';
  /** Content the op "produces": a content digest input for children's slow keys. */
  readonly content?: string;
  /** Its key needs a download (an http source): status reported from cacheMap. */
  readonly fetchesForKey?: boolean;
}

const D = (s: string): string => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;

function vertex(name: string, op: FakeOp, inputs: SolverVertex<FakeOp>[] = [], ignoreCache = false): SolverVertex<FakeOp> {
  return {
    digest: D(name),
    name,
    inputs: inputs.map((v) => ({ vertex: v, index: 0 })),
    options: { ignoreCache, locations: [{ file: 'Dockerfile', line: 3, column: 1 }] },
    op,
  };
}
const edge = (v: SolverVertex<FakeOp>): SolverEdge => ({ vertex: v, index: 0 });

/** A fake worker: counts execs per vertex and records when each ran. */
class FakeWorker {
  readonly execs = new Map<string, number>();
  readonly spans: Array<{ name: string; start: number; end: number }> = [];
  running = 0;
  maxRunning = 0;
  /** `prepare:`, `release:`, `start:` and `end:` of exec-kind vertices, in order. */
  readonly events: string[] = [];
  total(): number {
    return [...this.execs.values()].reduce((a, b) => a + b, 0);
  }
  resolve = (v: SolverVertex): Op => {
    const op = v.op as FakeOp;
    const note = (what: string): void => {
      if (op.kind === 'exec') this.events.push(`${what}:${v.name}`);
    };
    return {
      cacheable: op.cacheable ?? true,
      ...(op.resourceClass === undefined ? {} : { resourceClass: op.resourceClass }),
      prepare: () => {
        note('prepare');
        return () => note('release');
      },
      cacheMap: async (ctx) => {
        if (op.fetchesForKey === true) ctx.status(`https://example.test/${v.name}`, 6, 6, true);
        return { digest: op.cacheable === false ? `random:${Math.random()}` : v.digest, deps: op.deps ?? v.inputs.map(() => ({})) };
      },
      exec: async (ctx, inputs): Promise<WorkerRef[]> => {
        const n = (this.execs.get(v.name) ?? 0) + 1;
        this.execs.set(v.name, n);
        this.running++;
        this.maxRunning = Math.max(this.maxRunning, this.running);
        const start = performance.now();
        note('start');
        try {
          ctx.log(1, Buffer.from(`running ${v.name}\n`));
          if (op.delay !== undefined) {
            await new Promise<void>((resolve, reject) => {
              const t = setTimeout(resolve, op.delay);
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(t);
                reject(new Error('killed'));
              });
            });
          }
          if (op.fail !== undefined) {
            ctx.log(2, Buffer.from(op.fail.output));
            throw Object.assign(new Error('exit status'), { exitCode: op.fail.exitCode, command: '/bin/sh -c false' });
          }
          return [{ snapshot: `${v.name}#${n}<${inputs.map((i) => i.snapshot).join(',')}>`, size: 1 }];
        } finally {
          note('end');
          this.running--;
          this.spans.push({ name: v.name, start, end: performance.now() });
        }
      },
    };
  };
}

function setup(parallelism = 4): { w: FakeWorker; s: Scheduler; store: CacheStore } {
  const w = new FakeWorker();
  const store = CacheStore.open({ path: ':memory:' });
  const sessionBound = (v: SolverVertex): boolean => (v.op as FakeOp).kind === 'local';
  return { w, store, s: new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(store), parallelism, sessionBound }) };
}

describe('Scheduler', () => {
  test('a second build of the same graph is a cache hit that runs zero execs', async () => {
    const { w, s } = setup();
    const base = vertex('base', { kind: 'source' });
    const run = vertex('run', { kind: 'exec' }, [base]);
    const r1 = await s.build(edge(run));
    expect(r1.cached).toBe(false);
    expect(w.total()).toBe(2);
    const progress = new ProgressStream();
    const r2 = await s.build(edge(vertex('run', { kind: 'exec' }, [vertex('base', { kind: 'source' })])), { progress });
    progress.close();
    expect(w.total()).toBe(2);
    expect(r2.cached).toBe(true);
    expect(r2.ref.snapshot).toBe(r1.ref.snapshot);
    expect(progress.events().filter((e) => e.kind === 'vertex.cached').map((e) => (e.kind === 'vertex.cached' ? e.name : ''))).toEqual(['base', 'run']);
  });

  test('status an op reports while its key is computed (a download) comes after its step is started by name; a cache hit then ends it', async () => {
    const { s } = setup();
    const kinds = (p: ProgressStream): string[] => p.events().map((e) => (e.kind === 'vertex.started' ? `started ${e.name}` : e.kind));
    const first = new ProgressStream();
    await s.build(edge(vertex('fetched', { kind: 'source', fetchesForKey: true })), { progress: first });
    first.close();
    expect(kinds(first)).toEqual(['started fetched', 'status', 'started fetched', 'log', 'vertex.done']);
    const again = new ProgressStream();
    await s.build(edge(vertex('fetched', { kind: 'source', fetchesForKey: true })), { progress: again });
    again.close();
    expect(kinds(again)).toEqual(['started fetched', 'status', 'vertex.cached']);
  });

  test('a source fetched for its key and then not needed (its child hits, its own result was pruned) ends done, not cancelled (review of af3ac75)', async () => {
    const { w, s, store } = setup(4);
    const fetched = vertex('fetched', { kind: 'source', fetchesForKey: true });
    const r = vertex('r', { kind: 'exec' }, [fetched]);
    await s.build(edge(r));
    expect((await store.prune({ keepStorage: 1 })).length).toBe(1);
    const again = new ProgressStream();
    await s.build(edge(r), { progress: again });
    again.close();
    expect(Object.fromEntries(w.execs)).toEqual({ fetched: 1, r: 1 });
    const ofFetched = again.events().filter((e) => e.kind !== 'status' && 'vertex' in e && e.vertex === fetched.digest).map((e) => (e.kind === 'vertex.error' ? `error ${e.error}` : e.kind));
    expect(ofFetched).toEqual(['vertex.started', 'vertex.done']);
  });

  test('a diamond runs its shared vertex once; an independent pair overlaps in time', async () => {
    const { w, s } = setup(4);
    const root = vertex('root', { kind: 'source', delay: 20 });
    const left = vertex('left', { kind: 'exec', delay: 200 }, [root]);
    const right = vertex('right', { kind: 'exec', delay: 200 }, [root]);
    const join = vertex('join', { kind: 'merge' }, [left, right]);
    const t0 = performance.now();
    await s.build(edge(join));
    const elapsed = performance.now() - t0;
    expect(Object.fromEntries(w.execs)).toEqual({ root: 1, left: 1, right: 1, join: 1 });
    expect(w.maxRunning).toBe(2);
    const l = w.spans.find((x) => x.name === 'left');
    const r = w.spans.find((x) => x.name === 'right');
    expect(l !== undefined && r !== undefined && l.start < r.end && r.start < l.end).toBe(true);
    expect(elapsed).toBeLessThan(380); // sequential would be > 420ms
  });

  test('an exec that will run is announced (Op.prepare) while its input still runs, released after its run or when an input fails; a cached one is not', async () => {
    const { w, s } = setup();
    const chain = (): SolverVertex<FakeOp> =>
      vertex('b', { kind: 'exec', delay: 30 }, [vertex('a', { kind: 'exec', delay: 30 }, [vertex('base', { kind: 'source', delay: 30 })])]);
    await s.build(edge(chain()));
    const ev = w.events;
    expect(ev.indexOf('prepare:b')).toBeLessThan(ev.indexOf('end:a'));
    expect(ev.indexOf('prepare:a')).toBeLessThan(ev.indexOf('start:a'));
    expect(ev.indexOf('release:a')).toBeGreaterThan(ev.indexOf('end:a'));
    expect(ev.indexOf('release:b')).toBeGreaterThan(ev.indexOf('end:b'));
    expect(ev.filter((e) => e.startsWith('prepare:'))).toHaveLength(2);
    ev.length = 0;
    await s.build(edge(chain()));
    expect(ev).toEqual([]);
    const failing = vertex('c', { kind: 'exec' }, [vertex('broken', { kind: 'source', fail: { exitCode: 1, output: 'no\n' } })]);
    await expect(s.build(edge(failing))).rejects.toBeInstanceOf(VertexError);
    expect(ev).toEqual(['prepare:c', 'release:c']);
  });

  test('parallelism bounds how many ops run at once', async () => {
    const { w, s } = setup(2);
    const leaves = ['a', 'b', 'c', 'd', 'e'].map((n) => vertex(n, { kind: 'exec', delay: 30 }));
    await s.build(edge(vertex('all', { kind: 'merge' }, leaves)));
    expect(w.maxRunning).toBe(2);
    expect(w.total()).toBe(6);
  });

  test('with the default bounds on a 2-core machine, 4 independent exec vertices overlap while cpu ops stay at 2', async () => {
    const w = new FakeWorker();
    const s = new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), cpus: 2 });
    const execs = ['a', 'b', 'c', 'd'].map((n) => vertex(`run-${n}`, { kind: 'exec', resourceClass: 'exec', delay: 200 }));
    const t0 = performance.now();
    await s.build(edge(vertex('join', { kind: 'merge' }, execs)));
    expect(w.maxRunning).toBe(4);
    expect(performance.now() - t0).toBeLessThan(395); // 2 at a time would take > 400ms
    const all = execs.map((v) => w.spans.find((x) => x.name === v.name));
    const lastStart = Math.max(...all.map((x) => x?.start ?? Infinity));
    const firstEnd = Math.min(...all.map((x) => x?.end ?? -Infinity));
    expect(lastStart).toBeLessThan(firstEnd); // all four ran at the same moment

    // kiln's own CPU-bound ops keep the core-count bound, independently of running execs.
    const w2 = new FakeWorker();
    const s2 = new Scheduler({ resolveOp: w2.resolve, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), cpus: 2 });
    const copies = ['a', 'b', 'c', 'd'].map((n) => vertex(`copy-${n}`, { kind: 'file', delay: 30 }));
    await s2.build(edge(vertex('join2', { kind: 'merge' }, copies)));
    expect(w2.maxRunning).toBe(2);
  });

  test('execParallelism bounds exec ops separately from cpu ops', async () => {
    const w = new FakeWorker();
    const s = new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), parallelism: 1, execParallelism: 3 });
    const leaves = [
      ...['a', 'b', 'c', 'd', 'e'].map((n) => vertex(`run-${n}`, { kind: 'exec', resourceClass: 'exec', delay: 60 })),
      vertex('copy', { kind: 'file', delay: 60 }),
    ];
    await s.build(edge(vertex('all', { kind: 'merge' }, leaves)));
    // 3 containers plus the one cpu op at the same time, never more.
    expect(w.maxRunning).toBe(4);
    expect(defaultParallelism(2)).toEqual({ cpu: 2, exec: 8 });
    expect(defaultParallelism(4)).toEqual({ cpu: 4, exec: 16 });
  });

  test('concurrent builds share identical vertices', async () => {
    const { w, s } = setup();
    const mk = (tail: string): SolverVertex<FakeOp> => vertex(tail, { kind: 'exec' }, [vertex('slow-base', { kind: 'exec', delay: 100 })]);
    const [a, b] = await Promise.all([s.build(edge(mk('x'))), s.build(edge(mk('y')))]);
    expect(w.execs.get('slow-base')).toBe(1);
    expect(a.ref.snapshot).toContain('slow-base#1');
    expect(b.ref.snapshot).toContain('slow-base#1');
    expect(s.activeVertices).toBe(0);
  });

  test('noCache re-runs everything, noCacheFilter only the filtered vertex, and results are still stored', async () => {
    const { w, s } = setup();
    const g = (): SolverVertex<FakeOp> => vertex('b', { kind: 'exec' }, [vertex('a', { kind: 'exec' })]);
    await s.build(edge(g()));
    await s.build(edge(g()), { noCache: true });
    expect(Object.fromEntries(w.execs)).toEqual({ a: 2, b: 2 });
    await s.build(edge(g()), { noCacheFilter: (v) => v.name === 'b' });
    expect(Object.fromEntries(w.execs)).toEqual({ a: 2, b: 3 });
    const r = await s.build(edge(g()));
    expect(r.cached).toBe(true);
    expect(w.total()).toBe(5);
  });

  test('below a vertex that ignored the cache nothing hits by definition key: a RUN on it runs again, a COPY from it hits only by unchanged content', async () => {
    // BuildKit edge.go: an ignore-cache edge probes nothing (probeCache returns false), so it has
    // no keys for its dependents to probe; they can only match by the content (slow) key of its
    // result, and a dependent without one has noCacheMatchPossible.
    const { w, s } = setup();
    let content = 'v1';
    const g = (): SolverVertex<FakeOp> => {
      const a = vertex('a', { kind: 'exec' }, [vertex('base', { kind: 'source' })]);
      const run = vertex('run', { kind: 'exec' }, [a]);
      const copy = vertex('copy', { kind: 'file', deps: [{ selector: D('sel'), computeDigest: async () => D(content) }] }, [a]);
      return vertex('top', { kind: 'file' }, [run, copy]);
    };
    const onlyA = { noCacheFilter: (v: SolverVertex): boolean => v.name === 'a' };
    await s.build(edge(g()));
    await s.build(edge(g()), onlyA);
    expect(Object.fromEntries(w.execs)).toEqual({ base: 1, a: 2, run: 2, copy: 1, top: 2 });
    content = 'v2';
    // "Newest" is by creation time in ms: these fake ops finish within one millisecond.
    await new Promise((r) => setTimeout(r, 5));
    await s.build(edge(g()), onlyA);
    expect(Object.fromEntries(w.execs)).toEqual({ base: 1, a: 3, run: 3, copy: 2, top: 3 });
    // Without the filter everything hits again, on the newest results.
    const r = await s.build(edge(g()));
    expect(r.cached).toBe(true);
    expect(r.ref.snapshot).toMatch(/^top#3/);
    expect(w.total()).toBe(12);
  });

  test('content keys: a new source key with unchanged content still hits the child', async () => {
    const { w, s } = setup();
    let content = 'v1';
    const build = (): Promise<unknown> => {
      // A local source: never cached itself; the copy keys it by the content it selects.
      const ctx = vertex('context', { kind: 'source', cacheable: false });
      const copy = vertex('copy', { kind: 'file', deps: [{ selector: D('sel'), computeDigest: async () => D(content) }] }, [ctx]);
      return s.build(edge(vertex('run', { kind: 'exec' }, [copy])));
    };
    await build();
    await build();
    expect(Object.fromEntries(w.execs)).toEqual({ context: 2, copy: 1, run: 1 });
    content = 'v2';
    await build();
    expect(Object.fromEntries(w.execs)).toEqual({ context: 3, copy: 2, run: 2 });
  });

  test('chained COPY --from of two independent stages: both stages run at once (content keys start per input)', async () => {
    const { w, s } = setup(4);
    const base = vertex('base', { kind: 'source' });
    const a = vertex('stage-a', { kind: 'exec', delay: 200 }, [base]);
    const b = vertex('stage-b', { kind: 'exec', delay: 200 }, [base]);
    const content = { computeDigest: async (ref: WorkerRef) => D(ref.snapshot) };
    const copyA = vertex('copy-a', { kind: 'file', deps: [{}, content] }, [base, a]);
    const copyB = vertex('copy-b', { kind: 'file', deps: [{}, content] }, [copyA, b]);
    await s.build(edge(copyB));
    const sa = w.spans.find((x) => x.name === 'stage-a');
    const sb = w.spans.find((x) => x.name === 'stage-b');
    expect(sa !== undefined && sb !== undefined && sa.start < sb.end && sb.start < sa.end).toBe(true);
    // A rebuild is a full hit: the eager content digests never run a stage again.
    await s.build(edge(copyB));
    expect(Object.fromEntries(w.execs)).toEqual({ base: 1, 'stage-a': 1, 'stage-b': 1, 'copy-a': 1, 'copy-b': 1 });
  });

  test('a COPY from a stage runs as soon as that stage is done, while a slower stage still runs', async () => {
    const { w, s } = setup(4);
    const base = vertex('base', { kind: 'source' });
    const fast = vertex('stage-fast', { kind: 'exec', delay: 50, resourceClass: 'exec' }, [base]);
    const slow = vertex('stage-slow', { kind: 'exec', delay: 300, resourceClass: 'exec' }, [base]);
    const content = { computeDigest: async (ref: WorkerRef) => D(ref.snapshot) };
    const copyFast = vertex('copy-fast', { kind: 'file', delay: 30, deps: [{}, content] }, [base, fast]);
    const copySlow = vertex('copy-slow', { kind: 'file', deps: [{}, content] }, [copyFast, slow]);
    await s.build(edge(copySlow));
    const span = (n: string): { start: number; end: number } => {
      const x = w.spans.find((sp) => sp.name === n);
      if (x === undefined) throw new Error(`${n} did not run`);
      return x;
    };
    expect(span('copy-fast').start).toBeGreaterThanOrEqual(span('stage-fast').end);
    expect(span('copy-fast').end).toBeLessThan(span('stage-slow').end);
    expect(span('copy-slow').start).toBeGreaterThanOrEqual(span('stage-slow').end);
    expect(Object.fromEntries(w.execs)).toEqual({ base: 1, 'stage-fast': 1, 'stage-slow': 1, 'copy-fast': 1, 'copy-slow': 1 });
    // Unchanged: all hits, nothing starts eagerly.
    await s.build(edge(copySlow));
    expect(w.total()).toBe(5);
    // A failing slow stage still fails the build (with its own error), after the eager COPY ran.
    const bad = vertex('stage-bad', { kind: 'exec', delay: 100, fail: { exitCode: 3, output: 'boom\n' } }, [base]);
    const fast2 = vertex('stage-fast2', { kind: 'exec', delay: 10 }, [base]);
    const c1 = vertex('copy-1', { kind: 'file', deps: [{}, content] }, [base, fast2]);
    const c2 = vertex('copy-2', { kind: 'file', deps: [{}, content] }, [c1, bad]);
    await expect(s.build(edge(c2))).rejects.toMatchObject({ code: 'SOLVER_EXEC_FAILED', exitCode: 3, logTail: ['running stage-bad', 'boom'] });
    expect(w.execs.get('copy-1')).toBe(1);
    expect(w.execs.get('copy-2')).toBeUndefined();
  });

  test('COPY --from=<image> after a COPY --from=<stage>: the image is fetched while the stage runs (a source key matching nothing stored for this vertex starts its content digest at once)', async () => {
    const { w, s } = setup(4);
    const base = vertex('base', { kind: 'source' });
    const stage = vertex('stage', { kind: 'exec', delay: 200 }, [base]);
    const image = vertex('image', { kind: 'source', delay: 150 });
    const content = { computeDigest: async (ref: WorkerRef) => D(ref.snapshot) };
    const copyStage = vertex('copy-stage', { kind: 'file', deps: [{}, content] }, [base, stage]);
    const copyImage = vertex('copy-image', { kind: 'file', deps: [{}, content] }, [copyStage, image]);
    await s.build(edge(copyImage));
    const sp = (n: string) => w.spans.find((x) => x.name === n);
    const st = sp('stage');
    const im = sp('image');
    expect(st !== undefined && im !== undefined && im.start < st.end).toBe(true);
  });

  test('a vertex whose result was pruned is not started when a later vertex still hits', async () => {
    const { w, s, store } = setup(4);
    const base = vertex('base', { kind: 'source' });
    const x = vertex('x', { kind: 'exec', delay: 30 }, [base]);
    const r = vertex('r', { kind: 'exec', delay: 30 }, [x]);
    await s.build(edge(r));
    // LRU prune keeps only the newest result (r): base and x lose theirs, their keys stay linked.
    expect((await store.prune({ keepStorage: 1 })).length).toBe(2);
    await s.build(edge(r));
    await new Promise((res) => setTimeout(res, 50));
    expect(Object.fromEntries(w.execs)).toEqual({ base: 1, x: 1, r: 1 });
  });

  test('a failing vertex reports op, location, command, exit code and last output lines', async () => {
    const { s } = setup();
    const bad = vertex('[stage 2/2] RUN false', { kind: 'exec', fail: { exitCode: 1, output: 'line one\nline two\n' } }, [vertex('base', { kind: 'source' })]);
    const progress = new ProgressStream();
    const p = s.build(edge(bad), { progress });
    await expect(p).rejects.toBeInstanceOf(VertexError);
    await expect(p).rejects.toMatchObject({
      code: 'SOLVER_EXEC_FAILED',
      message: 'process "/bin/sh -c false" did not complete successfully: exit code: 1',
      exitCode: 1,
      command: '/bin/sh -c false',
      op: 'exec',
      location: { file: 'Dockerfile', line: 3, column: 1 },
      logTail: ['running [stage 2/2] RUN false', 'line one', 'line two'],
    });
    progress.close();
    expect(progress.events().some((e) => e.kind === 'vertex.error')).toBe(true);
    expect(s.activeVertices).toBe(0);
  });

  test("a step's output is clipped in progress at the step log limit, per step and stream, while the failure keeps the real last lines", async () => {
    const w = new FakeWorker();
    const s = new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), stepLogLimits: { maxSize: 16, maxSpeed: -1 } });
    const base = vertex('base', { kind: 'source' });
    const bad = vertex('bad', { kind: 'exec', fail: { exitCode: 1, output: `${'x'.repeat(40)}\nthe real reason\n` } }, [base]);
    const progress = new ProgressStream();
    await expect(s.build(edge(bad), { progress })).rejects.toMatchObject({ logTail: ['running bad', 'x'.repeat(40), 'the real reason'] });
    progress.close();
    const logs = (name: string, stream: 1 | 2): string =>
      progress
        .events()
        .filter((e) => e.kind === 'log' && e.vertex === D(name) && e.stream === stream)
        .map((e) => (e.kind === 'log' ? Buffer.from(e.data).toString() : ''))
        .join('');
    expect(logs('base', 1)).toBe('running base\n');
    expect(logs('bad', 1)).toBe('running bad\n');
    // Then, as the step failed, the clipped stream's last bytes from its first clip on (BuildKit's flushBuffer).
    expect(logs('bad', 2)).toBe(`${'x'.repeat(16)}\n[output clipped, log limit 16B reached]\n${'x'.repeat(40)}\nthe real reason\n`);
    expect(progress.events().filter((e) => e.vertex === D('bad')).at(-1)?.kind).toBe('vertex.error');
  });

  test('a step that succeeds, one that fails unclipped and a clipped one that is cancelled show no kept output', async () => {
    const w = new FakeWorker();
    // 12 bytes: "running bad\n" fits, "running slow\n" and "running fine\n" are clipped.
    const s = new Scheduler({ resolveOp: w.resolve, cache: new CacheManager(CacheStore.open({ path: ':memory:' })), stepLogLimits: { maxSize: 12, maxSpeed: -1 } });
    const base = vertex('base', { kind: 'source' });
    const fine = vertex('fine', { kind: 'exec' }, [base]);
    const progress = new ProgressStream();
    await s.build(edge(fine), { progress });
    const slow = vertex('slow', { kind: 'exec', delay: 5_000 }, [base]);
    const bad = vertex('bad', { kind: 'exec', delay: 50, fail: { exitCode: 1, output: 'nope\n' } }, [base]);
    await expect(s.build({ vertex: vertex('both', { kind: 'file' }, [slow, bad]), index: 0 }, { progress })).rejects.toBeInstanceOf(VertexError);
    progress.close();
    const text = (name: string): string =>
      progress
        .events()
        .filter((e) => e.kind === 'log' && e.vertex === D(name))
        .map((e) => (e.kind === 'log' ? Buffer.from(e.data).toString() : ''))
        .join('');
    expect(text('fine')).toBe('running fine\n[output clipped, log limit 12B reached]\n');
    expect(text('bad')).toBe('running bad\nnope\n');
    expect(text('slow')).toBe('running slow\n[output clipped, log limit 12B reached]\n');
    expect(progress.events().some((e) => e.kind === 'vertex.error' && e.vertex === D('slow') && e.error === 'cancelled')).toBe(true);
  });

  test('what a COPY selects cannot be found (its content key fails): the COPY fails as a vertex, shown by its name, at its location', async () => {
    const { w, s } = setup();
    const ctx = vertex('context', { kind: 'source', cacheable: false });
    const missing = async (): Promise<string> => {
      throw new SolverError('SOLVER_NOT_FOUND', '"/missing.txt": not found', { hint: 'check the path' });
    };
    const copy = vertex('[2/2] COPY missing.txt /x', { kind: 'file', deps: [{ selector: D('sel'), computeDigest: missing }] }, [ctx]);
    const progress = new ProgressStream();
    const p = s.build(edge(copy), { progress });
    await expect(p).rejects.toBeInstanceOf(VertexError);
    await expect(p).rejects.toMatchObject({ message: '"/missing.txt": not found', vertexName: '[2/2] COPY missing.txt /x', location: { file: 'Dockerfile', line: 3, column: 1 } });
    progress.close();
    const mine = progress.events().filter((e) => e.vertex === copy.digest);
    expect(mine.map((e) => e.kind)).toEqual(['vertex.started', 'vertex.error']);
    expect(mine[0]).toMatchObject({ name: '[2/2] COPY missing.txt /x' });
    expect(w.execs.get('[2/2] COPY missing.txt /x')).toBeUndefined();
    expect(s.activeVertices).toBe(0);
  });

  test('aborting a build stops its running op, rejects with SOLVER_CANCELLED and stores nothing for it', async () => {
    const { w, s, store } = setup();
    const ctl = new AbortController();
    const long = vertex('long', { kind: 'exec', delay: 5_000 }, [vertex('base', { kind: 'source' })]);
    const p = s.build(edge(long), { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 50);
    const t0 = performance.now();
    await expect(p).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    expect(performance.now() - t0).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 20));
    expect(w.running).toBe(0);
    expect(store.du().map((u) => u.description)).toEqual(['base']);
    // The next build runs it again (the failed state is not reused).
    const r = await s.build(edge(vertex('long2', { kind: 'exec' }, [vertex('base', { kind: 'source' })])));
    expect(r.cached).toBe(false);
  });

  test('the first failing vertex ends the build at once: a slow branch the target waits on first is stopped and shows as cancelled', async () => {
    const { w, s } = setup(4);
    const base = vertex('base', { kind: 'source' });
    const slow = vertex('stage-slow', { kind: 'exec', delay: 5_000 }, [base]);
    const bad = vertex('stage-bad', { kind: 'exec', delay: 50, fail: { exitCode: 1, output: 'nope\n' } }, [base]);
    const content = { computeDigest: async (ref: WorkerRef) => D(ref.snapshot) };
    // COPY --from=slow, then COPY --from=bad: the target's key needs the slow stage's content first.
    const copySlow = vertex('copy-slow', { kind: 'file', deps: [{}, content] }, [base, slow]);
    const copyBad = vertex('copy-bad', { kind: 'file', deps: [{}, content] }, [copySlow, bad]);
    const progress = new ProgressStream();
    const t0 = performance.now();
    await expect(s.build(edge(copyBad), { progress })).rejects.toBeInstanceOf(VertexError);
    expect(performance.now() - t0).toBeLessThan(2_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(w.running).toBe(0);
    const errors = progress.events().flatMap((e) => (e.kind === 'vertex.error' ? [[e.vertex, e.error === 'cancelled' ? 'cancelled' : 'failed']] : []));
    expect(errors).toEqual([
      [bad.digest, 'failed'],
      [slow.digest, 'cancelled'],
    ]);
  });

  test('an op that finishes as its build is cancelled (Ctrl-C as its container exits) records its result before the run given to `track` settles', async () => {
    const w = new FakeWorker();
    const store = CacheStore.open({ path: ':memory:' });
    const ctl = new AbortController();
    const runs: Array<Promise<unknown>> = [];
    const resolveOp = (v: SolverVertex): Op => {
      const op = w.resolve(v);
      if (v.name !== 'run') return op;
      // The container had exited when the build was cancelled: the op commits its result anyway.
      return { ...op, exec: async (ctx, inputs) => (ctl.abort(), await new Promise((r) => setTimeout(r, 30)), op.exec(ctx, inputs)) };
    };
    const s = new Scheduler({ resolveOp, cache: new CacheManager(store), track: (run) => runs.push(run) });
    await expect(s.build(edge(vertex('run', { kind: 'exec' }, [vertex('base', { kind: 'source' })])), { signal: ctl.signal })).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    // The build has ended; the op has not. Its owner (kiln's engine) waits for it before it closes
    // the store, so the snapshot it commits is recorded, not left behind for nobody.
    const committed = (): boolean => [...store.ownedSnapshots()].some((id) => id.startsWith('run#'));
    expect(committed()).toBe(false);
    while (runs.length > 0) await Promise.allSettled(runs.splice(0));
    expect(w.execs.get('run')).toBe(1);
    expect(committed()).toBe(true);
  });

  test('a vertex shared with another build keeps running when one of the builds is aborted', async () => {
    const { w, s } = setup();
    const shared = (): SolverVertex<FakeOp> => vertex('shared', { kind: 'exec', delay: 150 });
    const ctl = new AbortController();
    const a = s.build(edge(vertex('a', { kind: 'exec' }, [shared()])), { signal: ctl.signal });
    const b = s.build(edge(vertex('b', { kind: 'exec' }, [shared()])));
    setTimeout(() => ctl.abort(), 30);
    await expect(a).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    expect((await b).cached).toBe(false);
    expect(w.execs.get('shared')).toBe(1);
  });

  test('a build that joins a shared step whose key another build computed needs its inputs too: the other failing or aborted does not stop them', async () => {
    for (const end of ['fails', 'aborted'] as const) {
      const { w, s } = setup(4);
      const base = (): SolverVertex<FakeOp> => vertex('base', { kind: 'source' });
      const content = { computeDigest: async (ref: WorkerRef) => D(ref.snapshot) };
      // Two builds' `COPY --from=slow` onto scratch are one vertex; only A also has a failing stage.
      const copySlow = (): SolverVertex<FakeOp> => vertex('copy-slow', { kind: 'file', deps: [content] }, [vertex('slow', { kind: 'exec', delay: 300 }, [base()])]);
      const bad = vertex('bad', { kind: 'exec', delay: 60, ...(end === 'fails' ? { fail: { exitCode: 1, output: 'nope\n' } } : { delay: 5_000 }) }, [base()]);
      const ctl = new AbortController();
      const a = s.build(edge(vertex('copy-bad', { kind: 'file', deps: [{}, content] }, [copySlow(), bad])), { signal: ctl.signal });
      a.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 20));
      const progress = new ProgressStream();
      const b = s.build(edge(copySlow()), { progress });
      if (end === 'aborted') setTimeout(() => ctl.abort(), 60);
      await expect(a).rejects.toMatchObject({ code: end === 'fails' ? 'SOLVER_EXEC_FAILED' : 'SOLVER_CANCELLED' });
      const r = await b;
      progress.close();
      expect(r.cached).toBe(false);
      expect(w.execs.get('slow')).toBe(1);
      // B shows the step it waited for, to its end.
      const slowEvents = progress.events().flatMap((e) => (e.vertex === D('slow') && e.kind.startsWith('vertex.') ? [e.kind] : []));
      expect(slowEvents).toEqual(['vertex.started', 'vertex.done']);
      // Neither build is left in any vertex.
      expect(s.activeVertices).toBe(0);
    }
  });

  test('session-bound vertices (local sources) are shared only within a session', async () => {
    const { w, s } = setup();
    const g = (): SolverVertex<FakeOp> =>
      vertex('use', { kind: 'exec', cacheable: false }, [vertex('ctx', { kind: 'local', delay: 80, cacheable: false }), vertex('img', { kind: 'source', delay: 80 })]);
    await Promise.all([s.build(edge(g()), { session: 'a' }), s.build(edge(g()), { session: 'b' })]);
    expect(w.execs.get('ctx')).toBe(2);
    expect(w.execs.get('img')).toBe(1);
    await Promise.all([s.build(edge(g()), { session: 'c' }), s.build(edge(g()), { session: 'c' })]);
    expect(w.execs.get('ctx')).toBe(3);
  });

  test('a failing cache map (e.g. an unresolvable image) is reported as that vertex\'s error', async () => {
    const store = CacheStore.open({ path: ':memory:' });
    const s = new Scheduler({
      cache: new CacheManager(store),
      resolveOp: (v) => ({
        cacheMap: async () => {
          if (v.name === 'FROM nope') throw new Error('image nope not found');
          return { digest: v.digest, deps: v.inputs.map(() => ({})) };
        },
        exec: async () => [{ snapshot: v.name, size: 0 }],
      }),
    });
    const progress = new ProgressStream();
    const p = s.build(edge(vertex('RUN x', { kind: 'exec' }, [vertex('FROM nope', { kind: 'source' })])), { progress });
    await expect(p).rejects.toMatchObject({ code: 'SOLVER_EXEC_FAILED', message: 'image nope not found', vertexName: 'FROM nope' });
    progress.close();
    expect(progress.events().filter((e) => e.kind === 'vertex.error').length).toBe(1);
  });
});
