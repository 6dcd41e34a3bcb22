/**
 * Turning a marshaled Definition back into a {@link State} (Go `llb.NewDefinitionOp`),
 * so a graph produced elsewhere (another frontend, a gateway client) can be extended
 * and re-marshaled. The existing ops keep their exact bytes and metadata.
 */
import type { Definition, Op, OpMetadata } from '../op.js';
import type { Digest } from '../digest.js';
import { loadDefinition } from '../graph.js';
import { platformFromPb } from '../platform.js';
import { emptyMeta, type MetaBuilder } from './constraints.js';
import { State, scratch } from './state.js';
import { Output, Vertex, type MarshaledVertex } from './vertex.js';

function metaFromPb(m: OpMetadata): MetaBuilder {
  const out = emptyMeta();
  if (m.ignoreCache) out.ignoreCache = true;
  if (m.description) out.description = new Map(m.description);
  if (m.exportCache) out.exportCache = { value: m.exportCache.value === true };
  if (m.caps) out.caps = new Set([...m.caps].filter(([, v]) => v).map(([k]) => k));
  if (m.progressGroup) out.progressGroup = m.progressGroup;
  return out;
}

class DefinitionVertex extends Vertex {
  private readonly result: MarshaledVertex;
  private readonly deps: readonly DefinitionVertex[];
  constructor(digest: Digest, bytes: Uint8Array, op: Op, metadata: OpMetadata, inputs: readonly DefinitionVertex[]) {
    super();
    this.deps = inputs;
    this.result = { digest, bytes, op, metadata: metaFromPb(metadata), inputVertices: inputs, sourceLocations: [] };
  }
  inputs(): readonly Vertex[] {
    return this.deps;
  }
  marshal(): MarshaledVertex {
    return this.result;
  }
}

/**
 * A State for the result of `def` (its terminal op's input). The definition is
 * validated first ({@link loadDefinition}); an empty definition gives scratch. Source
 * maps of `def` are not carried over.
 */
export function fromDefinition(def: Definition): State {
  const g = loadDefinition(def);
  if (!g.root) return scratch();
  const vertices = new Map<Digest, DefinitionVertex>();
  for (const v of g.order) {
    if (v.op.kind === 'none' && v === g.terminal) continue;
    const inputs = v.inputs.map((i) => vertices.get(i.vertex.digest) as DefinitionVertex);
    vertices.set(v.digest, new DefinitionVertex(v.digest, v.bytes, v.op, v.metadata, inputs));
  }
  const root = g.root;
  const rootPlatform = root.vertex.op.platform;
  const output = new Output(
    vertices.get(root.vertex.digest) as DefinitionVertex,
    () => root.index,
    rootPlatform ? platformFromPb(rootPlatform) : undefined,
  );
  return State.fromOutput(output);
}
