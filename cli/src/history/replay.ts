import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import type { ProgressEvent } from '@kiln/solver';

interface RawVertex {
  readonly digest?: unknown;
  readonly name?: unknown;
  readonly inputs?: unknown;
  readonly started?: unknown;
  readonly completed?: unknown;
  readonly cached?: unknown;
  readonly error?: unknown;
}

interface RawLog {
  readonly vertex?: unknown;
  readonly stream?: unknown;
  readonly data?: unknown;
  readonly timestamp?: unknown;
}

interface RawStatus {
  readonly id?: unknown;
  readonly vertex?: unknown;
  readonly name?: unknown;
  readonly total?: unknown;
  readonly current?: unknown;
  readonly timestamp?: unknown;
  readonly started?: unknown;
  readonly completed?: unknown;
}

const time = (v: unknown): number | undefined => {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
};

/**
 * The progress events of one `--progress=rawjson` line (a BuildKit SolveStatus as RawJsonRenderer
 * writes it), so a stored log replays through kiln's renderers. A vertex with no `completed`
 * started; with `cached` it came from the cache; with `error` it failed; else it finished.
 * Lines that are not such an object give nothing.
 */
export function eventsOfRawJson(line: string): ProgressEvent[] {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return [];
  }
  if (typeof obj !== 'object' || obj === null) return [];
  const o = obj as { vertexes?: unknown; logs?: unknown; statuses?: unknown };
  const out: ProgressEvent[] = [];
  for (const v of Array.isArray(o.vertexes) ? (o.vertexes as RawVertex[]) : []) {
    if (typeof v.digest !== 'string') continue;
    const vertex = v.digest;
    const name = typeof v.name === 'string' ? v.name : vertex;
    const started = time(v.started);
    const completed = time(v.completed);
    if (completed === undefined) {
      const inputs = Array.isArray(v.inputs) ? v.inputs.filter((i): i is string => typeof i === 'string') : undefined;
      out.push({ kind: 'vertex.started', vertex, name, ...(inputs === undefined ? {} : { inputs }), time: started ?? 0 });
    } else if (v.cached === true) out.push({ kind: 'vertex.cached', vertex, name, time: completed });
    else if (typeof v.error === 'string') out.push({ kind: 'vertex.error', vertex, error: v.error, time: completed });
    else out.push({ kind: 'vertex.done', vertex, time: completed });
  }
  for (const l of Array.isArray(o.logs) ? (o.logs as RawLog[]) : []) {
    if (typeof l.vertex !== 'string' || typeof l.data !== 'string') continue;
    out.push({ kind: 'log', vertex: l.vertex, stream: l.stream === 2 ? 2 : 1, data: Buffer.from(l.data, 'base64'), time: time(l.timestamp) ?? 0 });
  }
  for (const s of Array.isArray(o.statuses) ? (o.statuses as RawStatus[]) : []) {
    if (typeof s.vertex !== 'string' || typeof s.id !== 'string') continue;
    const started = time(s.started);
    const completed = time(s.completed);
    out.push({
      kind: 'status',
      vertex: s.vertex,
      id: s.id,
      ...(typeof s.name === 'string' ? { name: s.name } : {}),
      current: typeof s.current === 'number' ? s.current : 0,
      ...(typeof s.total === 'number' ? { total: s.total } : {}),
      ...(started === undefined ? {} : { started }),
      ...(completed === undefined ? {} : { completed }),
      time: time(s.timestamp) ?? 0,
    });
  }
  return out;
}

/** The decompressed bytes of a stored log, chunk by chunk; a missing or damaged file throws. */
export function logBytes(path: string): AsyncIterable<Buffer> {
  // pipeline, not pipe: a read error (or bad gzip data) reaches the reader instead of a hang.
  return pipeline(createReadStream(path), createGunzip(), () => undefined);
}

/** The lines of a stored log, read as a stream: a long log is never whole in memory. */
export async function* logLines(path: string): AsyncGenerator<string> {
  let rest = '';
  // A character split between two chunks (a step name in UTF-8) stays whole.
  const utf8 = new StringDecoder('utf8');
  for await (const chunk of logBytes(path)) {
    const text = rest + utf8.write(chunk);
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    yield* lines;
  }
  rest += utf8.end();
  if (rest !== '') yield rest;
}
