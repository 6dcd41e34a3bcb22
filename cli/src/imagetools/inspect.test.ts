import { describe, expect, test } from 'vitest';
import { parseReference, type Digest } from '@kiln/runtime';
import { formatSummary, manifestValue, type Inspected } from './inspect.js';
import type { ManifestSource } from './source.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;
const source = (ref: string): ManifestSource => ({ ref: parseReference(ref), resolve: () => Promise.reject(new Error('unused')), fetch: () => Promise.reject(new Error('unused')) });

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
