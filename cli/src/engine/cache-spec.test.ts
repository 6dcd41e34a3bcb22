import { describe, expect, test } from 'vitest';
import { parseCacheExportSpec, parseCacheImportSpec } from './cache-spec.js';

describe('--cache-to / --cache-from (buildx CSV)', () => {
  test('export specs with buildx defaults: mode=min, gzip, OCI media types, tag latest', () => {
    expect(parseCacheExportSpec('type=local,dest=/tmp/c')).toEqual({ type: 'local', dest: '/tmp/c', tag: 'latest', mode: 'min', compression: 'gzip', ociMediaTypes: true });
    expect(parseCacheExportSpec('type=registry,ref=127.0.0.1:5000/c:1,mode=max,compression=zstd,oci-mediatypes=false')).toEqual({
      type: 'registry',
      ref: '127.0.0.1:5000/c:1',
      mode: 'max',
      compression: 'zstd',
      ociMediaTypes: false,
    });
    expect(parseCacheExportSpec('type=inline')).toEqual({ type: 'inline', mode: 'min' });
    expect(parseCacheExportSpec('type=local,dest=/c,ignore-error=true')).toMatchObject({ type: 'local', ignoreError: true });
    expect(parseCacheExportSpec('type=registry,ref=r/c:1,ignore-error=false')).not.toHaveProperty('ignoreError');
    // Attributes kiln does not know are ignored, as BuildKit's exporters ignore them.
    expect(parseCacheExportSpec('type=local,dest=/c,compression-level=3')).toEqual({ type: 'local', dest: '/c', tag: 'latest', mode: 'min', compression: 'gzip', ociMediaTypes: true });
    // A bare value is a registry reference, as buildx reads it; quoted fields keep their commas.
    expect(parseCacheExportSpec('127.0.0.1:5000/c:1')).toMatchObject({ type: 'registry', ref: '127.0.0.1:5000/c:1' });
    expect(parseCacheExportSpec('"type=local","dest=/a,b"')).toMatchObject({ type: 'local', dest: '/a,b' });
  });

  test('export specs kiln cannot honour are errors', () => {
    expect(() => parseCacheExportSpec('type=gha')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,mode=all')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,compression=lz4')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,oci-mediatypes=maybe')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
    expect(() => parseCacheExportSpec('type=local,dest=x,ignore-error=maybe')).toThrow(expect.objectContaining({ code: 'KLN0710' }));
  });

  test('import specs; unusable ones are warnings, not errors', () => {
    expect(parseCacheImportSpec('type=local,src=/c,tag=v2')).toEqual({ type: 'local', src: '/c', tag: 'v2' });
    expect(parseCacheImportSpec('type=local,src=/c,digest=sha256:abc')).toEqual({ type: 'local', src: '/c', tag: 'latest', digest: 'sha256:abc' });
    expect(parseCacheImportSpec('type=registry,ref=r/c:1')).toEqual({ type: 'registry', ref: 'r/c:1' });
    expect(parseCacheImportSpec('r/c:1')).toEqual({ type: 'registry', ref: 'r/c:1' });
    expect(parseCacheImportSpec('type=s3,bucket=b')).toEqual({ warning: '--cache-from "type=s3,bucket=b": cache type "s3" is not supported (kiln imports local and registry caches)' });
    expect(parseCacheImportSpec('type=local')).toHaveProperty('warning');
  });
});
