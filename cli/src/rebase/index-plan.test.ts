import { describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import type { Descriptor, Digest, ImageConfig, ImageIndex } from '@kiln/runtime';
import { appIndexChildren, childPlatform, rebasedIndex, runManifestFor } from './index-plan.js';

const d = (c: string): Digest => `sha256:${c.repeat(64).slice(0, 64)}` as Digest;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

const image = (c: string, platform: Descriptor['platform'], mediaType = OCI_MANIFEST, annotations?: Record<string, string>): Descriptor => ({
  mediaType,
  digest: d(c),
  size: 100 + c.charCodeAt(0),
  ...(platform === undefined ? {} : { platform }),
  ...(annotations === undefined ? {} : { annotations }),
});
const attestation = (c: string, subject: string): Descriptor =>
  image(c, { os: 'unknown', architecture: 'unknown' }, OCI_MANIFEST, { 'vnd.docker.reference.digest': d(subject), 'vnd.docker.reference.type': 'attestation-manifest' });
const config = (architecture: string, variant?: string): ImageConfig => ({ os: 'linux', architecture, ...(variant === undefined ? {} : { variant }), rootfs: { type: 'layers', diff_ids: [] } });

describe('appIndexChildren', () => {
  test('image manifests are rebased; attestation manifests are left out', () => {
    const amd = image('1', { os: 'linux', architecture: 'amd64' });
    const arm = image('2', { os: 'linux', architecture: 'arm64' });
    const att = attestation('3', '1');
    const index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [amd, arm, att] };
    const c = appIndexChildren('app', index);
    expect(c.images).toEqual([amd, arm]);
    expect(c.dropped).toEqual([att]);
  });

  test('a nested index is refused (KLN0928); an index of attestations only has nothing to rebase (KLN0920)', () => {
    const nested: ImageIndex = { schemaVersion: 2, manifests: [image('1', { os: 'linux', architecture: 'amd64' }), image('2', undefined, OCI_INDEX)] };
    expect(() => appIndexChildren('app', nested)).toThrow(expect.objectContaining({ code: 'KLN0928' }));
    const onlyAtt: ImageIndex = { schemaVersion: 2, manifests: [attestation('3', '1')] };
    expect(() => appIndexChildren('app', onlyAtt)).toThrow(expect.objectContaining({ code: 'KLN0920' }));
  });
});

describe('childPlatform', () => {
  test("the descriptor's platform, else the config's", () => {
    expect(childPlatform(image('1', { os: 'linux', architecture: 'arm', variant: 'v7' }), config('amd64'))).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(childPlatform(image('1', undefined), config('arm64', 'v8'))).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(childPlatform(image('1', { os: '', architecture: '' }), config('amd64'))).toEqual({ os: 'linux', architecture: 'amd64' });
  });
});

describe('runManifestFor', () => {
  const runIndex: ImageIndex = {
    schemaVersion: 2,
    manifests: [image('a', { os: 'linux', architecture: 'amd64' }), image('b', { os: 'linux', architecture: 'arm64', variant: 'v8' }), attestation('c', 'a'), image('d', { os: 'linux', architecture: 'arm', variant: 'v6' })],
  };

  test('the child of exactly that os/architecture/variant (normalised: arm64 is arm64/v8)', () => {
    expect(runManifestFor('kt/run', runIndex, { os: 'linux', architecture: 'amd64' }).digest).toBe(d('a'));
    expect(runManifestFor('kt/run', runIndex, { os: 'linux', architecture: 'arm64' }).digest).toBe(d('b'));
    expect(runManifestFor('kt/run', runIndex, { os: 'linux', architecture: 'arm', variant: 'v6' }).digest).toBe(d('d'));
  });

  test('no such child: KLN0927 naming the platform and the ones there are (no compatible fallback: arm/v7 does not take v6)', () => {
    expect(() => runManifestFor('kt/run', runIndex, { os: 'linux', architecture: 'arm', variant: 'v7' })).toThrow(
      expect.objectContaining({ code: 'KLN0927', message: expect.stringContaining('no linux/arm/v7 manifest (it has linux/amd64, linux/arm64, linux/arm/v6)') }),
    );
    expect(() => runManifestFor('kt/run', runIndex, { os: 'linux', architecture: 's390x' })).toThrow(expect.objectContaining({ code: 'KLN0927' }));
  });
});

