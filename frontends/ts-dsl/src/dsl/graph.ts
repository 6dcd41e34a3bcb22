/** Merge and diff of states (Go `llb.Merge`, `llb.Diff`). */
import { diff as llbDiff, merge as llbMerge } from '@kiln/llb-core';
import { State } from './state.js';

/**
 * Layers the inputs in order (later wins), without copying: scratch inputs are dropped and a
 * single input is returned as is. The result inherits the first input's base image config.
 */
export function merge(states: readonly State[], opts: { name?: string } = {}): State {
  const o = opts.name === undefined ? {} : { customName: opts.name };
  return new State(async (c) => llbMerge(await Promise.all(states.map((s) => s.lower(c))), o), states[0]?.baseImage);
}

/** The changes that turn `lower` into `upper`, as a state of their own. */
export function diff(lower: State, upper: State, opts: { name?: string } = {}): State {
  const o = opts.name === undefined ? {} : { customName: opts.name };
  return new State(async (c) => llbDiff(await lower.lower(c), await upper.lower(c), o), undefined);
}
