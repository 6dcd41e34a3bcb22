import { describe, expect, test } from 'vitest';
import { formatOciLayoutRef, isOciLayoutRef, parseOciLayoutRef } from './oci-layout-ref.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseOciLayoutRef (buildx ocilayout.Parse)', () => {
  // buildx's util/ocilayout/parse_test.go cases (the Windows drive ones aside), and paths with ':' and '@'
  test.for([
    ['oci-layout:///path/to/oci/layout', '/path/to/oci/layout', 'latest', undefined],
    ['oci-layout:///path/to/oci/layout:1.3', '/path/to/oci/layout', '1.3', undefined],
    [`oci-layout:///path/to/oci/layout@${D}`, '/path/to/oci/layout', undefined, D],
    [`oci-layout:///path/to/oci/layout:1.3@${D}`, '/path/to/oci/layout', '1.3', D],
    [`oci-layout:///path/to/oci/@/layout@${D}`, '/path/to/oci/@/layout', undefined, D],
    ['oci-layout:///path/to/oci/@/layout', '/path/to/oci/@/layout', 'latest', undefined],
    ['oci-layout:///tmp/a:b/layout', '/tmp/a:b/layout', 'latest', undefined],
    ['oci-layout:///tmp/a:b/layout:v2', '/tmp/a:b/layout', 'v2', undefined],
    [`oci-layout:///tmp/a:b/x@y/layout:v2@${D}`, '/tmp/a:b/x@y/layout', 'v2', D],
    ['oci-layout://out/lay', 'out/lay', 'latest', undefined],
    ['oci-layout://./lay:v1', './lay', 'v1', undefined],
    [`oci-layout://lay@${D}`, 'lay', undefined, D],
    // what follows the last '@' or ':' is no digest or tag: part of the path
    ['oci-layout:///tmp/lay@notadigest', '/tmp/lay@notadigest', 'latest', undefined],
    ['oci-layout:///tmp/lay:bad!tag', '/tmp/lay:bad!tag', 'latest', undefined],
  ] as const)('%s', ([s, path, tag, digest]) => {
    expect(isOciLayoutRef(s)).toBe(true);
    const r = parseOciLayoutRef(s);
    expect(r).toEqual({ path, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) });
    expect(parseOciLayoutRef(formatOciLayoutRef(r))).toEqual(r);
  });

  test('printed as buildx prints a Ref: the default tag shows', () => {
    expect(formatOciLayoutRef(parseOciLayoutRef('oci-layout://x'))).toBe('oci-layout://x:latest');
    expect(formatOciLayoutRef(parseOciLayoutRef(`oci-layout://x:1@${D}`))).toBe(`oci-layout://x:1@${D}`);
    expect(isOciLayoutRef('docker-image://x')).toBe(false);
  });

  test.for([
    ['oci-layout://', 'no layout directory'],
    ['oci-layout://:v1', 'no layout directory'],
    [`oci-layout://@${D}`, 'no layout directory'],
    [`oci-layout://x@sha256:${'a'.repeat(40)}`, 'invalid digest'],
    [`oci-layout://x@sha256:${'A'.repeat(64)}`, 'invalid digest'],
    [`oci-layout://x@sha512:${'a'.repeat(128)}`, 'invalid digest'],
  ] as const)('%s is refused (REFERENCE_INVALID)', ([s, why]) => {
    expect(() => parseOciLayoutRef(s)).toThrow(expect.objectContaining({ code: 'REFERENCE_INVALID', message: expect.stringContaining(why) as unknown }));
  });
});
