import { describe, expect, test } from 'vitest';
import { parseOutputSpec } from './spec.js';

describe('parseOutputSpec (buildx --output)', () => {
  test('oci defaults: tarball, OCI media types, gzip', () => {
    expect(parseOutputSpec('type=oci,dest=out.tar')).toEqual({ type: 'oci', dest: 'out.tar', tar: true, names: [], compression: 'gzip', ociMediaTypes: true, forceCompression: false });
  });
  test('docker defaults to Docker media types; names split on commas', () => {
    expect(parseOutputSpec('type=docker,dest=i.tar,name=a,b:2')).toMatchObject({ type: 'docker', names: ['a', 'b:2'], ociMediaTypes: false });
  });
  test('image with several names, push, insecure, uncompressed; quoted CSV', () => {
    expect(parseOutputSpec('type=image,"name=r/a:1,r/b:1",push=true,compression=uncompressed,registry.insecure=true')).toMatchObject({
      type: 'image',
      names: ['r/a:1', 'r/b:1'],
      push: true,
      insecure: true,
      compression: 'uncompressed',
    });
    expect(parseOutputSpec('type=image,name=a,b,push=true')).toMatchObject({ names: ['a', 'b'], push: true });
    expect(parseOutputSpec('type=registry,name=r/a')).toMatchObject({ type: 'image', push: true });
    expect(parseOutputSpec('type=oci,dest=d,tar=false,oci-mediatypes=false')).toMatchObject({ tar: false, ociMediaTypes: false });
    expect(parseOutputSpec('type=docker,dest=d,compression=zstd')).toMatchObject({ compression: 'zstd', ociMediaTypes: true });
  });
  test('local / tar / bare path', () => {
    expect(parseOutputSpec('type=local,dest=out')).toEqual({ type: 'local', dest: 'out' });
    expect(parseOutputSpec('type=tar,dest=fs.tar')).toEqual({ type: 'tar', dest: 'fs.tar' });
    expect(parseOutputSpec('./out')).toEqual({ type: 'local', dest: './out' });
  });
  test.for([
    ['type=oci', 'needs dest'],
    ['type=image,push=true', 'needs name'],
    ['type=foo,dest=x', 'unknown exporter type'],
    ['type=oci,dest=x,compression=lz4', 'compression'],
    ['type=oci,dest=-', 'stdout'],
    ['type=oci,dest=x,tar=maybe', 'true or false'],
    ['dest=x', 'missing type'],
  ])('%s is rejected (%s)', ([spec, msg]) => {
    expect(() => parseOutputSpec(spec as string)).toThrow(expect.objectContaining({ code: 'OUTPUT_SPEC_INVALID', message: expect.stringContaining(msg as string) }));
  });
});

describe('parseOutputSpec with -t names (buildx sets the image outputs\' name= to the tags)', () => {
  test('type=registry and type=image take the tags as their names', () => {
    expect(parseOutputSpec('type=registry', { names: ['localhost:5000/app:1'] })).toMatchObject({ type: 'image', push: true, names: ['localhost:5000/app:1'] });
    expect(parseOutputSpec('type=image,push=true', { names: ['a', 'b'] })).toMatchObject({ names: ['a', 'b'] });
    expect(parseOutputSpec('type=oci,dest=o.tar', { names: ['a'] })).toMatchObject({ names: ['a'] });
  });
  // buildx's toSolveOpt: `opt.Exports[i].Attrs["name"] = strings.Join(tags, ",")` for image, oci
  // and docker outputs whenever -t is given; kiln kept name= and dropped the tags.
  test('-t replaces a name= given; without -t name= stays; local and tar outputs have no names', () => {
    expect(parseOutputSpec('type=image,name=x', { names: ['a', 'b'] })).toMatchObject({ names: ['a', 'b'] });
    expect(parseOutputSpec('type=docker,dest=i.tar,name=x', { names: ['a'] })).toMatchObject({ names: ['a'] });
    expect(parseOutputSpec('type=image,name=x', { names: [] })).toMatchObject({ names: ['x'] });
    expect(parseOutputSpec('type=local,dest=d', { names: ['a'] })).toEqual({ type: 'local', dest: 'd' });
  });
  test('without either, the refusal says both ways to name it', () => {
    expect(() => parseOutputSpec('type=registry', { names: [] })).toThrow(expect.objectContaining({ message: expect.stringContaining('needs name'), hint: expect.stringContaining('-t') }));
  });
});
