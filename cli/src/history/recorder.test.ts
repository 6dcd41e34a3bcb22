import { readdir, readFile, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { tempRoots } from '../../test/helpers/temp-roots.js';
import { RawJsonRenderer, VertexError, type ProgressEvent } from '@kiln/solver';
import type { ExportResult } from '@kiln/runtime';
import { startRecording, type BuildDescription, type RecordOptions } from './recorder.js';
import { HistoryStore } from './store.js';

const root = tempRoots('kiln-history-');

const T = Date.parse('2026-11-30T12:00:00.000Z');
const A = 'sha256:aaaa';
const B = 'sha256:bbbb';
const DESC: BuildDescription = { kind: 'build', name: 'app', context: '/src/app', dockerfile: '/src/app/Dockerfile', secrets: ['token'] };

/** A sink that keeps what reaches it. */
function collector(): { emit(ev: ProgressEvent): void; events: ProgressEvent[] } {
  const events: ProgressEvent[] = [];
  return { events, emit: (ev) => void events.push(ev) };
}

function opts(r: string, over: Partial<RecordOptions> = {}): RecordOptions {
  let now = T;
  return { root: r, env: {}, now: () => (now += 250), ...over };
}

const STEPS: ProgressEvent[] = [
  { kind: 'vertex.started', vertex: A, name: '[1/2] FROM busybox', time: T },
  { kind: 'vertex.cached', vertex: A, name: '[1/2] FROM busybox', time: T + 1 },
  { kind: 'vertex.started', vertex: B, name: '[2/2] RUN echo hi', time: T + 2 },
  { kind: 'log', vertex: B, stream: 1, data: Buffer.from('hi\n'), time: T + 3 },
  { kind: 'vertex.done', vertex: B, time: T + 4 },
];

describe('startRecording', () => {
  test('a build that succeeds: running record first, then status, times, steps, exports and its rawjson log', async () => {
    const r = root();
    const store = new HistoryStore(r);
    const out = collector();
    const rec = startRecording(DESC, out, opts(r));
    for (const ev of STEPS) rec.sink.emit(ev);
    // Events reach the build's own sink unchanged, in order.
    expect(out.events).toEqual(STEPS);
    let finish!: (v: { exports: ExportResult[]; frontend: string }) => void;
    const done = rec.track(new Promise<{ exports: ExportResult[]; frontend: string }>((resolve) => (finish = resolve)));
    await expect.poll(async () => (await store.list())[0]?.record.status).toBe('running');
    expect((await store.list())[0]?.record.owner?.pid).toBe(process.pid);
    const exports: ExportResult[] = [{ type: 'oci', dest: '/tmp/kiln-output-x/out.tar', names: ['app:1'], digest: 'sha256:cccc' as ExportResult['digest'], pushed: [] }];
    finish({ exports, frontend: 'dockerfile.v0' });
    expect((await done).frontend).toBe('dockerfile.v0');
    const [{ record, files } = { record: undefined, files: undefined }] = await store.list();
    expect(record).toMatchObject({
      kind: 'build',
      name: 'app',
      status: 'completed',
      frontend: 'dockerfile.v0',
      createdAt: new Date(T + 250).toISOString(),
      completedAt: new Date(T + 500).toISOString(),
      durationMs: 250,
      steps: { total: 2, cached: 1, completed: 2 },
      exports: [{ type: 'oci', dest: '/tmp/kiln-output-x/out.tar', names: ['app:1'], digest: 'sha256:cccc', pushed: [] }],
      secrets: ['token'],
    });
    expect(record?.owner).toBeUndefined();
    expect(record?.log?.truncated).toBe(false);
    // The log is what --progress=rawjson prints for the same events.
    let raw = '';
    const renderer = new RawJsonRenderer({ write: (s) => (raw += s) });
    for (const ev of STEPS) renderer.handle(ev);
    const log = await readFile(store.logPath(files as NonNullable<typeof files>));
    expect(log.length).toBe(record?.log?.size);
    expect(gunzipSync(log).toString()).toBe(raw);
  });

  test('a failed RUN: status error, the message, the Dockerfile line and the report as printed; the error is rethrown', async () => {
    const r = root();
    const err = new VertexError({ vertex: B, name: '[2/2] RUN false', op: 'exec', locations: [{ file: '', line: 2, column: 1 }], command: '/bin/sh -c false', exitCode: 1, logTail: ['boom'] }, new Error('exit 1'));
    const rec = startRecording(DESC, collector(), opts(r, { buildFile: { text: 'FROM busybox\nRUN false\n' } }));
    rec.sink.emit({ kind: 'vertex.started', vertex: B, name: '[2/2] RUN false', time: T });
    rec.sink.emit({ kind: 'vertex.error', vertex: B, error: 'exit code: 1', time: T + 1 });
    await expect(rec.track(Promise.reject(err))).rejects.toBe(err);
    const [{ record } = { record: undefined }] = await new HistoryStore(r).list();
    expect(record?.status).toBe('error');
    expect(record?.steps).toEqual({ total: 1, cached: 0, completed: 0 });
    expect(record?.error?.location).toEqual({ file: 'Dockerfile', line: 2, column: 1 });
    expect(record?.error?.message).toBe('Dockerfile:2:1: process "/bin/sh -c false" did not complete successfully: exit code: 1');
    expect(record?.error?.report).toContain('  2 | RUN false');
    expect(record?.error?.report).toContain('  > boom');
  });

  test('a build that fails after its signal fired was canceled', async () => {
    const r = root();
    const ac = new AbortController();
    const rec = startRecording(DESC, collector(), opts(r, { signal: ac.signal }));
    ac.abort(new Error('interrupted'));
    await expect(rec.track(Promise.reject(new Error('cancelled')))).rejects.toThrow('cancelled');
    const [{ record } = { record: undefined }] = await new HistoryStore(r).list();
    expect(record?.status).toBe('canceled');
    expect(record?.error).toBeUndefined();
  });

  test('KILN_HISTORY=0 records nothing and hands the build its own sink', async () => {
    const r = root();
    const out = collector();
    const rec = startRecording(DESC, out, opts(r, { env: { KILN_HISTORY: '0' } }));
    expect(rec.sink).toBe(out);
    await rec.track(Promise.resolve({ exports: [] }));
    expect(await readdir(r)).toEqual([]);
  });

  test('a record that cannot be written is a warning; the build result stands', async () => {
    const r = root();
    const warnings: string[] = [];
    // A file where the history directory would go.
    await import('node:fs/promises').then((fs) => fs.writeFile(join(r, 'history'), 'not a directory'));
    const rec = startRecording(DESC, collector(), opts(r, { onWarning: (m) => void warnings.push(m) }));
    await expect(rec.track(Promise.resolve({ exports: [] }))).resolves.toEqual({ exports: [] });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('not recorded in kiln history');
  });

  test('a final record that cannot be written whole (a full disk: ENOSPC for the log) does not leave the build running; the build result stands', async () => {
    const r = root();
    const store = new HistoryStore(r);
    const warnings: string[] = [];
    const rec = startRecording(DESC, collector(), opts(r, { onWarning: (m) => void warnings.push(m) }));
    for (const ev of STEPS) rec.sink.emit(ev);
    await expect.poll(async () => (await store.list())[0]?.record.status).toBe('running');
    const [{ files } = { files: undefined }] = await store.list();
    // The log goes to a full device: every write of it fails with ENOSPC.
    await symlink('/dev/full', store.logPath(files as NonNullable<typeof files>));
    await expect(rec.track(Promise.resolve({ exports: [] }))).resolves.toEqual({ exports: [] });
    expect(warnings.join('\n')).toContain('ENOSPC');
    const [{ record } = { record: undefined }] = await store.list();
    // A running record of this (live) process would read as Running for as long as it lives: a daemon's, for days.
    expect(record?.status).toBe('completed');
    expect(record?.log).toBeUndefined();
    expect(record?.steps).toEqual({ total: 2, cached: 1, completed: 2 });
  });

  test('the log is capped: step output is cut and the record says so; steps still end in it', async () => {
    const r = root();
    const limit = 8192;
    const rec = startRecording(DESC, collector(), opts(r, { logLimit: limit }));
    rec.sink.emit({ kind: 'vertex.started', vertex: B, name: 'RUN noisy', time: T });
    // Incompressible output, far more than the cap.
    for (let i = 0; i < 64; i++) {
      rec.sink.emit({ kind: 'log', vertex: B, stream: 1, data: randomBytes(1024), time: T + i });
      await new Promise((resolve) => setImmediate(resolve));
    }
    rec.sink.emit({ kind: 'vertex.done', vertex: B, time: T + 100 });
    await rec.track(Promise.resolve({ exports: [] }));
    const store = new HistoryStore(r);
    const [{ record, files } = { record: undefined, files: undefined }] = await store.list();
    expect(record?.log?.truncated).toBe(true);
    expect(record?.log?.limit).toBe(limit);
    expect(record?.log?.size).toBeLessThanOrEqual(limit);
    const lines = gunzipSync(await readFile(store.logPath(files as NonNullable<typeof files>))).toString().trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.length).toBeLessThan(66);
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ vertexes: [{ digest: B, completed: new Date(T + 100).toISOString() }] });
  });

  test('retention on write: with room for 3 and no max age, the 4th build drops the oldest', async () => {
    const r = root();
    let now = T;
    const refs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const rec = startRecording({ ...DESC, name: `b${i}` }, collector(), { root: r, env: {}, now: () => (now += 1000), retention: { maxEntries: 3, maxAgeMs: 0 } });
      await rec.track(Promise.resolve({ exports: [] }));
      refs.push(...(await new HistoryStore(r).list()).slice(0, 1).map((x) => x.record.name));
    }
    expect(refs).toEqual(['b0', 'b1', 'b2', 'b3']);
    // The retention pass runs after the build's record is written, without holding up the build.
    await expect.poll(async () => (await new HistoryStore(r).list()).map((x) => x.record.name)).toEqual(['b3', 'b2', 'b1']);
  });
});
