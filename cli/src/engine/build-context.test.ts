import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseBuildContext, resolveBuildContext } from './session.js';

const D = `sha256:${'b'.repeat(64)}`;

describe('parseBuildContext: --build-context NAME=oci-layout://PATH[:TAG][@DIGEST] (the runtime parser, as imagetools)', () => {
  test.for([
    ['base=oci-layout:///abs/lay', '/abs/lay', 'latest'],
    ['base=oci-layout://rel/lay', 'rel/lay', 'latest'],
    ['base=oci-layout://rel/lay:v1', 'rel/lay', 'v1'],
    [`base=oci-layout:///abs/lay@${D}`, '/abs/lay', D],
    // tag and digest: the digest picks the image (buildx sends NAME:TAG@DIGEST; BuildKit reads the digest)
    [`base=oci-layout:///abs/lay:v1@${D}`, '/abs/lay', D],
    // a ':' or '@' in a directory name stays in the path
    ['base=oci-layout:///tmp/a:b/lay', '/tmp/a:b/lay', 'latest'],
    ['base=oci-layout:///tmp/a:b/lay:v2', '/tmp/a:b/lay', 'v2'],
    ['base=oci-layout:///tmp/u@host/lay', '/tmp/u@host/lay', 'latest'],
    [`base=oci-layout:///tmp/u@host/lay:v2@${D}`, '/tmp/u@host/lay', D],
    // the name may hold '=' only before the first one: the value keeps the rest
    ['example.invalid/fe:1=oci-layout://lay:fe', 'lay', 'fe'],
  ] as const)('%s', ([value, path, ref]) => {
    const c = parseBuildContext(value);
    expect(c).toEqual({ kind: 'oci-layout', name: value.slice(0, value.indexOf('=')), path, ref });
  });

  test.for([
    ['base=oci-layout://', 'no layout directory given'],
    [`base=oci-layout://@${D}`, 'no layout directory given'],
    [`base=oci-layout://lay@sha256:${'b'.repeat(40)}`, 'invalid digest'],
    [`base=oci-layout://lay@sha512:${'b'.repeat(128)}`, 'invalid digest'],
  ] as const)('%s is refused with KLN0702 naming the flag', ([value, why]) => {
    expect(() => parseBuildContext(value)).toThrow(expect.objectContaining({ code: 'KLN0702', message: expect.stringMatching(new RegExp(`^invalid --build-context ".*": ${why}`)) as unknown }));
  });

  test('a bad digest is named once, with what a digest is', () => {
    const d = `sha256:${'b'.repeat(40)}`;
    expect(() => parseBuildContext(`base=oci-layout://lay@${d}`)).toThrow(
      expect.objectContaining({ message: `invalid --build-context "base=oci-layout://lay@${d}": invalid digest "${d}"`, hint: expect.stringContaining('64 lowercase hex digits') as unknown }),
    );
  });

  test('other forms are unchanged', () => {
    expect(parseBuildContext('x=docker-image://busybox:1')).toEqual({ kind: 'image', name: 'x', ref: 'busybox:1' });
    expect(parseBuildContext('x=../dir')).toEqual({ kind: 'local', name: 'x', path: '../dir' });
    expect(parseBuildContext('x=git://h/r.git#v1')).toEqual({ kind: 'url', name: 'x', url: 'git://h/r.git#v1' });
    expect(parseBuildContext('x=git@github.com:o/r.git')).toEqual({ kind: 'url', name: 'x', url: 'git@github.com:o/r.git' });
    // As `kiln build ssh://…` takes it: the frontend fetches it as git (with --ssh).
    expect(parseBuildContext('x=ssh://git@h/r.git#v1')).toEqual({ kind: 'url', name: 'x', url: 'ssh://git@h/r.git#v1' });
    expect(parseBuildContext('x=https://h/f.tar.gz')).toEqual({ kind: 'url', name: 'x', url: 'https://h/f.tar.gz' });
    expect(() => parseBuildContext('x=ftp://h/r')).toThrow(expect.objectContaining({ code: 'KLN0702' }));
  });
});

describe('resolveBuildContext: local and OCI layout paths are checked before the build', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-build-context-'));
    await mkdir(join(dir, 'ctx'));
    await writeFile(join(dir, 'file'), '');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a directory resolves against the caller directory; images are not touched', async () => {
    expect(await resolveBuildContext('foo=ctx', dir)).toEqual({ kind: 'local', name: 'foo', path: join(dir, 'ctx') });
    expect(await resolveBuildContext('foo=oci-layout://ctx:v1', dir)).toEqual({ kind: 'oci-layout', name: 'foo', path: join(dir, 'ctx'), ref: 'v1' });
    expect(await resolveBuildContext('foo=docker-image://nosuch:1', dir)).toEqual({ kind: 'image', name: 'foo', ref: 'nosuch:1' });
  });

  // A missing directory used to be an empty context: COPY --from=foo then failed with "not found".
  test.for([
    ['foo=nosuch', '--build-context foo: cannot use nosuch: no such directory'],
    ['foo=file', '--build-context foo: cannot use file: not a directory'],
    ['foo=oci-layout://nosuch', '--build-context foo: cannot use nosuch: no such OCI layout directory'],
  ] as const)('%s is refused with KLN0702 naming the flag', async ([value, message]) => {
    await expect(resolveBuildContext(value, dir)).rejects.toMatchObject({ code: 'KLN0702', message, hint: expect.stringContaining('directory') });
  });
});
