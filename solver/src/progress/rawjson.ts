import type { ProgressEvent } from './events.js';
import type { ProgressOutput, ProgressRenderer } from './output.js';

/**
 * `--progress=rawjson`: one JSON object per line in the shape of BuildKit's client.SolveStatus
 * (`{"vertexes":[…]}`, `{"statuses":[…]}`, `{"logs":[…]}`) as buildctl prints it; log `data`
 * is base64 like Go's encoding of []byte, and times are RFC 3339 strings.
 */
export class RawJsonRenderer implements ProgressRenderer {
  readonly #out: ProgressOutput;
  readonly #vertices = new Map<string, { name: string; started?: string; inputs?: readonly string[] }>();

  constructor(out: ProgressOutput) {
    this.#out = out;
  }

  #emit(obj: unknown): void {
    this.#out.write(`${JSON.stringify(obj)}\n`);
  }

  handle(ev: ProgressEvent): void {
    const iso = new Date(ev.time).toISOString();
    switch (ev.kind) {
      case 'vertex.started': {
        const v = { name: ev.name, started: iso, ...(ev.inputs === undefined ? {} : { inputs: ev.inputs }) };
        this.#vertices.set(ev.vertex, v);
        this.#emit({ vertexes: [{ digest: ev.vertex, ...(v.inputs === undefined ? {} : { inputs: v.inputs }), name: ev.name, started: iso }] });
        return;
      }
      case 'vertex.cached': {
        const v = this.#vertices.get(ev.vertex);
        this.#emit({ vertexes: [{ digest: ev.vertex, name: ev.name, started: v?.started ?? iso, completed: iso, cached: true }] });
        return;
      }
      case 'vertex.done':
      case 'vertex.error': {
        const v = this.#vertices.get(ev.vertex);
        this.#emit({
          vertexes: [
            {
              digest: ev.vertex,
              name: v?.name ?? ev.vertex,
              started: v?.started ?? iso,
              completed: iso,
              ...(ev.kind === 'vertex.error' ? { error: ev.error } : {}),
            },
          ],
        });
        return;
      }
      case 'log':
        this.#emit({ logs: [{ vertex: ev.vertex, stream: ev.stream, data: Buffer.from(ev.data.buffer, ev.data.byteOffset, ev.data.byteLength).toString('base64'), timestamp: iso }] });
        return;
      case 'status':
        this.#emit({
          statuses: [
            {
              id: ev.id,
              vertex: ev.vertex,
              ...(ev.name === undefined ? {} : { name: ev.name }),
              ...(ev.total === undefined ? {} : { total: ev.total }),
              current: ev.current,
              timestamp: iso,
              ...(ev.started === undefined ? {} : { started: new Date(ev.started).toISOString() }),
              ...(ev.completed === undefined ? {} : { completed: new Date(ev.completed).toISOString() }),
            },
          ],
        });
        return;
      default: {
        const never: never = ev;
        return never;
      }
    }
  }

  finish(): void {
    // Every event was written as it came; nothing is buffered.
  }
}
