import { describe, expect, test } from 'vitest';
import { digestOf, parseReference, type Descriptor } from '@kiln/runtime';
import { parseAnnotations } from './annotations.js';
import { asImagetoolsError } from './errors.js';
import { assertSupportedName, combine, parseSource, sourceLocations, type Source } from './combine.js';
import { locationName, type Location } from './location.js';

// A fake registry: blobs by digest. combine() only reads manifests and configs through `fetch`.
const blobs = new Map<string, Buffer>();
function put(v: unknown): Descriptor & { bytes: Buffer } {
  const bytes = Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
  const digest = digestOf(bytes);
  blobs.set(digest, bytes);
  return { mediaType: '', digest, size: bytes.length, bytes };
}
const fetch = async (_loc: Location, d: Descriptor): Promise<Buffer> => {
  const b = blobs.get(d.digest);
  if (b === undefined) throw new Error(`no ${d.digest}`);
  return b;
};
const DM = 'application/vnd.docker.distribution.manifest.v2+json';
const OM = 'application/vnd.oci.image.manifest.v1+json';
function image(arch: string, mediaType: string, variant?: string): Descriptor {
  const cfg = put({ architecture: arch, os: 'linux', ...(variant !== undefined ? { variant } : {}), rootfs: { type: 'layers', diff_ids: [] } });
  const m = put({ schemaVersion: 2, mediaType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size }, layers: [] });
  return { mediaType, digest: m.digest, size: m.size };
}
const loc: Location = { kind: 'registry', ref: parseReference('localhost:5000/app:1') };
const src = (desc: Descriptor): Source => ({ loc, desc });

