/**
 * Marshaling a {@link State} to a {@link Definition} (client/llb `State.Marshal`).
 */
import type { Digest } from '../digest.js';
import { digestOf } from '../digest.js';
import type { Definition, Location, Locations, Op, OpMetadata, SourceInfo } from '../op.js';
import { encodeOp } from '../pb/op-codec.js';
import { rememberEncodedOp } from '../encoded-ops.js';
import { Caps } from './caps.js';
import {
  constraintsFrom,
  emptyMeta,
  mergeOwnedMetadata,
  metaToPb,
  type ConstraintsOptions,
  type MetaBuilder,
  type SourceMap,
} from './constraints.js';
import type { State } from './state.js';
import { MarshalContext, type Vertex } from './vertex.js';

/** Marshal-level options: constraints applied to every op, plus the LLB cap set. */
export interface MarshalOptions extends ConstraintsOptions {
  /**
   * The caps the target BuildKit supports (Go `WithCaps`). When given, execs record
   * `exec.meta.setsdefaultpath` if present, or get an explicit default `PATH` if not.
   */
  readonly caps?: Iterable<string>;
}

/** @internal */
export function marshalState(st: State, opts: MarshalOptions): Definition {
  if (st.error) throw st.error;
  if (!st.output) return { def: [], metadata: new Map() };
  const ctx = new MarshalContext(constraintsFrom(opts), opts.caps === undefined ? undefined : new Set(opts.caps));
  const def: Uint8Array[] = [];
  const metadata = new Map<Digest, MetaBuilder>();
  const seenDigests = new Set<Digest>();
  const seenVertices = new Set<Vertex>();
  const locations = new Map<string, Locations>();
  const maps: SourceMap[] = [];
  const mapIndex = new Map<SourceMap, number>();

  // Marshal every reachable vertex inputs-first, iteratively, so that no vertex's
  // marshal recurses into its inputs (a long chain would overflow the stack).
  const rootVertex = st.output.vertex;
  {
    const done = new Set<Vertex>();
    const work: { v: Vertex; i: number; deps: readonly Vertex[] }[] = [{ v: rootVertex, i: 0, deps: rootVertex.inputs() }];
    while (work.length > 0) {
      const top = work[work.length - 1] as { v: Vertex; i: number; deps: readonly Vertex[] };
      if (top.i < top.deps.length) {
        const next = top.deps[top.i++] as Vertex;
        if (!done.has(next)) work.push({ v: next, i: 0, deps: next.inputs() });
        continue;
      }
      work.pop();
      if (!done.has(top.v)) {
        done.add(top.v);
        ctx.marshal(top.v);
      }
    }
  }
  // Depth-first post-order from the terminal, inputs in listed order (iterative: deep graphs).
  const stack: { v: Vertex; i: number }[] = [{ v: rootVertex, i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as { v: Vertex; i: number };
    const m = ctx.marshal(top.v);
    if (top.i < m.inputVertices.length) {
      const next = m.inputVertices[top.i++] as Vertex;
      if (!seenVertices.has(next)) stack.push({ v: next, i: 0 });
      continue;
    }
    stack.pop();
    if (seenVertices.has(top.v)) continue;
    seenVertices.add(top.v);
    // the vertex's metadata is never changed after its marshal (merges copy their first
    // argument), so the first op with a digest can keep it as is
    metadata.set(m.digest, mergeOwnedMetadata(metadata.get(m.digest) ?? emptyMeta(), m.metadata));
    if (!seenDigests.has(m.digest)) {
      seenDigests.add(m.digest);
      def.push(m.bytes);
      // Go's sourceMapCollector: every op gets an entry, empty without locations.
      const locs: Location[] = m.sourceLocations.map((l) => {
        let idx = mapIndex.get(l.sourceMap);
        if (idx === undefined) {
          idx = maps.length;
          maps.push(l.sourceMap);
          mapIndex.set(l.sourceMap, idx);
        }
        return idx ? { sourceIndex: idx, ranges: l.ranges } : { ranges: l.ranges };
      });
      locations.set(m.digest, locs.length > 0 ? { locations: locs } : {});
    }
  }

  const { input } = ctx.toInput(st.output);
  const terminal: Op = { kind: 'none', inputs: [input] };
  const tbytes = encodeOp(terminal);
  const tdigest = digestOf(tbytes);
  rememberEncodedOp(tbytes, terminal, tdigest);
  def.push(tbytes);
  const tmeta = metadata.get(tdigest) ?? emptyMeta();
  const caps = new Set<string>(tmeta.caps ?? []);
  caps.add(Caps.constraints);
  caps.add(Caps.platform);
  // forEach rather than for..of over the maps: no iterator result per entry (see encMeta in pb/exec-codec.ts)
  metadata.forEach((m) => {
    if (m.ignoreCache) caps.add(Caps.metaIgnoreCache);
    if (m.description !== undefined) caps.add(Caps.metaDescription);
    if (m.exportCache !== undefined) caps.add(Caps.metaExportCache);
  });
  metadata.set(tdigest, { ...tmeta, caps });

  const out = new Map<Digest, OpMetadata>();
  metadata.forEach((m, d) => out.set(d, metaToPb(m)));
  const infos: SourceInfo[] = maps.map((sm) => {
    const def2 = sm.options.definition ?? (sm.options.state ? marshalState(sm.options.state, opts) : undefined);
    return {
      filename: sm.filename,
      data: sm.data,
      ...(def2 ? { definition: def2 } : {}),
      ...(sm.options.language ? { language: sm.options.language } : {}),
    };
  });
  return { def, metadata: out, source: infos.length > 0 ? { locations, infos } : { locations } };
}
