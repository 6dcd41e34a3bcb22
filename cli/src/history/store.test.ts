import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { newRef, shownStatus, type HistoryRecord } from './record.js';
import { HistoryStore, recordFiles } from './store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function root(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-history-'));
  dirs.push(d);
  return d;
}

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

  test('retention: 51 records → the newest 50; older than the max age → gone, with their logs', async () => {
    const s = new HistoryStore(root());
    const recs = Array.from({ length: 51 }, (_, i) => rec(T0 + i * 1000));
    for (const r of recs) await s.write(r, Buffer.from('x'));
    expect(await s.prune({ maxEntries: 50, maxAgeMs: 48 * 3600_000 }, T0 + 60_000)).toBe(1);
    const left = (await s.list()).map((x) => x.record.ref);
    expect(left).toHaveLength(50);
    expect(left).not.toContain(recs[0]?.ref);
    expect((await readdir(s.dir)).filter((n) => n.endsWith('.log.gz'))).toHaveLength(50);
    // 48 h after T0+10.5s, the records made at T0+1s … T0+10s are older than the max age.
    expect(await s.prune({ maxEntries: 50, maxAgeMs: 48 * 3600_000 }, T0 + 10_500 + 48 * 3600_000)).toBe(10);
    expect(await s.list()).toHaveLength(40);
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
    expect(await s.prune({ maxEntries: 1, maxAgeMs: 1e12 }, T0 + 10, alive)).toBe(1);
    expect((await s.list()).map((x) => x.record.ref)).toEqual([newest.ref, live.ref]);
  });

  test('prune removes logs without a record and temp files of dead processes', async () => {
    const s = new HistoryStore(root());
    const kept = rec(T0);
    await s.write(kept, Buffer.from('x'));
    const orphan = recordFiles(newRef(), T0 - 1);
    await writeFile(join(s.dir, orphan.log), 'x');
    // pid 2^22 + 1 is above Linux's pid_max limit: never a live process.
    await writeFile(join(s.dir, `.${orphan.json}.4194305-abcd.tmp`), 'x');
    await writeFile(join(s.dir, `.${orphan.json}.${process.pid}-abcd.tmp`), 'x');
    await s.prune(undefined, T0);
    expect((await readdir(s.dir)).sort()).toEqual([`.${orphan.json}.${process.pid}-abcd.tmp`, recordFiles(kept.ref, T0).json, recordFiles(kept.ref, T0).log].sort());
  });

  test('a running record whose process is gone reads as interrupted', () => {
    const r = rec(T0, { status: 'running', owner: { pid: 4194305 } });
    expect(shownStatus(r)).toBe('interrupted');
    expect(shownStatus({ ...r, owner: { pid: process.pid } })).toBe('running');
    // Another pid namespace: its pid says nothing here, so the build counts as running.
    expect(shownStatus({ ...r, owner: { pid: 4194305, pidNamespace: 'pid:[1]' } })).toBe('running');
  });
});