describe('combine (buildx imagetools create)', () => {
  test('two Docker manifests without platforms: platforms from their configs, a Docker manifest list as MarshalIndent writes it', async () => {
    const a = image('amd64', DM);
    const b = image('aarch64', DM, 'v8');
    const out = await combine([src(a), src(b)], [], true, fetch);
    const want = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "${DM}",
      "digest": "${a.digest}",
      "size": ${a.size},
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      }
    },
    {
      "mediaType": "${DM}",
      "digest": "${b.digest}",
      "size": ${b.size},
      "platform": {
        "architecture": "arm64",
        "os": "linux"
      }
    }
  ]
}`;
    expect(out.bytes.toString()).toBe(want);
    expect(out.desc).toEqual({ mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', digest: digestOf(Buffer.from(want)), size: want.length });
  });

  test('an index is flattened, its children deduplicated by digest (annotations merged), one OCI child makes an OCI index', async () => {
    const a = image('amd64', OM);
    const b = image('arm64', OM);
    const idx = put({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...a, platform: { os: 'linux', architecture: 'amd64' }, annotations: { x: '1' } }] });
    const out = await combine(
      [src({ ...idx, mediaType: 'application/vnd.oci.image.index.v1+json' }), src({ ...a, annotations: { y: '2' } }), src(b)],
      parseAnnotations(['index:org.opencontainers.image.title=t', 'manifest-descriptor[linux/arm64]:k=v']),
      true,
      fetch,
    );
    const v = JSON.parse(out.bytes.toString()) as { mediaType: string; manifests: Descriptor[]; annotations: Record<string, string> };
    expect(v.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(v.manifests.map((m) => m.digest)).toEqual([a.digest, b.digest]);
    expect(v.manifests[0]?.annotations).toEqual({ x: '1', y: '2' });
    expect(v.manifests[1]?.annotations).toEqual({ k: 'v' });
    expect(v.annotations).toEqual({ 'org.opencontainers.image.title': 't' });
    expect(out.unmatched).toBeUndefined();
  });

  // A misspelt or absent platform (linux/amd65) annotated nothing without a word, as in buildx.
  test('a manifest-descriptor annotation for a platform the index lacks is reported with the platforms there are', async () => {
    const a = image('amd64', OM);
    const b = image('arm64', OM);
    const out = await combine([src(a), src(b)], parseAnnotations(['manifest-descriptor[linux/amd65]:k=v', 'manifest-descriptor[linux/arm64]:n=1']), true, fetch);
    expect(out.unmatched).toEqual({ annotations: [{ type: 'manifest-descriptor', platform: 'linux/amd65', key: 'k', value: 'v' }], platforms: ['linux/amd64', 'linux/arm64'] });
    const v = JSON.parse(out.bytes.toString()) as { manifests: Descriptor[] };
    expect(v.manifests.map((m) => m.annotations)).toEqual([undefined, { n: '1' }]);
  });

  test('one index source without annotations is copied as is; one manifest too with preferIndex=false', async () => {
    const raw = '{"schemaVersion":2,"manifests":[]}  ';
    const idx = put(raw);
    const out = await combine([src({ ...idx, mediaType: 'application/vnd.oci.image.index.v1+json' })], [], true, fetch);
    expect(out.bytes.toString()).toBe(raw);
    const a = image('amd64', DM);
    expect((await combine([src(a)], [], false, fetch)).desc.digest).toBe(a.digest);
    expect((await combine([src(a)], [], true, fetch)).desc.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
  });

  test('two different manifests of one platform are refused (KLN0863); attestation manifests never collide', async () => {
    const a = image('amd64', OM);
    const a2 = image('x86_64', OM);
    await expect(combine([src(a), src(a2)], [], true, fetch)).rejects.toMatchObject({ code: 'KLN0863' });
    const att = (subject: string): Descriptor => ({ mediaType: OM, digest: put({ s: subject }).digest, size: 1, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.digest': subject } });
    const b = image('arm64', OM);
    const out = await combine([src(a), src(att(a.digest)), src(b), src(att(b.digest))], [], true, fetch);
    expect((JSON.parse(out.bytes.toString()) as { manifests: unknown[] }).manifests).toHaveLength(4);
  });

  test('annotation types buildx refuses for create; Docker lists drop annotations', async () => {
    const a = image('amd64', DM);
    await expect(combine([src(a)], parseAnnotations(['manifest:k=v']), true, fetch)).rejects.toMatchObject({ code: 'KLN0860' });
    await expect(combine([src(a)], parseAnnotations(['index-descriptor:k=v']), true, fetch)).rejects.toMatchObject({ code: 'KLN0860' });
    await expect(combine([src(a)], parseAnnotations(['k=v']), true, fetch)).rejects.toMatchObject({ code: 'KLN0860' });
    const out = await combine([src(a)], parseAnnotations(['index:k=v']), true, fetch);
    expect(out.dropped.map((x) => x.key)).toEqual(['k']);
    expect(out.bytes.toString()).not.toContain('annotations');
  });
});

describe('parseSource / sourceLocations', () => {
  const dg = `sha256:${'a'.repeat(64)}`;
  const app: Location = { kind: 'registry', ref: parseReference('localhost:5000/app:1') };
  test('digest, reference and descriptor sources; the repository of a digest is the one repository given', () => {
    const specs = [parseSource(dg, '/w'), parseSource('localhost:5000/other:2', '/w'), parseSource(`{"digest":"${dg}","platform":{"os":"linux","architecture":"s390x"}}`, '/w')];
    expect(specs.map((s) => s.kind)).toEqual(['digest', 'ref', 'descriptor']);
    expect(() => sourceLocations(specs, [app])).toThrow(expect.objectContaining({ code: 'KLN0860' }));
    const locs = sourceLocations([specs[0], specs[2]].filter((s) => s !== undefined), [app]);
    expect(locs.map(locationName)).toEqual([`localhost:5000/app:1@${dg}`, `localhost:5000/app:1@${dg}`]);
  });
  test('an oci-layout:// source (relative to the caller cwd); a digest in the one layout given', () => {
    const layout = parseSource('oci-layout://./lay:v1', '/w');
    expect(layout).toMatchObject({ kind: 'ref', loc: { kind: 'layout', path: './lay', dir: '/w/lay', tag: 'v1' } });
    const locs = sourceLocations([parseSource(dg, '/w')], [{ kind: 'layout', path: 'out', dir: '/w/out', tag: 'x' }]);
    expect(locs.map(locationName)).toEqual([`oci-layout://out@${dg}`]);
  });
  test.for(['sha256:zz', 'docker-daemon:app:1', 'oci:./x:1', './dir', '{"digest":1}', '{nope', 'app:bad!tag', 'Upper', `oci-layout://x@sha512:${'a'.repeat(128)}`, 'oci-layout://'])('%s is refused', (s) => {
    expect(() => parseSource(s, '/w')).toThrow(expect.objectContaining({ code: expect.stringMatching(/^KLN086[04]$/) }));
  });
});

