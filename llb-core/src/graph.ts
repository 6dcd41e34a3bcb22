/**
 * Loading a Definition into a checked graph of vertices, the way BuildKit's solver
 * (`solver/llbsolver/vertex.go` loadLLB) does: every op decoded, every input present,
 * indexes in range, no cycles, the last op being the terminal whose first input is the
 * build result.
 */
import { digestOf, parseDigest, type Digest } from './digest.js';
import { LlbError } from './errors.js';
import type { Definition, Op, OpMetadata, Source } from './op.js';
import { decodeOp } from './pb/op-codec.js';

/** An edge to output `index` of `vertex`. */
export interface VertexInput {
  /** The input vertex. */
  readonly vertex: LlbVertex;
  /** Which output of it. */
  readonly index: number;
}

/** One op of a loaded definition, with its inputs resolved to vertices. */
export interface LlbVertex {
  /** The op's digest (sha256 of `bytes`). */
  readonly digest: Digest;
  /** The decoded op. */
  readonly op: Op;
  /** The exact marshaled op bytes from `Definition.def`. */
  readonly bytes: Uint8Array;
  /** Metadata for this digest, `{}` when the definition has none. */
  readonly metadata: OpMetadata;
  /** The op's inputs, resolved to vertices, in `op.inputs` order. */
  readonly inputs: readonly VertexInput[];
}

/** A validated definition. */
export interface LoadedDefinition {
  /** Every op by digest (the terminal op included). */
  readonly vertices: ReadonlyMap<Digest, LlbVertex>;
  /** Vertices reachable from the terminal, inputs before users (post-order). */
  readonly order: readonly LlbVertex[];
  /** The terminal op (last `def` entry); undefined for an empty definition. */
  readonly terminal: LlbVertex | undefined;
  /** The build result (`terminal.inputs[0]`); undefined for an empty definition. */
  readonly root: VertexInput | undefined;
  /** The definition's source map, if any. */
  readonly source: Source | undefined;
}

/** The highest input index an op's body refers to, for range checks. */
function checkIndexes(d: Digest, op: Op): void {
  const n = op.inputs.length;
  const bad = (what: string, i: number): never => {
    throw new LlbError('LLB_BAD_INPUT_INDEX', `op ${d}: ${what} refers to input ${i} but the op has ${n} inputs`);
  };
  switch (op.kind) {
    case 'exec':
      for (const m of op.exec.mounts ?? []) {
        const i = m.input ?? 0;
        if (i < -1 || i >= n) {
          // secret/ssh/tmpfs/cache mounts with input 0 and no inputs are allowed when scratch-based
          if (!(i === 0 && n === 0 && m.mountType !== undefined && m.mountType !== 0)) bad(`mount ${m.dest ?? ''}`, i);
        }
      }
      break;
    case 'file': {
      const actions = op.file.actions ?? [];
      actions.forEach((a, idx) => {
        const limit = n + idx;
        for (const [what, i] of [
          ['input', a.input ?? 0],
          ['secondaryInput', a.secondaryInput ?? 0],
        ] as const) {
          if (i < -1 || i >= limit) bad(`file action ${idx} ${what}`, i);
        }
      });
      break;
    }
    case 'merge':
      for (const m of op.merge.inputs ?? []) if ((m.input ?? 0) < 0 || (m.input ?? 0) >= n) bad('merge input', m.input ?? 0);
      break;
    case 'diff':
      for (const [what, s] of [
        ['lower', op.diff.lower],
        ['upper', op.diff.upper],
      ] as const) {
        const i = s?.input ?? 0;
        if (s && (i < -1 || i >= n)) bad(`diff ${what}`, i);
      }
      break;
    case 'build': {
      const b = op.build.builder ?? 0;
      if (b < -1 || b >= n) bad('builder', b);
      for (const [, v] of op.build.inputs ?? new Map()) if ((v.input ?? 0) < 0 || (v.input ?? 0) >= n) bad('build input', v.input ?? 0);
      break;
    }
    case 'source':
    case 'none':
      break;
  }
}

/**
 * Links `ops` (by digest) into vertices reachable from `rootDigest`, in post-order.
 * Throws `LLB_MISSING_INPUT` for a dangling input and `LLB_CYCLE` for a cycle.
 */
