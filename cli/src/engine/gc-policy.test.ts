import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CacheStore, selectPruneVictims, type CacheRecordKind, type DiskUsageRecord } from '@kiln/solver';
import { defaultGcPolicy, defaultKeepBytes, diskSpaceBytes, gcDue, gcPolicyFor, gcPolicyFromFile, keepBytesFor, resolveGcPolicy, rulesNow, EASY_KEEP_BYTES, type CacheTotals } from './gc-policy.js';

const GB = 1e9;
const H = 3_600_000;

describe('default cap (BuildKit DiskSpace.AsBytes, 10%, kiln ceiling 20 GB)', () => {
  test.for([
    [undefined, 2 * GB], // unknown: BuildKit's fallback
    [10 * 2 ** 30, 2 * GB], // 10 GiB disk: 1 GiB -> floor(1)+1 = 2 GB
    [50 * 2 ** 30, 6 * GB], // 5 GiB -> 6 GB
    [5 * 2 ** 30, 1 * GB], // 0.5 GiB -> 1 GB
    [100 * 2 ** 30, 11 * GB],
    [1000 * 2 ** 30, 20 * GB], // 101 GB capped
  ] as const)('%s bytes', ([fs, keep]) => {
    expect(defaultKeepBytes(fs)).toBe(keep);
  });
});

describe('gcPolicyFor', () => {
  const dir = '/nonexistent/kiln/root'; // statfs falls back to /
  test('a size; 0/off disable; default uses the filesystem; malformed is KLN0707', () => {
    expect(gcPolicyFor('1MB', dir)?.keepBytes).toBe(1024 * 1024);
    expect(gcPolicyFor('2GB', dir)?.rules.map((r) => r.keepBytes)).toEqual([EASY_KEEP_BYTES, 2 * 1024 ** 3, 2 * 1024 ** 3, 2 * 1024 ** 3]);
    for (const off of ['0', 'off', 'OFF', 'false']) expect(gcPolicyFor(off, dir)).toBeUndefined();
    const def = gcPolicyFor(undefined, dir)?.keepBytes ?? 0;
    expect(def).toBeGreaterThanOrEqual(1 * GB);
    expect(def).toBeLessThanOrEqual(20 * GB);
    expect(gcPolicyFor('', dir)?.keepBytes).toBe(def);
    expect(() => gcPolicyFor('lots', dir)).toThrow(expect.objectContaining({ code: 'KLN0707' }));
  });

  test("BuildKit's four default rules, in order", () => {
    const p = defaultGcPolicy(5 * GB);
    expect(p.rules).toEqual([
      { types: ['source.local', 'exec.cachemount'], keepDuration: 48 * H, keepBytes: 512e6 },
      { keepDuration: 60 * 24 * H, keepBytes: 5 * GB },
      { keepBytes: 5 * GB },
      { all: true, keepBytes: 5 * GB },
    ]);
  });
});