describe('combine: malformed sources are KLN0865 (as the command reports them), not an uncoded SyntaxError', () => {
  const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (asImagetoolsError(e) as { code?: unknown }).code);
  test('a manifest whose config is not JSON', async () => {
    const cfg = put('not json {');
    const m = put({ schemaVersion: 2, mediaType: OM, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size }, layers: [] });
    expect(await code(combine([src({ mediaType: OM, digest: m.digest, size: m.size }), src(image('amd64', OM))], [], true, fetch))).toBe('KLN0865');
  });
  test('a manifest that is not JSON although the registry called it an OCI manifest', async () => {
    const m = put('<html>oops</html>');
    expect(await code(combine([src({ mediaType: OM, digest: m.digest, size: m.size }), src(image('amd64', OM))], [], true, fetch))).toBe('KLN0865');
  });
});

describe('combine keeps every field of a flattened child descriptor (ocispec.Descriptor)', () => {
  test('artifactType and data of an index child survive, in Go field order', async () => {
    const a = image('amd64', OM);
    const b = image('arm64', OM);
    const IM = 'application/vnd.oci.image.index.v1+json';
    const data = Buffer.from('{}').toString('base64');
    const idx = put({ schemaVersion: 2, mediaType: IM, manifests: [{ mediaType: OM, artifactType: 'application/vnd.example+type', digest: a.digest, size: a.size, data, platform: { os: 'linux', architecture: 'amd64' } }] });
    const out = await combine([src({ ...idx, mediaType: IM }), src(b)], [], true, fetch);
    const v = JSON.parse(out.bytes.toString()) as { manifests: Record<string, unknown>[] };
    expect(Object.keys(v.manifests[0] ?? {})).toEqual(['mediaType', 'digest', 'size', 'data', 'platform', 'artifactType']);
    expect(v.manifests[0]?.['artifactType']).toBe('application/vnd.example+type');
    expect(v.manifests[0]?.['data']).toBe(data);
  });
});

// `kiln imagetools inspect docker://busybox` said 'target … give -t …' for inspect's NAME.
describe('assertSupportedName', () => {
  test('the role is the one the argument plays; docker://REF is told to drop the prefix', () => {
    expect(() => assertSupportedName('docker://busybox:1', 'name')).toThrow(expect.objectContaining({ code: 'KLN0864', message: expect.stringMatching(/^name "docker:\/\/busybox:1" is neither/) as unknown, hint: "drop docker:// (skopeo's transport): busybox:1" }));
    expect(() => assertSupportedName('docker://reg.example/app', 'target')).toThrow(expect.objectContaining({ hint: "drop docker:// (skopeo's transport): -t reg.example/app" }));
    expect(() => assertSupportedName('docker-archive:x.tar', 'source')).toThrow(expect.objectContaining({ hint: 'give [registry/]name[:tag|@digest] or oci-layout://DIR[:TAG|@DIGEST]' }));
    expect(() => assertSupportedName('oci-layout://dir:v1', 'name')).not.toThrow();
  });
});
