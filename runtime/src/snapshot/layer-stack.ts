/**
 * Layer stacks of overlay snapshots, for merges and diffs that stack existing layer directories
 * instead of copying files (BuildKit's MergeOp/DiffOp on an overlay snapshotter).
 */

/** One layer directory of a committed snapshot's stack. */
export interface StackLayer {
  /** Layer directory, relative to the snapshots root. */
  readonly dir: string;
  /** The snapshot that owns `dir` (created it); it must outlive every snapshot stacking `dir`. */
  readonly owner: string;
  /** The snapshot of the walk whose own layer this is (a candidate base: its stack is this layer and everything below). */
  readonly snapshot: string;
  /** Labels of that snapshot (e.g. `kiln.diffID`, so a re-stacked layer reuses its blob). */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * The layers of merging `stacks` (each top-first) in order, later stacks on top, as one top-first
 * list: the result looks like applying every input's layers on top of one another (BuildKit's
 * MergeOp), so a later input's files win and its whiteouts and opaque directories hide what
 * earlier inputs have. A layer that appears more than once (a shared base) is kept only at its
 * topmost position: the lower copy is entirely shadowed by the upper one, and overlayfs refuses
 * the same lowerdir twice.
 */
export function mergeStacks(stacks: readonly (readonly StackLayer[])[]): StackLayer[] {
  const seen = new Set<string>();
  const out: StackLayer[] = [];
  for (let i = stacks.length - 1; i >= 0; i--) {
    for (const l of stacks[i] ?? []) {
      if (seen.has(l.dir)) continue;
      seen.add(l.dir);
      out.push(l);
    }
  }
  return out;
}

/**
 * The longest bottom part of `merged` that is exactly the stack of an existing snapshot in one
 * of `stacks` (an input or one of its ancestors), so the merge result stacks new snapshots only
 * above it. Returns that snapshot and the number of layers it covers, or undefined.
 */
export function commonBase(merged: readonly StackLayer[], stacks: readonly (readonly StackLayer[])[]): { snapshot: string; length: number } | undefined {
  let best: { snapshot: string; length: number } | undefined;
  for (const stack of stacks) {
    for (let k = 0; k < stack.length; k++) {
      const len = stack.length - k;
      if (best !== undefined && len <= best.length) break;
      if (len > merged.length) continue;
      const off = merged.length - len;
      let same = true;
      for (let j = 0; j < len; j++) {
        if (merged[off + j]?.dir !== stack[k + j]?.dir) {
          same = false;
          break;
        }
      }
      if (same) {
        best = { snapshot: (stack[k] as StackLayer).snapshot, length: len };
        break;
      }
    }
  }
  return best;
}

/**
 * The layers `upper` adds on top of `lower` (both top-first): the top of `upper` above a bottom
 * part equal to `lower`, or undefined when `lower` is not the base of `upper`.
 */
export function diffStacks(lower: readonly StackLayer[], upper: readonly StackLayer[]): StackLayer[] | undefined {
  if (lower.length > upper.length) return undefined;
  const off = upper.length - lower.length;
  for (let j = 0; j < lower.length; j++) if (upper[off + j]?.dir !== lower[j]?.dir) return undefined;
  return upper.slice(0, off);
}