describe('gcDue', () => {
  const totals = (total: number, oldEasy: boolean, bound = total): CacheTotals & { asked: number; exact: number } => {
    const t = {
      asked: 0,
      exact: 0,
      totalSizeBound: () => bound,
      totalSize: () => {
        t.exact++;
        return total;
      },
      hasUnusedSince: (_k: readonly CacheRecordKind[], _before: number) => {
        t.asked++;
        return oldEasy;
      },
    };
    return t;
  };
  const policy = defaultGcPolicy(2 * GB);
  test('under every limit: only the cheap bound is read', () => {
    const t = totals(100e6, true);
    expect(gcDue(policy, t, Date.now())).toBe(false);
    expect([t.asked, t.exact]).toEqual([0, 0]);
  });
  test('a bound over a limit reads the exact total (shared snapshots counted once)', () => {
    const t = totals(100e6, true, 3e9);
    expect(gcDue(policy, t, Date.now())).toBe(false);
    expect([t.asked, t.exact]).toEqual([0, 1]);
  });
  test('over 512 MB with old cache mounts / local sources: due; without: not', () => {
    expect(gcDue(policy, totals(600e6, true), Date.now())).toBe(true);
    expect(gcDue(policy, totals(600e6, false), Date.now())).toBe(false);
  });
  test('over the cap: due', () => {
    expect(gcDue(policy, totals(3 * GB, false), Date.now())).toBe(true);
  });
  test('with a real store: the 48 h rule looks at cache mounts older than 48 h only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gc-'));
    let now = Date.now() - 50 * H;
    const store = CacheStore.open({ path: join(dir, 'solver.db'), now: () => now });
    try {
      store.upsertRecord({ snapshot: 'cachemount:a', size: 400e6, description: 'cache mount a', kind: 'exec.cachemount' });
      now = Date.now();
      store.save('k', [], { id: 'r', snapshot: 's', size: 200e6, description: 'RUN x' });
      expect(gcDue(policy, store, now)).toBe(true);
      const victims = selectPruneVictims(store.du(), store.totalSize(), { keepStorage: 512e6, keepDuration: 48 * H, filter: (u: DiskUsageRecord) => u.kind === 'exec.cachemount' }, now);
      expect(victims.map((v) => v.snapshot)).toEqual(['cachemount:a']);
      store.upsertRecord({ snapshot: 'cachemount:a', size: 400e6, description: 'cache mount a', kind: 'exec.cachemount' }); // used again now
      expect(gcDue(policy, store, now)).toBe(false);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('a local context built again: its old records share the fresh snapshot, so nothing is due (was: a GC pass after every build)', () => {
    // Every build records its local source under a new random key; unchanged content is the same
    // `local-<digest>` snapshot. A prune looks at the snapshot's latest use: nothing to remove.
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gc-'));
    let now = Date.now() - 50 * H;
    const store = CacheStore.open({ path: join(dir, 'solver.db'), now: () => now });
    try {
      store.save('random:1', [], { id: 'r1', snapshot: 'local-abc', size: 600e6, description: 'local://context', kind: 'source.local' });
      now = Date.now();
      store.save('random:2', [], { id: 'r2', snapshot: 'local-abc', size: 600e6, description: 'local://context', kind: 'source.local' });
      const victims = selectPruneVictims(store.du(), store.totalSize(), { keepStorage: 512e6, keepDuration: 48 * H, filter: (u: DiskUsageRecord) => u.kind === 'source.local' }, now);
      expect(victims).toEqual([]);
      expect(store.hasUnusedSince(['source.local'], now - 48 * H)).toBe(false);
      expect(gcDue(policy, store, now)).toBe(false);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config file GC ([worker.oci], BuildKit ≥ 0.17 names)', () => {
  const dir = '/nonexistent/kiln/root';
  const fs = 100 * 2 ** 30; // a 100 GiB filesystem
  const none = { reservedSpace: 0, maxUsedSpace: 0, minFreeSpace: 0 };

  test('keepBytesFor is BuildKit calculateKeepBytes', () => {
    expect(keepBytesFor(none, 10 * GB, 1 * GB)).toBeUndefined(); // no limit: no cap
    expect(keepBytesFor({ ...none, reservedSpace: 2 * GB }, 10 * GB, 1 * GB)).toBe(2 * GB);
    expect(keepBytesFor({ ...none, maxUsedSpace: 5 * GB, reservedSpace: 2 * GB }, 10 * GB, 1 * GB)).toBe(5 * GB);
    // minFreeSpace 4 GB with 1 GB free: 3 GB must go from a 10 GB cache
    expect(keepBytesFor({ ...none, minFreeSpace: 4 * GB }, 10 * GB, 1 * GB)).toBe(7 * GB);
    expect(keepBytesFor({ ...none, minFreeSpace: 4 * GB, maxUsedSpace: 6 * GB }, 10 * GB, 1 * GB)).toBe(6 * GB);
    // ... but never below reservedSpace
    expect(keepBytesFor({ ...none, minFreeSpace: 4 * GB, reservedSpace: 8 * GB }, 10 * GB, 1 * GB)).toBe(8 * GB);
    // enough free space and only minFreeSpace: nothing goes
    expect(keepBytesFor({ ...none, minFreeSpace: 4 * GB }, 10 * GB, 5 * GB)).toBe(10 * GB);
  });

  test('a percentage of the disk rounds up as DiskSpace.AsBytes', () => {
    expect(diskSpaceBytes({ percent: 10 }, fs)).toBe(11 * GB);
    expect(diskSpaceBytes({ percent: 10 }, undefined)).toBe(2 * GB);
    expect(diskSpaceBytes({ bytes: 123 }, fs)).toBe(123);
  });

  test('gc = false: no GC; gckeepstorage alone: the default rules with that cap (as reservedSpace)', () => {
    expect(gcPolicyFromFile({ enabled: false, keepStorage: { bytes: GB } }, dir, fs)).toBeUndefined();
    const p = gcPolicyFromFile({ keepStorage: { bytes: 3 * GB } }, dir, fs);
    expect(p?.rules.map((r) => r.keepBytes)).toEqual([EASY_KEEP_BYTES, 3 * GB, 3 * GB, 3 * GB]);
    expect(p?.rules.map((r) => r.all === true)).toEqual([false, false, false, true]);
    expect(p?.keepBytes).toBe(3 * GB);
    // reservedSpace and maxUsedSpace: the larger keeps
    expect(gcPolicyFromFile({ reservedSpace: { bytes: GB }, maxUsedSpace: { percent: 10 } }, dir, fs)?.keepBytes).toBe(11 * GB);
    // no GC keys at all (only gc = true): kiln's default cap
    expect(gcPolicyFromFile({ enabled: true }, dir, fs)?.keepBytes).toBe(defaultKeepBytes(fs));
  });

  test('[[worker.oci.gcpolicy]] replaces the rules: filters, keepDuration, keepBytes (→ reservedSpace), all', () => {
    const p = gcPolicyFromFile(
      {
        keepStorage: { bytes: 9 * GB }, // unused with explicit rules, as in BuildKit
        policy: [
          { keepBytes: { bytes: 512e6 }, keepDuration: 48 * H, filters: ['type==source.local', 'type==exec.cachemount'] },
          { all: true, reservedSpace: { bytes: GB }, filters: ['description~=apt,until=72h'] },
        ],
      },
      dir,
      fs,
    );
    expect(p?.rules[0]).toEqual({ keepDuration: 48 * H, types: ['source.local', 'exec.cachemount'], keepBytes: 512e6 });
    expect(p?.rules[1]).toMatchObject({ all: true, keepDuration: 72 * H, keepBytes: GB });
    expect(p?.rules[1]?.match?.({ id: 'x', kind: 'regular', description: 'RUN apt-get install' })).toBe(true);
    expect(p?.rules[1]?.match?.({ id: 'x', kind: 'regular', description: 'COPY . .' })).toBe(false);
    expect(p?.keepBytes).toBe(GB);
  });

  test('the filters of one rule are alternatives (buildkitd reads them with containerd\'s filters.ParseAll); the selectors inside one all apply', () => {
    const rule = (filters: string[]) => gcPolicyFromFile({ policy: [{ filters }] }, dir, fs)?.rules[0];
    const apt = { id: 'b', kind: 'regular', description: 'RUN apt-get update' };
    const local = { id: 'a', kind: 'source.local', description: 'local context' };
    const make = { id: 'c', kind: 'regular', description: 'RUN make' };
    const either = rule(['type==source.local', 'description~=apt']);
    expect([local, apt, make].map((r) => either?.match?.(r))).toEqual([true, true, false]);
    const both = rule(['type==regular,description~=apt']);
    expect([local, apt, make].map((r) => both?.match?.(r))).toEqual([false, true, false]);
    // until= is kiln's: the longest applies to the rule; alone in a filter it selects nothing more.
    expect(rule(['type==source.local', 'description~=apt,until=72h'])?.keepDuration).toBe(72 * H);
    const aged = rule(['description~=apt', 'until=24h']);
    expect(aged?.keepDuration).toBe(24 * H);
    expect([local, apt, make].map((r) => aged?.match?.(r))).toEqual([false, true, false]);
  });

  test('minFreeSpace: keepBytes is decided at GC time from the free space (fake disk)', () => {
    const p = gcPolicyFromFile({ policy: [{ minFreeSpace: { bytes: 4 * GB }, reservedSpace: { bytes: GB } }] }, dir, fs);
    if (p === undefined) throw new Error('policy expected');
    expect(p.disk).toBe(dir);
    expect(rulesNow(p, () => 10 * GB, () => 1 * GB)[0]?.keepBytes).toBe(7 * GB);
    expect(rulesNow(p, () => 10 * GB, () => 9 * GB)[0]?.keepBytes).toBe(10 * GB);
    const store = (total: number): CacheTotals => ({ totalSizeBound: () => total, totalSize: () => total, hasUnusedSince: () => false });
    expect(gcDue(p, store(10 * GB), Date.now(), () => 1 * GB)).toBe(true);
    expect(gcDue(p, store(10 * GB), Date.now(), () => 9 * GB)).toBe(false);
  });

  test('precedence: --gc-keep-storage over KILN_GC_KEEP_STORAGE over the file over the default', () => {
    const file = { keepStorage: { bytes: 3 * GB } };
    expect(resolveGcPolicy({ flag: '1GB', env: '2GB', file }, dir)?.keepBytes).toBe(1024 ** 3);
    expect(resolveGcPolicy({ env: '2GB', file }, dir)?.keepBytes).toBe(2 * 1024 ** 3);
    expect(resolveGcPolicy({ env: 'off', file }, dir)).toBeUndefined();
    expect(resolveGcPolicy({ env: '', file }, dir)?.keepBytes).toBe(3 * GB);
    expect(resolveGcPolicy({}, dir)?.keepBytes).toBe(gcPolicyFor(undefined, dir)?.keepBytes);
  });
});
