/**
 * Merge and diff ops (client/llb `merge.go`, `diff.go`). Neither carries a platform.
 */
import type { Input, MergeOp, Op } from '../op.js';
import { Caps } from './caps.js';
import { addCap, cloneConstraints, constraintsFrom, marshalConstraints, type Constraints, type ConstraintsOptions } from './constraints.js';
import { scratch, type State } from './state.js';
import { finishVertex, Output, Vertex, type MarshalContext, type MarshaledVertex } from './vertex.js';

class MergeVertex extends Vertex {
  readonly output: Output;
  constructor(
    private readonly states: readonly State[],
    private readonly constraints: Constraints,
  ) {
    super();
    this.output = new Output(this, () => 0, undefined);
  }
  inputs(): readonly Vertex[] {
    return this.states.flatMap((s) => (s.output ? [s.output.vertex] : []));
  }

  marshal(ctx: MarshalContext): MarshaledVertex {
    const mc = marshalConstraints(ctx.constraints, cloneConstraints(this.constraints));
    const inputs: Input[] = [];
    const inputVertices: Vertex[] = [];
    const merge: { input: number }[] = [];
    for (const s of this.states) {
      if (s.error) throw s.error;
      merge.push({ input: inputs.length });
      const { input, vertex } = ctx.toInput(s.output as Output);
      inputs.push(input);
      inputVertices.push(vertex);
    }
    const mergeOp: MergeOp = { inputs: merge };
    const op: Op = {
      kind: 'merge',
      inputs,
      merge: mergeOp,
      constraints: mc.workerConstraints.length > 0 ? { filter: mc.workerConstraints } : {},
    };
    return finishVertex(op, mc.metadata, inputVertices, this.constraints.sourceLocations);
  }
}

/**
 * Merges states (Go `llb.Merge`): scratch inputs are dropped, a single remaining input
 * is returned as is, no input gives scratch; repeated inputs are kept. The result keeps
 * the first input's values.
 */
export function merge(states: readonly State[], opts?: ConstraintsOptions): State {
  const filtered = states.filter((s) => !s.isScratch || s.error);
  if (filtered.length === 0) return scratch();
  if (filtered.length === 1) return filtered[0] as State;
  const c = constraintsFrom(opts);
  addCap(c, Caps.mergeOp);
  return (filtered[0] as State).withOutput(new MergeVertex(filtered, c).output);
}

class DiffVertex extends Vertex {
  readonly output: Output;
  constructor(
    private readonly lower: State,
    private readonly upper: State,
    private readonly constraints: Constraints,
  ) {
    super();
    this.output = new Output(this, () => 0, undefined);
  }
  inputs(): readonly Vertex[] {
    return [this.lower, this.upper].flatMap((s) => (s.output ? [s.output.vertex] : []));
  }

  marshal(ctx: MarshalContext): MarshaledVertex {
    const mc = marshalConstraints(ctx.constraints, cloneConstraints(this.constraints));
    const inputs: Input[] = [];
    const inputVertices: Vertex[] = [];
    const side = (s: State): { input: number } => {
      if (s.error) throw s.error;
      if (!s.output) return { input: -1 };
      const { input, vertex } = ctx.toInput(s.output);
      inputs.push(input);
      inputVertices.push(vertex);
      return { input: inputs.length - 1 };
    };
    const lower = side(this.lower);
    const upper = side(this.upper);
    const op: Op = {
      kind: 'diff',
      inputs,
      diff: { lower, upper },
      constraints: mc.workerConstraints.length > 0 ? { filter: mc.workerConstraints } : {},
    };
    return finishVertex(op, mc.metadata, inputVertices, this.constraints.sourceLocations);
  }
}

/**
 * The changes from `lower` to `upper` (Go `llb.Diff`). A diff from scratch is `upper`
 * itself; scratch to scratch is scratch. The result keeps `lower`'s values.
 */
export function diff(lower: State, upper: State, opts?: ConstraintsOptions): State {
  if (lower.isScratch && !lower.error) return upper.isScratch ? scratch() : upper;
  const c = constraintsFrom(opts);
  addCap(c, Caps.diffOp);
  return lower.withOutput(new DiffVertex(lower, upper, c).output);
}
