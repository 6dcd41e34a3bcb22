import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, test } from 'vitest';
import { PlainRenderer, RawJsonRenderer, type ProgressEvent } from '@kiln/solver';
import { eventsOfRawJson, logLines } from './replay.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T = Date.parse('2026-11-30T12:00:00.000Z');
const A = 'sha256:aaaa';
const B = 'sha256:bbbb';
const C = 'sha256:cccc';

/** Every kind of event, interleaved, with non-UTF-8 output bytes. */
const EVENTS: ProgressEvent[] = [
  { kind: 'vertex.started', vertex: A, name: '[internal] load build definition from Dockerfile', time: T },
  { kind: 'status', vertex: A, id: 'transferring dockerfile', current: 31, started: T, completed: T + 5, time: T + 5 },
  { kind: 'vertex.done', vertex: A, time: T + 6 },
  { kind: 'vertex.started', vertex: B, name: '[1/2] FROM busybox', inputs: [A], time: T + 7 },
  { kind: 'vertex.cached', vertex: B, name: '[1/2] FROM busybox', time: T + 8 },
  { kind: 'vertex.started', vertex: C, name: '[2/2] RUN printf "caf\\351\\n" && echo ☃ && false', time: T + 9 },
  { kind: 'log', vertex: C, stream: 1, data: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]), time: T + 120 },
  { kind: 'log', vertex: C, stream: 2, data: Buffer.from('☃\npartial'), time: T + 130 },
  { kind: 'vertex.error', vertex: C, error: 'process "/bin/sh -c false" did not complete successfully: exit code: 1', time: T + 300 },
];

describe('eventsOfRawJson', () => {
  test('the rawjson lines of a build give back events that render as the build printed them (plain)', () => {
    let raw = '';
    const rawRenderer = new RawJsonRenderer({ write: (s) => (raw += s) });
    for (const ev of EVENTS) rawRenderer.handle(ev);
    const replayed = raw.trimEnd().split('\n').flatMap(eventsOfRawJson);
    const plain = (events: readonly ProgressEvent[]): Buffer => {
      const chunks: Buffer[] = [];
      const r = new PlainRenderer({ write: (c) => void chunks.push(Buffer.from(c)) });
      for (const ev of events) r.handle(ev);
      r.finish();
      return Buffer.concat(chunks);
    };
    expect(plain(replayed)).toEqual(plain(EVENTS));
    expect(plain(replayed).toString('latin1')).toContain('#3 0.111 caf\xe9');
  });

  test('lines that are not SolveStatus objects give nothing', () => {
    expect(eventsOfRawJson('')).toEqual([]);
    expect(eventsOfRawJson('{"vertexes":[{"name":"no digest"}]}')).toEqual([]);
    expect(eventsOfRawJson('null')).toEqual([]);
    expect(eventsOfRawJson('{"logs":[{"vertex":"v","data":7}]}')).toEqual([]);
  });
});

describe('logLines', () => {
  test('splits a gzip log into lines, a UTF-8 character across chunks whole', async () => {
    const d = mkdtempSync(join(tmpdir(), 'kiln-history-'));
    dirs.push(d);
    const long = `{"vertexes":[{"digest":"x","name":"${'☃'.repeat(40_000)}"}]}`;
    // Two gzip members, as the recorder writes a long log in segments, split inside a line.
    const text = `{"a":1}\n${long}\nlast`;
    await writeFile(join(d, 'log.gz'), Buffer.concat([gzipSync(text.slice(0, 50_001)), gzipSync(text.slice(50_001))]));
    const lines: string[] = [];
    for await (const l of logLines(join(d, 'log.gz'))) lines.push(l);
    expect(lines).toEqual(['{"a":1}', long, 'last']);
  });

  test('a missing or damaged log throws instead of hanging', async () => {
    const d = mkdtempSync(join(tmpdir(), 'kiln-history-'));
    dirs.push(d);
    const read = async (p: string): Promise<void> => {
      for await (const _ of logLines(p)) {
        // drain
      }
    };
    await expect(read(join(d, 'missing.gz'))).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(join(d, 'bad.gz'), 'not gzip');
    await expect(read(join(d, 'bad.gz'))).rejects.toThrow();
  });
});
