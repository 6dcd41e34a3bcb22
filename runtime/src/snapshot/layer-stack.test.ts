import { describe, expect, test } from 'vitest';
import { commonBase, diffStacks, mergeStacks, type StackLayer } from './layer-stack.js';

const L = (dir: string, snapshot = dir): StackLayer => ({ dir, owner: snapshot, snapshot, labels: {} });
const dirs = (ls: readonly StackLayer[]): string[] => ls.map((l) => l.dir);

describe('mergeStacks', () => {
  test('later stacks go on top; a shared layer is kept only at its topmost place', () => {
    const a = [L('a1', 'A'), L('base')];
    const c = [L('c1', 'C'), L('base')];
    expect(dirs(mergeStacks([a, c]))).toEqual(['c1', 'base', 'a1']);
    expect(dirs(mergeStacks([c, a]))).toEqual(['a1', 'base', 'c1']);
    // BuildKit's doc example: Merge(foo, bar) where bar = foo + rm + add
    expect(dirs(mergeStacks([[L('foo')], [L('bar'), L('rm'), L('foo')]]))).toEqual(['bar', 'rm', 'foo']);
    expect(dirs(mergeStacks([[L('bar'), L('rm'), L('foo')], [L('foo')]]))).toEqual(['foo', 'bar', 'rm']);
    expect(mergeStacks([])).toEqual([]);
  });
});

describe('commonBase', () => {
  test('the longest bottom part equal to an input or one of its ancestors', () => {
    const image = [L('i2', 'img'), L('i1', 'img-base')];
    const copied = [L('x', 'copy')];
    const merged = mergeStacks([image, copied]);
    expect(commonBase(merged, [image, copied])).toEqual({ snapshot: 'img', length: 2 });
    const a = [L('a1', 'A'), L('base', 'B')];
    const c = [L('c1', 'C'), L('base', 'B')];
    // [c1, base, a1]: no input's stack is a bottom part (base sits above a1).
    expect(commonBase(mergeStacks([a, c]), [a, c])).toBeUndefined();
    // [a1, base]: A itself.
    expect(commonBase(mergeStacks([[L('base', 'B')], a]), [[L('base', 'B')], a])).toEqual({ snapshot: 'A', length: 2 });
  });
});

describe('diffStacks', () => {
  test('the layers above a base; undefined when lower is not a base of upper', () => {
    const up = [L('u2'), L('u1'), L('b')];
    expect(dirs(diffStacks([L('b')], up) ?? [])).toEqual(['u2', 'u1']);
    expect(dirs(diffStacks([], up) ?? [])).toEqual(['u2', 'u1', 'b']);
    expect(diffStacks(up, up)).toEqual([]);
    expect(diffStacks([L('other')], up)).toBeUndefined();
    expect(diffStacks([L('x'), L('u2'), L('u1'), L('b')], up)).toBeUndefined();
  });
});
