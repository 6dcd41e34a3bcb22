import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import ts from 'typescript';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { CacheKey, rootKey, slowCacheKey } from './cache-key.js';
import { CacheManager } from './cache-manager.js';
import { CacheStore, selectPruneVictims, type DiskUsageRecord, type ReleaseContext } from './store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'kiln-store-'));
  dirs.push(d);
  return d;
};

const D = (c: string): string => `sha256:${c.repeat(64).slice(0, 64)}`;

describe('rootKey', () => {
  test('is sha256 of "<digest>@<output>" (BuildKit solver/cachekey.go), checked with sha256sum', () => {
    const expected = execFileSync('sh', ['-c', `printf '%s' '${D('a')}@0' | sha256sum`], { encoding: 'utf8' }).split(' ')[0];
    expect(rootKey(D('a'), 0)).toBe(`sha256:${expected}`);
    expect(rootKey(D('a'), 0)).not.toBe(rootKey(D('a'), 1));
    expect(rootKey('random:abc', 0).startsWith('random:')).toBe(true);
  });
});

describe('CacheManager over CacheStore', () => {
  test('a chain of keys saved in one process is found after reopening the database', () => {
    const path = join(tmp(), 'cache.db');
    const src = new CacheKey(D('1'), 0);
    const run = new CacheKey(D('2'), 0, [[{ selector: '', key: src }]]);
    {
      const m = new CacheManager(CacheStore.open({ path }));
      expect(m.load(run)).toBeUndefined();
      m.save(src, { snapshot: 'snap-src', size: 10, description: 'FROM x' });
      m.save(run, { snapshot: 'snap-run', size: 20, description: 'RUN y' });
      m.store.close();
    }
    const m2 = new CacheManager(CacheStore.open({ path }));
    const srcAgain = new CacheKey(D('1'), 0);
    const runAgain = new CacheKey(D('2'), 0, [[{ selector: '', key: srcAgain }]]);
    expect(m2.load(runAgain)?.record.snapshot).toBe('snap-run');
    expect(m2.load(srcAgain)?.record.snapshot).toBe('snap-src');
    // A different op digest on the same input, or a different input, misses.
    expect(m2.load(new CacheKey(D('3'), 0, [[{ selector: '', key: srcAgain }]]))).toBeUndefined();
    expect(m2.load(new CacheKey(D('2'), 0, [[{ selector: '', key: new CacheKey(D('9'), 0) }]]))).toBeUndefined();
    m2.store.close();
  });

  test('a content ("slow") key lets a changed definition key hit, and selectors narrow links', () => {
    const m = new CacheManager(CacheStore.open({ path: ':memory:' }));
    const ctxA = new CacheKey(D('a'), 0);
    const content = slowCacheKey(D('c'));
    const copy = (ctx: CacheKey, c: CacheKey): CacheKey =>
      new CacheKey(D('f'), 0, [[{ selector: D('5'), key: ctx }, { selector: '', key: c }]]);
    m.save(copy(ctxA, content), { snapshot: 's1', size: 1, description: 'COPY' });
    // New context key (another session) but same content digest: hit through the slow key.
    expect(m.load(copy(new CacheKey(D('b'), 0), slowCacheKey(D('c'))))?.record.snapshot).toBe('s1');
    // Same context key, different content: the def key still matches, but BuildKit only probes
    // the definition key alone before computing content; with both keys given, any match hits.
    expect(m.load(new CacheKey(D('f'), 0, [[{ selector: D('6'), key: new CacheKey(D('b'), 0) }]]))).toBeUndefined();
    // A two-input key needs both inputs to match.
    const two = new CacheKey(D('m'), 0, [[{ selector: '', key: ctxA }], [{ selector: '', key: content }]]);
    m.save(two, { snapshot: 's2', size: 1, description: 'MERGE' });
    expect(m.load(new CacheKey(D('m'), 0, [[{ selector: '', key: ctxA }], [{ selector: '', key: slowCacheKey(D('d')) }]]))).toBeUndefined();
    expect(m.load(new CacheKey(D('m'), 0, [[{ selector: '', key: new CacheKey(D('a'), 0) }], [{ selector: '', key: slowCacheKey(D('c')) }]]))?.record.snapshot).toBe('s2');
  });

  test('du and prune: LRU order, keepStorage, in-use leases, release hook', async () => {
    let now = 1000;
    const released: string[] = [];
    const store = CacheStore.open({ path: ':memory:', now: () => now, releaseSnapshot: async (s) => void released.push(s) });
    const m = new CacheManager(store);
    for (const [i, size] of [100, 200, 300].entries()) {
      now += 10;
      m.save(new CacheKey(D(String(i)), 0), { snapshot: `s${i}`, size, description: `op ${i}` });
    }
    now += 10;
    m.load(new CacheKey(D('0'), 0)); // s0 becomes most recently used
    expect(store.du().map((u) => u.snapshot)).toEqual(['s0', 's2', 's1']);
    const lease = store.lease('s1');
    expect((await store.prune({ keepStorage: 350 })).map((v) => v.snapshot)).toEqual(['s2']); // s1 in use
    expect(released).toEqual(['s2']);
    lease();
    expect((await store.prune({ all: true })).map((v) => v.snapshot).sort()).toEqual(['s0', 's1']);
    expect(store.du()).toEqual([]);
    expect(m.load(new CacheKey(D('0'), 0))).toBeUndefined();
  });

  test('prune keepDuration and filter; totalSize and hasUnusedSince read SQL only', async () => {
    let now = 1_000_000;
    const store = CacheStore.open({ path: ':memory:', now: () => now, releaseSnapshot: async () => undefined });
    store.save('k0', [], { id: 'a', snapshot: 'old', size: 100, description: 'old op' });
    store.upsertRecord({ snapshot: 'cachemount:x', size: 50, description: 'cache mount x', kind: 'exec.cachemount' });
    store.save('k1', [], { id: 'b', snapshot: 'old', size: 100, description: 'old op again' }); // same snapshot: counted once
    now += 60_000;
    store.save('k2', [], { id: 'c', snapshot: 'new', size: 10, description: 'new op' });
    expect(store.totalSize()).toBe(160);
    expect(store.totalSizeBound()).toBe(260); // 'old' under two keys
    expect(store.hasUnusedSince(['exec.cachemount'], now - 30_000)).toBe(true);
    expect(store.hasUnusedSince(['exec.cachemount'], now - 90_000)).toBe(false);
    expect(store.hasUnusedSince(['source.local'], now)).toBe(false);
    const release = store.lease('cachemount:x');
    expect(store.hasUnusedSince(['exec.cachemount'], now)).toBe(false); // leased: in use
    release();
    // Only records unused for 30 s, and only cache mounts:
    expect((await store.prune({ keepDuration: 30_000, filter: (u) => u.kind === 'exec.cachemount' })).map((v) => v.snapshot)).toEqual(['cachemount:x']);
    expect(store.totalSize()).toBe(110);
    // keepDuration spares the new record even without a filter.
    expect((await store.prune({ keepDuration: 30_000 })).map((v) => v.snapshot)).toEqual(['old']);
    expect(store.du().map((u) => u.snapshot)).toEqual(['new']);
  });

  test('updateRecordSize sets the size of a record that exists and never brings a pruned one back', async () => {
    const store = CacheStore.open({ path: ':memory:', releaseSnapshot: async () => undefined });
    store.upsertRecord({ snapshot: 'cachemount:a', description: 'cache mount a', kind: 'exec.cachemount' });
    store.updateRecordSize({ snapshot: 'cachemount:a', size: 4096, kind: 'exec.cachemount' });
    expect(store.du().map((u) => [u.snapshot, u.size])).toEqual([['cachemount:a', 4096]]);
    await store.prune({ all: true });
    // A measurement that finishes after the prune: nothing comes back.
    store.updateRecordSize({ snapshot: 'cachemount:a', size: 8192, kind: 'exec.cachemount' });
    expect(store.du()).toEqual([]);
  });

  test('selectPruneVictims: keepStorage counts every record, the filter only chooses', () => {
    const rec = (snapshot: string, size: number, lastUsed: number, kind: DiskUsageRecord['kind'] = 'regular', inUse = false): DiskUsageRecord => ({ snapshot, size, created: 0, lastUsed, description: snapshot, kind, keys: 1, inUse });
    const usage = [rec('a', 100, 1), rec('m', 100, 2, 'exec.cachemount'), rec('b', 100, 3), rec('f', 100, 0, 'frontend'), rec('u', 100, 0, 'regular', true)];
    expect(selectPruneVictims(usage, 500, { keepStorage: 250 }, 10).map((v) => v.snapshot)).toEqual(['a', 'm', 'b']);
    expect(selectPruneVictims(usage, 500, { keepStorage: 250, all: true }, 10).map((v) => v.snapshot)).toEqual(['f', 'a', 'm']);
    expect(selectPruneVictims(usage, 500, { keepStorage: 250, filter: (u) => u.kind === 'exec.cachemount' }, 10).map((v) => v.snapshot)).toEqual(['m']);
    expect(selectPruneVictims(usage, 500, { keepStorage: 500 }, 10)).toEqual([]);
    expect(selectPruneVictims(usage, 500, { keepDuration: 8 }, 10).map((v) => v.snapshot)).toEqual(['a']);
  });

  test('a snapshot whose removal fails stays pending: du counts it, later prunes retry it, a reuse cancels it', async () => {
    let now = 1000;
    const released: string[] = [];
    // s0 is a parent of s1's snapshot: refused while s1 exists. s2 is busy once.
    let busy = true;
    const store = CacheStore.open({
      path: ':memory:',
      now: () => now,
      releaseSnapshot: async (s) => {
        if (s === 's0' && !released.includes('s1')) throw Object.assign(new Error('snapshot s0 has 1 child snapshot(s)'), { code: 'SNAPSHOT_STATE' });
        if (s === 's2' && busy) throw Object.assign(new Error('EBUSY: resource busy or locked'), { code: 'EBUSY' });
        released.push(s);
      },
    });
    const m = new CacheManager(store);
    for (const [i, size] of [100, 200, 300].entries()) {
      now += 10;
      m.save(new CacheKey(D(String(i)), 0), { snapshot: `s${i}`, size, description: `op ${i}` });
    }
    const lease = store.lease('s1');
    // s0 (oldest) is refused while s1 (leased) lives; s2 is busy: both stay on disk and in du.
    expect(await store.prune({ all: true })).toEqual([]); // nothing was freed
    expect(released).toEqual([]);
    expect(store.du()).toEqual([
      expect.objectContaining({ snapshot: 's1', size: 200 }),
      expect.objectContaining({ snapshot: 's0', size: 100, pendingRemoval: true, keys: 0 }),
      expect.objectContaining({ snapshot: 's2', size: 300, pendingRemoval: true, keys: 0 }),
    ]);
    // keepStorage counts pending bytes: after s2 went, s1 (200) + pending s0 (100) exceed 250.
    lease();
    busy = false;
    // The next prune retries: s2 now goes; s0 goes in a later pass once s1 (its child) went.
    expect((await store.prune({ keepStorage: 250 })).map((v) => v.snapshot)).toEqual(['s2', 's1', 's0']);
    expect(released).toEqual(['s2', 's1', 's0']);
    expect(store.du()).toEqual([]);
    // A pending name that is recorded again (a cache mount id) is no longer removed.
    store.upsertRecord({ snapshot: 'cachemount:x', description: 'cache', kind: 'exec.cachemount' });
    busy = true;
    released.length = 0;
    const flaky = CacheStore.open({ path: ':memory:', now: () => now, releaseSnapshot: async () => Promise.reject(new Error('EBUSY')) });
    flaky.upsertRecord({ snapshot: 'cachemount:x', description: 'cache', kind: 'exec.cachemount' });
    await flaky.prune({ all: true });
    expect(flaky.du()).toEqual([expect.objectContaining({ snapshot: 'cachemount:x', pendingRemoval: true })]);
    flaky.upsertRecord({ snapshot: 'cachemount:x', description: 'cache', kind: 'exec.cachemount' });
    expect(flaky.du()).toEqual([expect.objectContaining({ snapshot: 'cachemount:x', keys: 1 })]);
    expect(flaky.du()[0]?.pendingRemoval).toBeUndefined();
    expect(await flaky.retryReleases()).toBe(0);
  });

  test('a retry pass does not release a snapshot recorded again or leased while an earlier release was awaited', async () => {
    const released: string[] = [];
    let store: CacheStore | undefined;
    let lease: (() => void) | undefined;
    let busy = true;
    store = CacheStore.open({
      path: ':memory:',
      releaseSnapshot: async (s) => {
        if (busy) throw new Error('EBUSY');
        if (s === 'a') {
          // A build running meanwhile: it reuses layer b (recorded again) and leases c.
          await new Promise((r) => setTimeout(r, 5));
          store?.upsertRecord({ snapshot: 'b', description: 'image layer', kind: 'regular' });
          lease = store?.lease('c');
        }
        released.push(s);
      },
    });
    for (const s of ['a', 'b', 'c']) store.upsertRecord({ snapshot: s, description: s, kind: 'regular' });
    await store.prune({ all: true });
    expect(store.du().map((u) => [u.snapshot, u.pendingRemoval === true])).toEqual([['a', true], ['b', true], ['c', true]]);
    busy = false;
    expect(await store.retryReleases()).toBe(1);
    expect(released).toEqual(['a']);
    expect(store.du().map((u) => [u.snapshot, u.pendingRemoval === true])).toEqual([['b', false], ['c', true]]);
    lease?.();
    // Two retries at once (a prune and an engine start): the snapshot is released once.
    const [n1, n2] = await Promise.all([store.retryReleases(), store.retryReleases()]);
    expect(n1 + n2).toBe(1);
    expect(released).toEqual(['a', 'c']);
  });

  test('a process killed while saving leaves a consistent database', async () => {
    const dir = tmp();
    const path = join(dir, 'cache.db');
    // Node 20 cannot import .ts: transpile store.ts and errors.ts next to the repo's node_modules.
    const solverDir = fileURLToPath(new URL('../..', import.meta.url));
    const out = mkdtempSync(join(solverDir, '.test-tmp-'));
    dirs.push(out);
    mkdirSync(join(out, 'cache'));
    for (const f of ['cache/store.ts', 'errors.ts']) {
      const src = readFileSync(join(solverDir, 'src', f), 'utf8');
      const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
      writeFileSync(join(out, f.replace(/\.ts$/, '.js')), js);
    }
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    const storeUrl = new URL(`file://${join(out, 'cache/store.js')}`).href;
    const script = `
      const { CacheStore } = await import(${JSON.stringify(storeUrl)});
      const s = CacheStore.open({ path: ${JSON.stringify(path)} });
      process.stdout.write('ready\\n');
      for (let i = 0; ; i++) {
        const links = Array.from({ length: 20 }, (_, j) => ({ src: 'k' + i + '-' + j, input: 0, output: 0, digest: 'd', selector: '' }));
        s.save('key' + i, links, { id: 'r' + i, snapshot: 'snap' + i, size: i, description: 'x' });
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: out,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = CacheStore.open({ path });
    const du = s.du();
    expect(du.length).toBeGreaterThan(0);
    // Every stored result has all of its 20 links: transactions were all-or-nothing.
    const perKey = new Map<string, number>();
    for (const l of s.links()) perKey.set(l.dst, (perKey.get(l.dst) ?? 0) + 1);
    for (const u of du) expect(perKey.get(`key${u.snapshot.slice(4)}`)).toBe(20);
    expect(perKey.size).toBe(du.length);
    s.close();
  });
});

/**
 * A release that is already running while a build records or leases the same snapshot again (an
 * image layer is named by its chain id: a build that unpacks that image finds `layer-<chain>` and
 * records it). Driven step by step: the fake snapshotter's removal waits for `gate` after the
 * store called it, and (like the local snapshotter's remove with `confirm`) asks
 * `ctx.stillUnused()` right before its irreversible step when `asks` is set.
 */
describe('a release in flight vs a build recording or leasing the same snapshot', () => {
  interface Fake {
    readonly snapshots: Set<string>;
    readonly entered: Promise<void>;
    open(): void;
    hook(s: string, ctx?: ReleaseContext): Promise<void>;
  }
  const fakeSnapshotter = (names: string[], asks: boolean): Fake => {
    const snapshots = new Set(names);
    let entered!: () => void;
    let open!: () => void;
    const enteredP = new Promise<void>((r) => (entered = r));
    const gate = new Promise<void>((r) => (open = r));
    return {
      snapshots,
      entered: enteredP,
      open,
      async hook(s, ctx) {
        entered();
        await gate;
        if (asks && ctx?.stillUnused() === false) throw new Error(`snapshot ${s} is in use again; not removed`);
        snapshots.delete(s);
      },
    };
  };
  /** Every snapshot a record refers to exists (no build can hit a removed snapshot). */
  const consistent = (store: CacheStore, fake: Fake): void => {
    for (const s of store.referencedSnapshots()) expect(fake.snapshots.has(s), `record of ${s} without its snapshot`).toBe(true);
  };
  const rec = (snapshot: string): { id: string; snapshot: string; size: number; description: string } => ({ id: `r-${snapshot}-${Math.random()}`, snapshot, size: 7, description: 'FROM img' });

  /** A store with `layer-x` recorded under k1 and a prune --all of it stopped inside its removal. */
  const pruneInFlight = async (asks: boolean): Promise<{ fake: ReturnType<typeof fakeSnapshotter>; store: CacheStore; pruned: ReturnType<CacheStore['prune']> }> => {
    const fake = fakeSnapshotter(['layer-x'], asks);
    const store = CacheStore.open({ path: ':memory:', releaseSnapshot: (s, ctx) => fake.hook(s, ctx) });
    store.save('k1', [], rec('layer-x'));
    const pruned = store.prune({ all: true });
    await fake.entered;
    return { fake, store, pruned };
  };

  test('recorded again while its removal runs: the removal asks stillUnused() and keeps it', async () => {
    const { fake, store, pruned } = await pruneInFlight(true);
    // A build of another key unpacks the same image meanwhile and records its layer.
    store.save('k2', [], rec('layer-x'));
    fake.open();
    expect(await pruned).toEqual([]);
    expect(fake.snapshots.has('layer-x')).toBe(true);
    consistent(store, fake);
    expect(store.du()).toEqual([expect.objectContaining({ snapshot: 'layer-x', keys: 1 })]);
    expect(store.du()[0]?.pendingRemoval).toBeUndefined();
    store.close();
  });

  test('a removal that does not ask: records saved meanwhile go with it and the id stays pending for the next prune', async () => {
    const { fake, store, pruned } = await pruneInFlight(false);
    store.save('k2', [], rec('layer-x'));
    fake.open();
    expect((await pruned).map((u) => u.snapshot)).toEqual(['layer-x']);
    expect(fake.snapshots.has('layer-x')).toBe(false);
    consistent(store, fake);
    expect(store.results('k2')).toEqual([]);
    // Pending, not forgotten: had a new snapshot taken the id meanwhile, it is not leaked.
    expect(store.du()).toEqual([expect.objectContaining({ snapshot: 'layer-x', pendingRemoval: true })]);
    fake.snapshots.add('layer-x');
    expect(await store.retryReleases()).toBe(1);
    expect(fake.snapshots.has('layer-x')).toBe(false);
    expect(store.du()).toEqual([]);
    store.close();
  });

  test('leased while its removal runs: kept, still pending, removed by the prune after the lease ends', async () => {
    const { fake, store, pruned } = await pruneInFlight(true);
    const release = store.lease('layer-x');
    fake.open();
    expect(await pruned).toEqual([]);
    expect(fake.snapshots.has('layer-x')).toBe(true);
    expect(store.du()).toEqual([expect.objectContaining({ snapshot: 'layer-x', pendingRemoval: true })]);
    expect(await store.retryReleases()).toBe(0);
    release();
    expect(await store.retryReleases()).toBe(1);
    expect(fake.snapshots.has('layer-x')).toBe(false);
    store.close();
  });

  test('recorded again through another connection to the database (another kiln process) while the removal runs: kept', async () => {
    const path = join(tmp(), 'cache.db');
    const fake = fakeSnapshotter(['layer-x'], true);
    const pruner = CacheStore.open({ path, releaseSnapshot: (s, ctx) => fake.hook(s, ctx) });
    const builder = CacheStore.open({ path });
    builder.save('k1', [], rec('layer-x'));
    const pruned = pruner.prune({ all: true });
    await fake.entered;
    builder.save('k2', [], rec('layer-x'));
    fake.open();
    expect(await pruned).toEqual([]);
    expect(fake.snapshots.has('layer-x')).toBe(true);
    consistent(builder, fake);
    expect(builder.du()).toEqual([expect.objectContaining({ snapshot: 'layer-x', keys: 1 })]);
    pruner.close();
    builder.close();
  });
});
