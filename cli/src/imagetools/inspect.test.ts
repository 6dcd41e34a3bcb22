import { describe, expect, test } from 'vitest';
import { parseReference, type Digest } from '@kiln/runtime';
import { formatSummary, manifestValue, type Inspected } from './inspect.js';
import { refNames, type ManifestSource } from './source.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;
const source = (ref: string): ManifestSource => ({ ...refNames(parseReference(ref)), resolve: () => Promise.reject(new Error('unused')), fetch: () => Promise.reject(new Error('unused')) });

describe('formatSummary (buildx imagetools inspect, Go tabwriter alignment)', () => {
  test('a single manifest: three rows padded to "MediaType:" plus one space', () => {
    const r: Inspected = { source: source('localhost:5000/app:1'), desc: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('a'), size: 1 }, raw: Buffer.from('') };
    expect(formatSummary(r)).toBe(`Name:      localhost:5000/app:1\nMediaType: application/vnd.oci.image.manifest.v1+json\nDigest:    ${d('a')}\n`);
  });

  test('an index with an image and its attestation: blank rows are padding, a block ends after "Annotations:"', () => {
    const r: Inspected = {
      source: source('busybox'),
      desc: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: d('0'), size: 1 },
      raw: Buffer.from(''),
      index: {
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: d('b'),
            size: 1,
            platform: { os: 'unknown', architecture: 'unknown' },
            annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': d('a') },
          },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('c'), size: 1, platform: { os: 'windows', architecture: 'amd64', 'os.version': '10.0.1' } },
        ],
      },
    };
    const name = 'docker.io/library/busybox:latest';
    expect(formatSummary(r)).toBe(
      [
        `Name:      ${name}`,
        'MediaType: application/vnd.oci.image.index.v1+json',
        `Digest:    ${d('0')}`,
        '           ',
        'Manifests: ',
        `  Name:        ${name}@${d('a')}`,
        '  MediaType:   application/vnd.oci.image.manifest.v1+json',
        '  Platform:    linux/arm/v7',
        '               ',
        `  Name:        ${name}@${d('b')}`,
        '  MediaType:   application/vnd.oci.image.manifest.v1+json',
        '  Platform:    unknown/unknown',
        '  Annotations: ',
        `    vnd.docker.reference.digest: ${d('a')}`,
        '    vnd.docker.reference.type:   attestation-manifest',
        '             ',
        `  Name:      ${name}@${d('c')}`,
        '  MediaType: application/vnd.oci.image.manifest.v1+json',
        '  Platform:  windows/amd64',
        '  OSVersion: 10.0.1',
        '',
      ].join('\n'),
    );
  });

  test('{{json .Manifest}} of an index carries its digest and size; of a manifest, the descriptor', () => {
    const idx: Inspected = {
      source: source('a'),
      desc: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: d('0'), size: 9 },
      raw: Buffer.from(''),
      index: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'm', digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' } }] },
    };
    expect(JSON.stringify(manifestValue(idx))).toBe(
      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","digest":"${d('0')}","size":9,"manifests":[{"mediaType":"m","digest":"${d('a')}","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}`,
    );
    expect(JSON.stringify(manifestValue({ ...idx, index: undefined }))).toBe(`{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"${d('0')}","size":9}`);
  });
});

describe('loadImages / templateInput (the --format data: configs and attestations per platform)', () => {
  test('an index with two images, one with provenance (plain in-toto) and SBOMs (one DSSE-wrapped)', async () => {
    const { digestOf } = await import('@kiln/runtime');
    const { loadImages, templateInput } = await import('./inspect.js');
    const blobs = new Map<string, Buffer>();
    const put = (v: unknown, mediaType: string, extra: Record<string, unknown> = {}) => {
      const bytes = Buffer.from(JSON.stringify(v));
      blobs.set(digestOf(bytes), bytes);
      return { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
    };
    const OM = 'application/vnd.oci.image.manifest.v1+json';
    const img = (arch: string) => put({ schemaVersion: 2, mediaType: OM, config: put({ architecture: arch, os: 'linux', extra: 'dropped', rootfs: { type: 'layers', diff_ids: [] } }, 'application/vnd.oci.image.config.v1+json'), layers: [] }, OM);
    const amd = img('amd64');
    const arm = img('arm64');
    const stmt = (predicateType: string, predicate: unknown) => ({ _type: 'https://in-toto.io/Statement/v0.1', predicateType, subject: [], predicate });
    const slsa = put(stmt('https://slsa.dev/provenance/v0.2', { buildType: 'bt' }), 'application/vnd.in-toto+json', { annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } });
    const spdx1 = put(stmt('https://spdx.dev/Document', { name: 'one' }), 'application/vnd.in-toto+json', { annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' } });
    const dsse = put({ payloadType: 'application/vnd.in-toto+json', payload: Buffer.from(JSON.stringify(stmt('https://spdx.dev/Document', { name: 'two' }))).toString('base64'), signatures: [] }, 'application/vnd.in-toto.spdx+dsse', {
      annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' },
    });
    const att = put({ schemaVersion: 2, mediaType: OM, config: put({}, 'application/vnd.oci.image.config.v1+json'), layers: [slsa, spdx1, dsse] }, OM, {
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.digest': amd.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
    });
    const index = { schemaVersion: 2 as const, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...amd, platform: { os: 'linux', architecture: 'amd64' } }, { ...arm, platform: { os: 'linux', architecture: 'arm64' } }, att] };
    const raw = Buffer.from(JSON.stringify(index));
    const src: ManifestSource = {
      ...refNames(parseReference('localhost:5000/app:1')),
      resolve: () => Promise.reject(new Error('unused')),
      fetch: async (desc) => blobs.get(desc.digest) ?? Promise.reject(new Error(`no ${desc.digest}`)),
    };
    const r: Inspected = { source: src, desc: { mediaType: index.mediaType, digest: digestOf(raw), size: raw.length }, raw, index };
    const data = templateInput('app:1', r, await loadImages(r, true));
    expect(data['Image']).toEqual({
      'linux/amd64': { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } },
      'linux/arm64': { architecture: 'arm64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } },
    });
    expect(data['Provenance']).toEqual({ 'linux/amd64': { SLSA: { buildType: 'bt' } } });
    expect(data['SBOM']).toEqual({ 'linux/amd64': { SPDX: { name: 'one' }, AdditionalSPDXs: [{ name: 'two' }] } });
  });
});

describe('loadImages: malformed content is KLN0865, not a SyntaxError', () => {
  test('a config or an attestation layer that is not JSON', async () => {
    const { digestOf } = await import('@kiln/runtime');
    const { loadImages } = await import('./inspect.js');
    const blobs = new Map<string, Buffer>();
    const put = (v: unknown, mediaType: string, extra: Record<string, unknown> = {}) => {
      const bytes = Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
      blobs.set(digestOf(bytes), bytes);
      return { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
    };
    const OM = 'application/vnd.oci.image.manifest.v1+json';
    const src: ManifestSource = { ...refNames(parseReference('localhost:5000/app:1')), resolve: () => Promise.reject(new Error('unused')), fetch: async (desc) => blobs.get(desc.digest) ?? Promise.reject(new Error(`no ${desc.digest}`)) };
    const { asImagetoolsError } = await import('./errors.js');
    const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (asImagetoolsError(e) as { code?: unknown }).code);
    const load = (root: { mediaType: string; digest: Digest; size: number }, att: boolean) => loadImages({ source: src, desc: root, raw: blobs.get(root.digest) as Buffer }, att);
    const badCfg = put({ schemaVersion: 2, mediaType: OM, config: put('{"architecture":', 'application/vnd.oci.image.config.v1+json'), layers: [] }, OM);
    expect(await code(load(badCfg, false))).toBe('KLN0865');
    const good = put({ schemaVersion: 2, mediaType: OM, config: put({ architecture: 'amd64', os: 'linux' }, 'application/vnd.oci.image.config.v1+json'), layers: [] }, OM);
    const att = put({ schemaVersion: 2, mediaType: OM, config: put({}, 'application/vnd.oci.image.config.v1+json'), layers: [put('nope', 'application/vnd.in-toto+json', { annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } })] }, OM, {
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.digest': good.digest },
    });
    const IM = 'application/vnd.oci.image.index.v1+json';
    const idx = put({ schemaVersion: 2, mediaType: IM, manifests: [{ ...good, platform: { os: 'linux', architecture: 'amd64' } }, att] }, IM);
    expect(await code(load(idx, true))).toBe('KLN0865');
  });
});

describe('loadImages: a large index is read a few children at a time', () => {
  test('500 children: at most 8 fetches in flight', async () => {
    const { digestOf } = await import('@kiln/runtime');
    const { loadImages } = await import('./inspect.js');
    const OM = 'application/vnd.oci.image.manifest.v1+json';
    const blobs = new Map<string, Buffer>();
    const put = (v: unknown) => {
      const bytes = Buffer.from(JSON.stringify(v));
      blobs.set(digestOf(bytes), bytes);
      return { digest: digestOf(bytes), size: bytes.length };
    };
    const cfg = put({ architecture: 'amd64', os: 'linux' });
    const children = Array.from({ length: 500 }, (_, i) => ({ mediaType: OM, ...put({ schemaVersion: 2, mediaType: OM, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [], annotations: { i: String(i) } }), platform: { os: 'linux', architecture: `a${i}` } }));
    const IM = 'application/vnd.oci.image.index.v1+json';
    const raw = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: IM, manifests: children }));
    let inFlight = 0;
    let most = 0;
    const src: ManifestSource = {
      ...refNames(parseReference('localhost:5000/app:1')),
      resolve: () => Promise.reject(new Error('unused')),
      fetch: async (desc) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        return blobs.get(desc.digest) ?? Promise.reject(new Error(`no ${desc.digest}`));
      },
    };
    const loaded = await loadImages({ source: src, desc: { mediaType: IM, digest: digestOf(raw), size: raw.length }, raw, index: { schemaVersion: 2, manifests: children } }, false);
    expect(loaded.configs.size).toBe(500);
    expect(most).toBeLessThanOrEqual(8);
  });
});
