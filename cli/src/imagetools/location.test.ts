import { describe, expect, test } from 'vitest';
import type { Digest } from '@kiln/runtime';
import { locationName, parseLayoutLocation, parseLocation, repositoryKey, withDigest } from './location.js';

const D = `sha256:${'a'.repeat(64)}` as Digest;

describe('parseLayoutLocation', () => {
  // The parse itself is the runtime's (runtime/src/image/oci-layout-ref.test.ts).
  test('a relative path is resolved against the caller cwd and printed as given', () => {
    const l = parseLayoutLocation('oci-layout://out/lay:v2', '/home/u');
    expect(l.dir).toBe('/home/u/out/lay');
    expect(locationName(l)).toBe('oci-layout://out/lay:v2');
    expect(locationName(withDigest(l, D))).toBe(`oci-layout://out/lay@${D}`);
    expect(repositoryKey(l)).toBe(repositoryKey(parseLayoutLocation('oci-layout:///home/u/out/lay:other', '/')));
  });

  test('a registry reference: names keep the tag next to a digest (buildx reference.WithDigest)', () => {
    const r = parseLocation('localhost:5000/app:1', '/');
    expect(locationName(r)).toBe('localhost:5000/app:1');
    expect(locationName(withDigest(r, D))).toBe(`localhost:5000/app:1@${D}`);
    expect(repositoryKey(r)).not.toBe(repositoryKey(parseLayoutLocation('oci-layout://localhost:5000/app', '/')));
  });

  test('a registry reference that does not parse says why (a layout one slash short is no host)', () => {
    expect(() => parseLocation('oci-layout:/tmp/lay', '/')).toThrow('invalid reference "oci-layout:/tmp/lay": bad registry host "oci-layout:" (a port is digits; a scheme takes two slashes: oci-layout://tmp/lay)');
    expect(() => parseLocation('Bad/Ref:x', '/')).toThrow('invalid reference "Bad/Ref:x": repository names must be lowercase');
  });

  test.for(['oci-layout://', 'oci-layout://:v1', `oci-layout://x@sha256:${'a'.repeat(40)}`])('%s is refused with KLN0860', (s) => {
    expect(() => parseLayoutLocation(s, '/')).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  });
});
