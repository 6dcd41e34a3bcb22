/**
 * The lazy op graph behind {@link State}: vertices that know how to marshal themselves
 * under marshal-time constraints, and outputs (a vertex plus an output index).
 */
import type { Digest } from '../digest.js';
import { digestOf } from '../digest.js';
import { LlbError } from '../errors.js';
import type { Input, Op } from '../op.js';
import { encodeOp } from '../pb/op-codec.js';
import { rememberEncodedOp } from '../encoded-ops.js';
import type { Platform } from '../platform.js';
import type { Constraints, MetaBuilder, SourceLocation } from './constraints.js';

/** The marshal result of one vertex. */
export interface MarshaledVertex {
  readonly digest: Digest;
  readonly bytes: Uint8Array;
  readonly op: Op;
  readonly metadata: MetaBuilder;
  /** The vertices behind `op.inputs`, index-aligned. */
  readonly inputVertices: readonly Vertex[];
  /** The op's source locations (op-level constraints only, as in Go). */
  readonly sourceLocations: readonly SourceLocation[];
}

/** Per-marshal state: the marshal-level constraints and a memo of marshaled vertices. */
export class MarshalContext {
  private readonly memo = new Map<Vertex, MarshaledVertex>();
  constructor(
    readonly constraints: Constraints,
    /** Marshal-time cap set, or undefined when none was passed (Go `c.Caps == nil`). */
    readonly caps: ReadonlySet<string> | undefined,
  ) {}

  marshal(v: Vertex): MarshaledVertex {
    let m = this.memo.get(v);
    if (!m) {
      m = v.marshal(this);
      this.memo.set(v, m);
    }
    return m;
  }

  /** Go `Output.ToInput`. */
  toInput(o: Output): { input: Input; vertex: Vertex } {
    if (o.error !== undefined) throw new LlbError('LLB_INVALID_STATE', o.error);
    const m = this.marshal(o.vertex);
    return { input: { digest: m.digest, index: o.index() }, vertex: o.vertex };
  }
}

/** A node of the graph (Go `llb.Vertex`). */
export abstract class Vertex {
  /** Builds this vertex's op under `ctx`; called once per marshal via {@link MarshalContext.marshal}. */
  abstract marshal(ctx: MarshalContext): MarshaledVertex;
  /**
   * The vertices this one reads (Go `Vertex.Inputs`), so marshal can visit them first
   * without recursion (deep graphs would overflow the stack).
   */
  abstract inputs(): readonly Vertex[];
}

/** An output of a vertex (Go `llb.Output`): the vertex, a lazily computed index, and its platform. */
export class Output {
  constructor(
    readonly vertex: Vertex,
    private readonly indexFn: () => number = () => 0,
    readonly platform: Platform | undefined = undefined,
    /** Set for outputs that cannot be used as a parent (tmpfs, no-output mounts). */
    readonly error: string | undefined = undefined,
  ) {}
  index(): number {
    return this.indexFn();
  }
}

/** Finishes a vertex: encodes the op and digests it. */
export function finishVertex(
  op: Op,
  metadata: MetaBuilder,
  inputVertices: readonly Vertex[],
  sourceLocations: readonly SourceLocation[],
): MarshaledVertex {
  const bytes = encodeOp(op);
  const digest = digestOf(bytes);
  rememberEncodedOp(bytes, op, digest);
  return { digest, bytes, op, metadata, inputVertices, sourceLocations };
}
