/** The nested-build op (client/llb/llbbuild): build the LLB definition file of a state. */
import type { Op } from '../op.js';
import { Attr, LLB_DEFINITION_INPUT } from './attrs.js';
import { Caps } from './caps.js';
import { addCap, cloneConstraints, constraintsFrom, marshalConstraints, type Constraints, type ConstraintsOptions } from './constraints.js';
import type { State } from './state.js';
import { finishVertex, Output, Vertex, type MarshalContext, type MarshaledVertex } from './vertex.js';
import { LlbError } from '../errors.js';

/** Options of {@link State.build}. */
export interface BuildOptions extends ConstraintsOptions {
  /** Path of the marshaled definition inside the state (`llbbuild.filename`). */
  readonly filename?: string;
}

class BuildVertex extends Vertex {
  readonly output: Output;
  constructor(
    private readonly source: State,
    private readonly filename: string | undefined,
    private readonly constraints: Constraints,
  ) {
    super();
    this.output = new Output(this, () => 0, undefined);
  }
  inputs(): readonly Vertex[] {
    return this.source.output ? [this.source.output.vertex] : [];
  }

  marshal(ctx: MarshalContext): MarshaledVertex {
    if (this.source.error) throw this.source.error;
    if (!this.source.output) throw new LlbError('LLB_INVALID_STATE', 'build: the definition source cannot be scratch');
    const c = cloneConstraints(this.constraints);
    addCap(c, Caps.buildOpLLBFileName);
    const mc = marshalConstraints(ctx.constraints, c);
    const { input, vertex } = ctx.toInput(this.source.output);
    const attrs = new Map<string, string>();
    if (this.filename) attrs.set(Attr.llbDefinitionFilename, this.filename);
    const op: Op = {
      kind: 'build',
      inputs: [input],
      build: { builder: -1, inputs: new Map([[LLB_DEFINITION_INPUT, { input: 0 }]]), attrs },
      platform: mc.platform,
      constraints: mc.workerConstraints.length > 0 ? { filter: mc.workerConstraints } : {},
    };
    return finishVertex(op, mc.metadata, [vertex], c.sourceLocations);
  }
}

/** @internal Builds the BuildOp output for {@link State.build}. */
export function createBuildOp(state: State, opts: BuildOptions): Output {
  return new BuildVertex(state, opts.filename, constraintsFrom(opts)).output;
}
