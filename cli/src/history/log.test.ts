import { gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { ProgressEvent } from '@kiln/solver';
import { LogEncoder } from './log.js';

const T = Date.parse('2026-11-30T12:00:00.000Z');
const V = 'sha256:aaaa';

/** The decoded lines of a finished log. */
function lines(bytes: Buffer): string[] {
  return gunzipSync(bytes).toString().trimEnd().split('\n');
}

describe('LogEncoder', () => {
  test('a burst of compressible output far over the cap in raw bytes but under it compressed is kept whole, not truncated', async () => {
    // A RUN printing a long, repetitive log: its events arrive faster than libuv's threads
    // compress them (here all in one tick). Raw rawjson: ~2.5 MB; gzip: a few tens of kB.
    const limit = 256 * 1024;
    const log = new LogEncoder(limit);
    const events: ProgressEvent[] = [{ kind: 'vertex.started', vertex: V, name: 'RUN noisy', time: T }];
    for (let i = 0; i < 20_000; i++) events.push({ kind: 'log', vertex: V, stream: 1, data: Buffer.from(`line number ${i} of a long log that compresses well\n`), time: T + 1 });
    events.push({ kind: 'log', vertex: V, stream: 1, data: Buffer.from('after-the-noise\n'), time: T + 2 });
    events.push({ kind: 'vertex.done', vertex: V, time: T + 3 });
    for (const ev of events) log.handle(ev);
    const out = await log.finish();
    expect(out?.truncated).toBe(false);
    expect(out?.bytes.length).toBeLessThanOrEqual(limit);
    const got = lines(out?.bytes as Buffer);
    expect(got).toHaveLength(events.length);
    expect(Buffer.from((JSON.parse(got.at(-2) as string) as { logs: { data: string }[] }).logs[0]?.data ?? '', 'base64').toString()).toBe('after-the-noise\n');
  });

  test('incompressible output in one burst: cut at the cap, the step still ends in the log', async () => {
    const limit = 64 * 1024;
    const log = new LogEncoder(limit);
    log.handle({ kind: 'vertex.started', vertex: V, name: 'RUN noisy', time: T });
    for (let i = 0; i < 400; i++) log.handle({ kind: 'log', vertex: V, stream: 1, data: randomBytes(1024), time: T + 1 });
    log.handle({ kind: 'vertex.done', vertex: V, time: T + 2 });
    const out = await log.finish();
    expect(out?.truncated).toBe(true);
    expect(out?.bytes.length).toBeLessThanOrEqual(limit);
    // Most of the room holds output (base64 of random bytes compresses to ~3/4).
    expect(out?.bytes.length).toBeGreaterThan(limit / 2);
    const got = lines(out?.bytes as Buffer);
    expect(JSON.parse(got.at(-1) as string)).toMatchObject({ vertexes: [{ digest: V, completed: new Date(T + 2).toISOString() }] });
  });
});
