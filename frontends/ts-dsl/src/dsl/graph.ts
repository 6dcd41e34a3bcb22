/** Merge and diff of states (Go `llb.Merge`, `llb.Diff`). */
import { diff as llbDiff, merge as llbMerge } from '@kiln/llb-core';
import { State } from './state.js';
import { checkArg, checkOptions, str } from './options.js';

/**
 * Layers the inputs in order (later wins), without copying: scratch inputs are dropped and a
 * single input is returned as is. The result inherits the first input's base image config.
 */
export function merge(states: readonly State[], opts: { name?: string } = {}): State {
  checkArg('merge', 'the states', states, { what: 'a State[]', ok: (v) => Array.isArray(v) && v.every((s) => s instanceof State), hint: 'merge([a, b, c]): one list of States' });
  checkOptions('merge', opts, { name: str });
  const o = opts.name === undefined ? {} : { customName: opts.name };
  return new State(async (c) => llbMerge(await Promise.all(states.map((s) => s.lower(c))), o), states[0]?.baseImage);
}

/** The changes that turn `lower` into `upper`, as a state of their own. */
export function diff(lower: State, upper: State, opts: { name?: string } = {}): State {
  const st = { what: 'a State', ok: (v: unknown) => v instanceof State, hint: 'diff(base, built): the changes from base to built' };
  checkArg('diff', 'the lower state', lower, st);
  checkArg('diff', 'the upper state', upper, st);
  checkOptions('diff', opts, { name: str });
  const o = opts.name === undefined ? {} : { customName: opts.name };
  return new State(async (c) => llbDiff(await lower.lower(c), await upper.lower(c), o), undefined);
}