describe('rebasedIndex', () => {
  const amd = image('1', { os: 'linux', architecture: 'amd64' }, OCI_MANIFEST, { 'org.example.note': 'amd' });
  const arm = image('2', { os: 'linux', architecture: 'arm64' });
  const att = attestation('3', '1');
  const raw = Buffer.from(
    JSON.stringify(
      { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...amd, artifactType: 'x/y' }, arm, att], annotations: { 'org.opencontainers.image.created': 'then' }, extra: 1 },
      null,
      3,
    ),
  );
  const newAmd: Descriptor = { mediaType: OCI_MANIFEST, digest: d('5'), size: 555 };
  const newArm: Descriptor = { mediaType: OCI_MANIFEST, digest: d('6'), size: 666 };

  test('children replaced in place (annotations and unknown fields kept), attestations left out, index fields kept; digest of the bytes', () => {
    const out = rebasedIndex(raw, OCI_INDEX, [
      { old: amd, manifest: newAmd, config: config('amd64') },
      { old: arm, manifest: newArm, config: config('arm64') },
    ], [att]);
    const doc = JSON.parse(out.bytes.toString()) as { mediaType: string; manifests: Record<string, unknown>[]; annotations: unknown; extra: unknown };
    expect(doc.mediaType).toBe(OCI_INDEX);
    expect(doc.annotations).toEqual({ 'org.opencontainers.image.created': 'then' });
    expect(doc.extra).toBe(1);
    expect(doc.manifests).toEqual([
      { mediaType: OCI_MANIFEST, digest: d('5'), size: 555, platform: { os: 'linux', architecture: 'amd64' }, annotations: { 'org.example.note': 'amd' }, artifactType: 'x/y' },
      { mediaType: OCI_MANIFEST, digest: d('6'), size: 666, platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    expect(out.desc).toEqual({ mediaType: OCI_INDEX, digest: `sha256:${createHash('sha256').update(out.bytes).digest('hex')}`, size: out.bytes.length });
  });

  test('a platform the new config no longer matches (a forced rebase onto another architecture) follows the config', () => {
    const out = rebasedIndex(raw, OCI_INDEX, [{ old: arm, manifest: newArm, config: config('arm', 'v7') }], []);
    const doc = JSON.parse(out.bytes.toString()) as { manifests: { digest: string; platform?: unknown }[] };
    expect(doc.manifests.find((m) => m.digest === d('6'))?.platform).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    // kept as it was when it still matches after normalisation (arm64 is arm64/v8)
    const v8 = rebasedIndex(raw, OCI_INDEX, [{ old: arm, manifest: newArm, config: config('arm64', 'v8') }], []);
    expect((JSON.parse(v8.bytes.toString()) as { manifests: { digest: string; platform?: unknown }[] }).manifests.find((m) => m.digest === d('6'))?.platform).toEqual({ os: 'linux', architecture: 'arm64' });
  });

  test('a platform that follows the config takes none of the old one\'s variant or os.version (a forced rebase from arm/v7 onto amd64 is linux/amd64, not linux/amd64/v7)', () => {
    const v7 = image('7', { os: 'linux', architecture: 'arm', variant: 'v7', 'os.version': '1' });
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [v7] }));
    const out = rebasedIndex(list, OCI_INDEX, [{ old: v7, manifest: newAmd, config: config('amd64') }], []);
    expect((JSON.parse(out.bytes.toString()) as { manifests: { platform?: unknown }[] }).manifests[0]?.platform).toEqual({ os: 'linux', architecture: 'amd64' });
  });

  test('a Docker manifest list stays one; it becomes an OCI index only when a child became an OCI manifest', () => {
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [image('1', { os: 'linux', architecture: 'amd64' }, DOCKER_MANIFEST)] }));
    const old = image('1', { os: 'linux', architecture: 'amd64' }, DOCKER_MANIFEST);
    const same = rebasedIndex(list, DOCKER_LIST, [{ old, manifest: { ...newAmd, mediaType: DOCKER_MANIFEST }, config: config('amd64') }], []);
    expect(same.desc.mediaType).toBe(DOCKER_LIST);
    expect((JSON.parse(same.bytes.toString()) as { mediaType: string }).mediaType).toBe(DOCKER_LIST);
    const oci = rebasedIndex(list, DOCKER_LIST, [{ old, manifest: newAmd, config: config('amd64') }], []);
    expect(oci.desc.mediaType).toBe(OCI_INDEX);
    expect((JSON.parse(oci.bytes.toString()) as { mediaType: string }).mediaType).toBe(OCI_INDEX);
  });
});
