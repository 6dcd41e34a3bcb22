import { describe, expect, test } from 'vitest';
import type { ProgressEvent } from './events.js';
import { PlainRenderer } from './plain.js';
import { createRenderer } from './render.js';
import { RawJsonRenderer } from './rawjson.js';
import { TtyRenderer } from './tty.js';

function run(events: ProgressEvent[]): string {
  let s = '';
  const r = new PlainRenderer({ write: (t) => (s += t) });
  for (const e of events) r.handle(e);
  r.finish();
  return s;
}

const A = 'sha256:aaaa';
const B = 'sha256:bbbb';
const T = 1_700_000_000_000;

describe('PlainRenderer', () => {
  test('sequential vertices: header, logs with offsets, DONE, blank separators, CACHED', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: '[stage 1/2] RUN echo hi', time: T },
      { kind: 'log', vertex: A, stream: 1, data: Buffer.from('hi\nthere\n'), time: T + 123 },
      { kind: 'vertex.done', vertex: A, time: T + 300 },
      { kind: 'vertex.cached', vertex: B, name: '[stage 2/2] COPY a b', time: T + 310 },
    ]);
    expect(out).toBe(
      '#1 [stage 1/2] RUN echo hi\n#1 0.123 hi\n#1 0.123 there\n#1 DONE 0.3s\n\n#2 [stage 2/2] COPY a b\n#2 CACHED\n',
    );
  });

  test('interleaved vertices print a continuation marker', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: 'a', time: T },
      { kind: 'vertex.started', vertex: B, name: 'b', time: T + 10 },
      { kind: 'log', vertex: A, stream: 2, data: Buffer.from('x\n'), time: T + 1000 },
      { kind: 'vertex.done', vertex: A, time: T + 1050 },
      { kind: 'vertex.done', vertex: B, time: T + 1100 },
    ]);
    expect(out).toBe('#1 a\n\n#2 b\n\n#1 ...\n#1 1.000 x\n#1 DONE 1.1s\n\n#2 ...\n#2 DONE 1.1s\n');
  });

  test('partial log lines are joined and flushed at DONE; errors print ERROR', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: 'RUN false', time: T },
      { kind: 'log', vertex: A, stream: 1, data: Buffer.from('par'), time: T + 5 },
      { kind: 'log', vertex: A, stream: 1, data: Buffer.from('tial\nend'), time: T + 7 },
      { kind: 'vertex.error', vertex: A, error: 'process "/bin/sh -c false" did not complete successfully: exit code: 1', time: T + 20 },
    ]);
    expect(out).toBe(
      '#1 RUN false\n#1 0.007 partial\n#1 0.020 end\n#1 ERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1\n',
    );
  });

  test('log bytes pass through unchanged: Latin-1, a UTF-8 character split across writes, CRLF', () => {
    const chunks: Buffer[] = [];
    const r = new PlainRenderer({ write: (t) => void chunks.push(Buffer.from(t)) });
    r.handle({ kind: 'vertex.started', vertex: A, name: 'RUN x', time: T });
    r.handle({ kind: 'log', vertex: A, stream: 1, data: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]), time: T + 1 });
    const snowman = Buffer.from('\u2603\r\n');
    r.handle({ kind: 'log', vertex: A, stream: 1, data: snowman.subarray(0, 2), time: T + 2 });
    r.handle({ kind: 'log', vertex: A, stream: 1, data: snowman.subarray(2), time: T + 3 });
    r.handle({ kind: 'vertex.done', vertex: A, time: T + 4 });
    expect(Buffer.concat(chunks)).toEqual(
      Buffer.concat([Buffer.from('#1 RUN x\n#1 0.001 caf'), Buffer.from([0xe9]), Buffer.from('\n#1 0.003 \u2603\n#1 DONE 0.0s\n')]),
    );
  });

  test('status lines show the status ID (not its name), amounts, elapsed time and done', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: 'FROM busybox', time: T },
      { kind: 'status', vertex: A, id: 'sha256:1234', name: 'resolve', current: 1_200_000, total: 3_400_000, started: T, time: T + 500 },
      { kind: 'status', vertex: A, id: 'sha256:1234', current: 3_400_000, total: 3_400_000, started: T, completed: T + 1000, time: T + 1000 },
      { kind: 'vertex.done', vertex: A, time: T + 1000 },
    ]);
    expect(out).toBe(
      '#1 FROM busybox\n#1 sha256:1234 1.2MB / 3.4MB 0.5s\n#1 sha256:1234 3.4MB / 3.4MB 1.0s done\n#1 DONE 1.0s\n',
    );
  });

  test('a cancelled vertex prints CANCELED', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: 'RUN sleep 100', time: T },
      { kind: 'vertex.error', vertex: A, error: 'cancelled', time: T + 500 },
    ]);
    expect(out).toBe('#1 RUN sleep 100\n#1 CANCELED\n');
  });

  test('a vertex reported twice (shared between builds) prints DONE once', () => {
    const out = run([
      { kind: 'vertex.started', vertex: A, name: 'a', time: T },
      { kind: 'vertex.done', vertex: A, time: T + 100 },
      { kind: 'vertex.done', vertex: A, time: T + 100 },
    ]);
    expect(out).toBe('#1 a\n#1 DONE 0.1s\n');
  });
});

