import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { tempRoots } from '../../test/helpers/temp-roots.js';
import { processStart } from '@kiln/runtime';
import { newRef, shownStatus, type HistoryRecord } from './record.js';
import { HistoryStore, recordFiles } from './store.js';

const root = tempRoots('kiln-history-');

const T0 = Date.parse('2026-11-30T12:00:00.000Z');

function rec(created: number, over: Partial<HistoryRecord> = {}): HistoryRecord {
  return { version: 1, ref: newRef(), kind: 'build', name: 'app', status: 'completed', createdAt: new Date(created).toISOString(), durationMs: 1000, steps: { total: 3, cached: 1, completed: 3 }, exports: [], ...over };
}

describe('HistoryStore', () => {
  test('records are listed newest first and found by ref, unique prefix or ^N', async () => {
    const s = new HistoryStore(root());
    const a = rec(T0);
    const b = rec(T0 + 1000);
    const c = rec(T0 + 2000);
    for (const r of [b, a, c]) await s.write(r);
    expect((await s.list()).map((x) => x.record.ref)).toEqual([c.ref, b.ref, a.ref]);
    expect((await s.find(undefined)).record.ref).toBe(c.ref);
    expect((await s.find('^0')).record.ref).toBe(c.ref);
    expect((await s.find('^2')).record.ref).toBe(a.ref);
    expect((await s.find(b.ref)).record.ref).toBe(b.ref);
    expect((await s.find(a.ref.slice(0, 20))).record.ref).toBe(a.ref);
    // buildx.build.ref of --metadata-file: BUILDER/NODE/REF.
    expect((await s.find(`kiln/kiln0/${b.ref}`)).record.ref).toBe(b.ref);
    await expect(s.find('^3')).rejects.toMatchObject({ code: 'KLN0930', message: expect.stringContaining('3 builds are recorded') });
    await expect(s.find('^x')).rejects.toMatchObject({ code: 'KLN0931' });
    await expect(s.find('zzzzzzzzzzzzzzzzzzzzzzzzz')).rejects.toMatchObject({ code: 'KLN0930', hint: expect.stringContaining('kiln history ls') });
    // Every ref starts with one of 36 digits: the empty prefix is not a match for all.
    await expect(s.find('')).rejects.toMatchObject({ code: 'KLN0930' });
  });

  test('an ambiguous prefix names how many builds it matches', async () => {
    const s = new HistoryStore(root());
    await s.write(rec(T0, { ref: 'abc0000000000000000000001' }));
    await s.write(rec(T0 + 1, { ref: 'abc0000000000000000000002' }));
    await expect(s.find('abc')).rejects.toMatchObject({ code: 'KLN0930', message: expect.stringContaining('matches 2 builds') });
  });

  test('an empty history says so', async () => {
    await expect(new HistoryStore(root()).find(undefined)).rejects.toMatchObject({ code: 'KLN0930', message: expect.stringContaining('no builds are recorded') });
  });

  test('a rewritten record replaces the running one in place; a torn file is skipped', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const running = rec(T0, { status: 'running', owner: { pid: 1 } });
    await s.write(running);
    await s.write({ ...running, status: 'error' }, Buffer.from('log'));
    await writeFile(join(s.dir, recordFiles(newRef(), T0 + 5).json), '{"version":1,"ref":');
    const all = await s.list();
    expect(all.map((x) => [x.record.ref, x.record.status])).toEqual([[running.ref, 'error']]);
    // No temp file is left behind by the writes.
    expect((await readdir(s.dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  test('retention as BuildKit gc: a record goes once it is past the newest 50 and completed more than 48 h ago; its log goes with it', async () => {
    const s = new HistoryStore(root());
    const H = 3600_000;
    const policy = { maxEntries: 50, maxAgeMs: 48 * H };
    // 3 records, one of them 72 h old: fewer than 50, all stay (BuildKit keeps the last 50 however old).
    const few = [rec(T0 - 72 * H, { completedAt: new Date(T0 - 72 * H + 1000).toISOString() }), rec(T0), rec(T0 + 1000)];
    for (const r of few) await s.write(r, Buffer.from('x'));
    expect(await s.prune(policy, T0 + 60_000)).toBe(0);
    expect(await s.list()).toHaveLength(3);
    // 60 records of the last hour: more than 50, all younger than 48 h: all stay.
    for (const r of few) await s.remove(recordFiles(r.ref, Date.parse(r.createdAt)));
    const recent = Array.from({ length: 60 }, (_, i) => rec(T0 + i * 1000, { completedAt: new Date(T0 + i * 1000 + 500).toISOString() }));
    for (const r of recent) await s.write(r, Buffer.from('x'));
    expect(await s.prune(policy, T0 + H)).toBe(0);
    expect(await s.list()).toHaveLength(60);
    // 48 h after the 6th completed: the 10 oldest are past the newest 50; of them the 6 completed
    // more than 48 h ago go, with their logs.
    expect(await s.prune(policy, T0 + 5 * 1000 + 500 + 48 * H + 1)).toBe(6);
    const left = (await s.list()).map((x) => x.record.ref);
    expect(left).toEqual(recent.slice(6).map((r) => r.ref).reverse());
    expect((await readdir(s.dir)).filter((n) => n.endsWith('.log.gz'))).toHaveLength(54);
    // A record past the newest 50 whose build took long: created before, completed within 48 h: stays.
    const long = rec(T0 - 50 * H, { completedAt: new Date(T0 - 47 * H).toISOString() });
    await s.write(long);
    expect(await s.prune(policy, T0 + 6 * 1000)).toBe(0);
    expect((await s.list()).map((x) => x.record.ref)).toContain(long.ref);
  });

  test('retention keeps a record whose build still runs, and drops an interrupted one', async () => {
    const s = new HistoryStore(root());
    const live = rec(T0, { status: 'running', owner: { pid: 11 } });
    const dead = rec(T0 + 1, { status: 'running', owner: { pid: 12 } });
    const newest = rec(T0 + 2);
    await s.write(live);
    await s.write(dead);
    await s.write(newest);
    const alive = (o: { pid: number } | undefined): boolean => o?.pid === 11;
    expect(await s.prune({ maxEntries: 1, maxAgeMs: 1 }, T0 + 10, alive)).toBe(1);
    expect((await s.list()).map((x) => x.record.ref)).toEqual([newest.ref, live.ref]);
  });

  test('prune removes logs without a record and stale temp files of dead processes, not a fresh one (another pid namespace writing)', async () => {
    const s = new HistoryStore(root());
    const kept = rec(T0);
    await s.write(kept, Buffer.from('x'));
    const orphan = recordFiles(newRef(), T0 - 1);
    await writeFile(join(s.dir, orphan.log), 'x');
    // pid 2^22 + 1 is above Linux's pid_max limit: never a live process here.
    const stale = `.${orphan.json}.4194305-abcd.tmp`;
    await writeFile(join(s.dir, stale), 'x');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(join(s.dir, stale), hourAgo, hourAgo);
    await writeFile(join(s.dir, `.${orphan.json}.${process.pid}-abcd.tmp`), 'x');
    // A write in flight in another pid namespace (a kiln in another container sharing the root):
    // its pid is nobody here, its file is fresh.
    const inFlight = `.${recordFiles(newRef(), T0).json}.4194305-ef01.tmp`;
    await writeFile(join(s.dir, inFlight), 'x');
    await s.prune(undefined, T0);
    expect((await readdir(s.dir)).sort()).toEqual([`.${orphan.json}.${process.pid}-abcd.tmp`, inFlight, recordFiles(kept.ref, T0).json, recordFiles(kept.ref, T0).log].sort());
  });

  test('a running record whose process was killed but not yet reaped (a zombie: no init reaps it in a container) reads as interrupted', async () => {
    // sh starts a short sleep, then becomes a long one that never waits for it: the short one
    // stays a zombie, its pid still answering kill(0).
    const child = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number((await once(child.stdout, 'data'))[0]);
      await expect.poll(() => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]).toBe('Z');
      const start = processStart(pid);
      expect(start).toBeDefined();
      expect(shownStatus(rec(T0, { status: 'running', owner: { pid, ...(start === undefined ? {} : { start }) } }))).toBe('interrupted');
    } finally {
      child.kill();
    }
  });

  test('a running record whose process is gone reads as interrupted', () => {
    const r = rec(T0, { status: 'running', owner: { pid: 4194305 } });
    expect(shownStatus(r)).toBe('interrupted');
    expect(shownStatus({ ...r, owner: { pid: process.pid } })).toBe('running');
    // Another pid namespace: its pid says nothing here, so the build counts as running.
    expect(shownStatus({ ...r, owner: { pid: 4194305, pidNamespace: 'pid:[1]' } })).toBe('running');
  });
});
