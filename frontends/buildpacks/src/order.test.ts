import { describe, expect, test } from 'vitest';
import type { BuildpackDescriptor, Order } from './descriptors.js';
import { lookupIn, resolveOrder } from './order.js';

const d = (id: string, version = '1.0.0', order?: Order): BuildpackDescriptor => ({ api: '0.10', id, version, clearEnv: false, targets: [], ...(order === undefined ? {} : { order }) });
const e = (id: string, optional = false, version?: string) => ({ id, optional, ...(version === undefined ? {} : { version }) });
const show = (groups: { id: string; optional: boolean }[][]): string[] => groups.map((g) => g.map((x) => `${x.id}${x.optional ? '?' : ''}`).join(','));

describe('resolveOrder', () => {
  const bps = [
    d('A'),
    d('B'),
    d('C'),
    d('D'),
    d('A', '2.0.0'),
    d('comp', '1.0.0', [[e('A'), e('B')], [e('C')]]),
    d('outer', '1.0.0', [[e('comp'), e('D')]]),
    d('loop', '1.0.0', [[e('loop')]]),
  ];
  const lookup = lookupIn(bps);

  test('plain groups in order, optional flags kept', () => {
    expect(show(resolveOrder({ order: [[e('A'), e('B', true)], [e('C')]] }, lookup))).toEqual(['A,B?', 'C']);
  });
  test('a composite expands depth-first, left to right, with the rest of the group', () => {
    expect(show(resolveOrder({ order: [[e('D'), e('comp'), e('C', true)]] }, lookup))).toEqual(['D,A,B,C?', 'D,C']);
  });
  test('nested composites', () => {
    expect(show(resolveOrder({ order: [[e('outer')]] }, lookup))).toEqual(['A,B,D', 'C,D']);
  });
  test('an optional composite adds a copy of the group without it, right after', () => {
    expect(show(resolveOrder({ order: [[e('comp', true), e('D')], [e('B')]] }, lookup))).toEqual(['A,B,D', 'C,D', 'D', 'B']);
  });
  test('two composites: combinations in order', () => {
    const l = lookupIn([...bps, d('x', '1', [[e('A')], [e('B')]]), d('y', '1', [[e('C')], [e('D')]])]);
    expect(show(resolveOrder({ order: [[e('x'), e('y')]] }, l))).toEqual(['A,C', 'A,D', 'B,C', 'B,D']);
  });
  test('versions: exact, else the highest', () => {
    expect(resolveOrder({ order: [[e('A', false, '1.0.0')], [e('A')]] }, lookup).map((g) => g[0]?.version)).toEqual(['1.0.0', '2.0.0']);
  });
  test('pre and post wrap every group, skipping ids already there', () => {
    expect(show(resolveOrder({ order: [[e('A')], [e('B')]], pre: [e('B')], post: [e('D')] }, lookup))).toEqual(['B,A,D', 'B,D']);
  });
  test('a missing buildpack is KLN0902 naming it and the versions there are', () => {
    expect(() => resolveOrder({ order: [[e('nope')]] }, lookup)).toThrow(expect.objectContaining({ code: 'KLN0902', message: expect.stringContaining('nope') }));
    expect(() => resolveOrder({ order: [[e('A', false, '9')]] }, lookup)).toThrow(expect.objectContaining({ code: 'KLN0902', message: expect.stringContaining('1.0.0, 2.0.0') }));
    // typo tour 4: a near id, and id@version written into the id
    const kt = lookupIn([d('kt/httpd', '0.0.1'), d('kt/static-site', '0.0.1')]);
    expect(() => resolveOrder({ order: [[e('kt/htpd')]] }, kt)).toThrow(expect.objectContaining({ message: 'buildpack kt/htpd is not in the builder (did you mean kt/httpd?)' }));
    expect(() => resolveOrder({ order: [[e('kt/httpd@0.0.1')]] }, kt)).toThrow(expect.objectContaining({ message: 'buildpack kt/httpd@0.0.1 is not in the builder (write id = "kt/httpd" and version = "0.0.1")' }));
  });
  test('image extensions: each group behind every extension group, then alone; composites expand inside', () => {
    const l = lookupIn([...bps, { ...d('X'), extension: { detect: true, generate: true } }, { ...d('Y'), extension: { detect: false, generate: false } }]);
    const x = (id: string) => ({ id, optional: false, extension: true });
    const groups = resolveOrder({ order: [[e('comp')], [e('D')]], extensions: [[x('X'), x('Y')], [x('Y')]] }, l);
    expect(show(groups)).toEqual(['X?,Y?,A,B', 'X?,Y?,C', 'Y?,A,B', 'Y?,C', 'A,B', 'C', 'X?,Y?,D', 'Y?,D', 'D']);
    // every extension entry is optional and marked, and resolves to the extension descriptor
    expect(groups[0]?.slice(0, 2).map((g) => [g.extension, g.optional, g.descriptor.extension !== undefined])).toEqual([[true, true, true], [true, true, true]]);
  });
  test('an extension and a buildpack of the same id are different lookups; a missing extension is KLN0902 saying so', () => {
    const l = lookupIn([...bps, { ...d('A', '5.0.0'), extension: { detect: true, generate: true } }]);
    const groups = resolveOrder({ order: [[e('A')]], extensions: [[{ id: 'A', optional: true, extension: true }]] }, l);
    expect(groups.map((g) => g.map((x) => `${x.extension === true ? 'ext:' : ''}${x.id}@${x.version}`))).toEqual([['ext:A@5.0.0', 'A@2.0.0'], ['A@2.0.0']]);
    expect(() => resolveOrder({ order: [[e('A')]], extensions: [[{ id: 'nope', optional: true, extension: true }]] }, l)).toThrow(
      expect.objectContaining({ code: 'KLN0902', message: expect.stringContaining('image extension nope') }),
    );
  });
  test('a composite that includes itself is KLN0902', () => {
    expect(() => resolveOrder({ order: [[e('loop')]] }, lookup)).toThrow(expect.objectContaining({ code: 'KLN0902' }));
  });
});