describe('RawJsonRenderer', () => {
  test('one SolveStatus-shaped JSON object per line, log data base64', () => {
    let s = '';
    const r = new RawJsonRenderer({ write: (t) => (s += t) });
    r.handle({ kind: 'vertex.started', vertex: A, name: 'a', time: T });
    r.handle({ kind: 'log', vertex: A, stream: 1, data: Buffer.from('hi\n'), time: T + 1 });
    r.handle({ kind: 'vertex.done', vertex: A, time: T + 2 });
    const lines = s.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { vertexes: [{ digest: A, name: 'a', started: new Date(T).toISOString() }] },
      { logs: [{ vertex: A, stream: 1, data: Buffer.from('hi\n').toString('base64'), timestamp: new Date(T + 1).toISOString() }] },
      { vertexes: [{ digest: A, name: 'a', started: new Date(T).toISOString(), completed: new Date(T + 2).toISOString() }] },
    ]);
  });

  test('log data is the bytes as written, not a UTF-8 reading of them', () => {
    let s = '';
    const r = new RawJsonRenderer({ write: (t) => (s += t) });
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x0a]);
    r.handle({ kind: 'log', vertex: A, stream: 2, data: bytes, time: T });
    const line = JSON.parse(s) as { logs: [{ data: string }] };
    expect(Buffer.from(line.logs[0].data, 'base64')).toEqual(bytes);
  });
});

describe('TtyRenderer', () => {
  test('redraws in place, collapses finished vertices and fits the width', () => {
    let s = '';
    let now = T;
    const r = new TtyRenderer({ write: (t) => (s += t), columns: 40, isTTY: true }, { now: () => now, throttleMs: 0 });
    r.handle({ kind: 'vertex.started', vertex: A, name: '[stage 1/2] RUN a-very-long-command-that-does-not-fit', time: T });
    now += 500;
    r.handle({ kind: 'log', vertex: A, stream: 1, data: Buffer.from('line1\n'), time: now });
    const running = r.view(false);
    expect(running[1]).toHaveLength(40);
    expect(running[1]?.endsWith('0.5s')).toBe(true);
    expect(running[2]).toContain('line1');
    now += 500;
    r.handle({ kind: 'vertex.done', vertex: A, time: now });
    const finished = r.view(false);
    expect(finished).toHaveLength(2); // header + one collapsed line, logs hidden
    expect(finished[0]).toBe('[+] Building 1.0s (1/1)');
    r.finish();
    expect(s).toContain('\x1b[3A'); // moved up over the previous 3-line frame
    expect(s).toContain('FINISHED');
  });

  test('auto picks tty only on a terminal', () => {
    expect(createRenderer('auto', { write: () => undefined, isTTY: true })).toBeInstanceOf(TtyRenderer);
    expect(createRenderer('auto', { write: () => undefined, isTTY: false })).toBeInstanceOf(PlainRenderer);
    expect(createRenderer('rawjson', { write: () => undefined })).toBeInstanceOf(RawJsonRenderer);
  });
});