export function linkOps(
  ops: ReadonlyMap<Digest, { op: Op; bytes: Uint8Array }>,
  rootDigest: Digest,
  metadata: ReadonlyMap<Digest, OpMetadata> = new Map(),
): { vertices: Map<Digest, LlbVertex>; order: LlbVertex[] } {
  const vertices = new Map<Digest, LlbVertex>();
  const order: LlbVertex[] = [];
  const onStack = new Set<Digest>();
  // Iterative DFS: frames of (digest, next input position).
  const stack: { d: Digest; i: number }[] = [{ d: rootDigest, i: 0 }];
  if (!ops.has(rootDigest)) throw new LlbError('LLB_MISSING_INPUT', `op ${rootDigest} is not in the definition`);
  onStack.add(rootDigest);
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as { d: Digest; i: number };
    const entry = ops.get(top.d) as { op: Op; bytes: Uint8Array };
    const inputs = entry.op.inputs;
    if (top.i < inputs.length) {
      const inp = inputs[top.i++] as (typeof inputs)[number];
      if (vertices.has(inp.digest)) continue;
      if (onStack.has(inp.digest)) {
        throw new LlbError('LLB_CYCLE', `cycle in LLB graph: op ${top.d} depends on ${inp.digest}, which depends on it`);
      }
      if (!ops.has(inp.digest)) {
        throw new LlbError('LLB_MISSING_INPUT', `op ${top.d} names input ${inp.digest}, which is not in the definition`, {
          hint: 'the definition is incomplete; re-marshal it from its source',
        });
      }
      onStack.add(inp.digest);
      stack.push({ d: inp.digest, i: 0 });
      continue;
    }
    stack.pop();
    onStack.delete(top.d);
    const v: LlbVertex = {
      digest: top.d,
      op: entry.op,
      bytes: entry.bytes,
      metadata: metadata.get(top.d) ?? {},
      inputs: inputs.map((inp) => {
        if (inp.index < 0) throw new LlbError('LLB_BAD_INPUT_INDEX', `op ${top.d}: negative output index ${inp.index}`);
        return { vertex: vertices.get(inp.digest) as LlbVertex, index: inp.index };
      }),
    };
    vertices.set(top.d, v);
    order.push(v);
  }
  return { vertices, order };
}

/**
 * Decodes and checks every op of `def` and links them into a graph. An empty `def`
 * (an empty build) yields no vertices. Throws {@link LlbError}: `LLB_DECODE`/
 * `LLB_TRUNCATED` for bad op bytes, `LLB_DIGEST` for malformed input digests,
 * `LLB_MISSING_INPUT`, `LLB_BAD_INPUT_INDEX`, `LLB_CYCLE`, or `LLB_EMPTY` when the
 * terminal op has no input.
 */
export function loadDefinition(def: Definition): LoadedDefinition {
  if (def.def.length === 0) {
    return { vertices: new Map(), order: [], terminal: undefined, root: undefined, source: def.source };
  }
  const ops = new Map<Digest, { op: Op; bytes: Uint8Array }>();
  let last: Digest | undefined;
  for (const bytes of def.def) {
    const d = digestOf(bytes);
    const op = decodeOp(bytes);
    for (const inp of op.inputs) parseDigest(inp.digest);
    checkIndexes(d, op);
    ops.set(d, { op, bytes });
    last = d;
  }
  const terminalDigest = last as Digest;
  const terminalOp = (ops.get(terminalDigest) as { op: Op }).op;
  if (terminalOp.inputs.length === 0) {
    throw new LlbError('LLB_EMPTY', 'invalid LLB: the last op has no inputs (expected the terminal op)');
  }
  const { vertices, order } = linkOps(ops, terminalDigest, def.metadata);
  // Ops not reachable from the terminal are still checked for dangling inputs and cycles.
  for (const d of ops.keys()) {
    if (!vertices.has(d)) {
      const extra = linkOps(ops, d, def.metadata);
      for (const [k, v] of extra.vertices) if (!vertices.has(k)) vertices.set(k, v);
    }
  }
  const terminal = vertices.get(terminalDigest) as LlbVertex;
  return { vertices, order, terminal, root: terminal.inputs[0], source: def.source };
}

/** Checks `def` like {@link loadDefinition} and discards the graph. */
export function validateDefinition(def: Definition): void {
  loadDefinition(def);
}
