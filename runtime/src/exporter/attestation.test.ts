import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import type { Digest } from '../content/digest.js';
import { runExport } from './export.js';
import type { ExportImageSource } from './image-exporters.js';
import { parseOutputSpec } from './spec.js';
import { goIndent, imagePurl, imageSubjects, statementBytes, writeAttestationManifest } from './attestation.js';

const execFileAsync = promisify(execFile);

// Expected purls: BuildKit util/purl/image_test.go (TestRefToPURL), digest.FromBytes("test").
const testDgst = 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const amd64 = { os: 'linux', architecture: 'amd64' };

describe('imagePurl (BuildKit purl.RefToPURL)', () => {
  test.for([
    ['alpine', undefined, 'pkg:docker/alpine@latest'],
    ['library/alpine:3.15', undefined, 'pkg:docker/alpine@3.15'],
    ['docker.io/library/alpine:latest', undefined, 'pkg:docker/alpine@latest'],
    [`docker.io/library/alpine:latest@${testDgst}`, undefined, `pkg:docker/alpine@latest?digest=${testDgst}`],
    [`docker.io/library/alpine@${testDgst}`, undefined, `pkg:docker/alpine?digest=${testDgst}`],
    ['user/test:v2', undefined, 'pkg:docker/user/test@v2'],
    ['ghcr.io/foo/bar:v2', undefined, 'pkg:docker/ghcr.io/foo/bar@v2'],
    ['ghcr.io/foo/bar', undefined, 'pkg:docker/ghcr.io/foo/bar@latest'],
    ['busybox', amd64, 'pkg:docker/busybox@latest?platform=linux%2Famd64'],
    [`busybox@${testDgst}`, amd64, `pkg:docker/busybox?digest=${testDgst}&platform=linux%2Famd64`],
  ] as const)('%s', ([ref, platform, expected]) => {
    expect(imagePurl(ref, platform)).toBe(expected);
  });

  test('a registry with a port is one query-escaped namespace segment; the platform is normalized', () => {
    expect(imagePurl('127.0.0.1:5000/kiln/app:t1', { os: 'linux', architecture: 'aarch64' })).toBe('pkg:docker/127.0.0.1%3A5000/kiln/app@t1?platform=linux%2Farm64');
    expect(imagePurl('app', { os: 'linux', architecture: 'arm' })).toBe('pkg:docker/app@latest?platform=linux%2Farm%2Fv7');
  });
});

describe('statements', () => {
  const att = { predicateType: 'https://slsa.dev/provenance/v0.2', predicate: Buffer.from('{"a":"<b>","n":[],"o":{}}'), path: 'provenance.json' };

  test('compact, in Go field order, HTML characters escaped in the raw predicate too', () => {
    const subjects = imageSubjects(['app:1', ''], amd64, testDgst as Digest);
    expect(statementBytes(att, subjects).toString()).toBe(
      `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{"name":"pkg:docker/app@1?platform=linux%2Famd64","digest":{"sha256":"${testDgst.slice(7)}"}}],"predicate":{"a":"\\u003cb\\u003e","n":[],"o":{}}}`,
    );
  });

  test('no image names: no subjects (BuildKit v0.11 writes [])', () => {
    expect(JSON.parse(statementBytes(att, imageSubjects([], amd64, testDgst as Digest)).toString())).toMatchObject({ subject: [] });
  });

  test('goIndent is json.MarshalIndent: empty containers stay {} and [], strings untouched', () => {
    expect(goIndent('{"a":[1,{"b":"x,y:{"}],"e":{},"f":[]}', '  ')).toBe('{\n  "a": [\n    1,\n    {\n      "b": "x,y:{"\n    }\n  ],\n  "e": {},\n  "f": []\n}');
    expect(goIndent('{"s":"a\\"b,"}', '  ')).toBe('{\n  "s": "a\\"b,"\n}');
  });
});

test('an attestation manifest: statement layers, unknown/unknown config with their diff_ids, annotated index entry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-attest-'));
  try {
    const store = await ContentStore.open(dir);
    const bytes = Buffer.from('{"_type":"x"}');
    const desc = await writeAttestationManifest(store, testDgst as Digest, [{ predicateType: 'https://slsa.dev/provenance/v0.2', bytes }]);
    expect(desc.platform).toEqual({ architecture: 'unknown', os: 'unknown' });
    expect(desc.annotations).toEqual({ 'vnd.docker.reference.digest': testDgst, 'vnd.docker.reference.type': 'attestation-manifest' });
    const manifest = JSON.parse((await store.readBlob(desc.digest)).toString()) as { mediaType: string; config: { mediaType: string; digest: Digest }; layers: Array<{ mediaType: string; digest: string; annotations: Record<string, string> }> };
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.layers).toHaveLength(1);
    expect(manifest.layers[0]?.mediaType).toBe('application/vnd.in-toto+json');
    expect(manifest.layers[0]?.annotations).toEqual({ 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' });
    expect((await store.readBlob(manifest.layers[0]?.digest as Digest)).toString()).toBe('{"_type":"x"}');
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect((await store.readBlob(manifest.config.digest)).toString()).toBe(`{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["${manifest.layers[0]?.digest ?? ''}"]}}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('type=docker: a multi-platform result (a list, one platform too) is refused with or without attestations; one attested image is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-attest-'));
  try {
    const store = await ContentStore.open(dir);
    const att = { predicateType: 'https://slsa.dev/provenance/v0.2', predicate: Buffer.from('{}'), path: 'provenance.json' };
    const source: ExportImageSource = { layers: [], config: { os: 'linux', architecture: 'amd64', config: {} } };
    const spec = (name: string) => parseOutputSpec(`type=docker,dest=${join(dir, name)},name=app:1`);
    await expect(runExport(spec('plain-list.tar'), { image: [source] }, { store })).rejects.toMatchObject({ code: 'EXPORT_FAILED' });
    // BuildKit's docker exporter refuses any multi-platform result (len(src.Refs) > 0) before Commit.
    await expect(runExport(spec('attested-list.tar'), { image: [{ ...source, attestations: [att] }] }, { store })).rejects.toMatchObject({ code: 'EXPORT_FAILED' });
    await expect(stat(join(dir, 'attested-list.tar'))).rejects.toMatchObject({ code: 'ENOENT' });
    const res = await runExport(spec('attested.tar'), { image: { ...source, attestations: [att] } }, { store });
    expect(res.descriptor?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('type=tar: a statement file replaces an output file of the same name (BuildKit MergeFS: upper wins), one entry each', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-attest-'));
  try {
    const store = await ContentStore.open(dir);
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'z'), { recursive: true });
    await writeFile(join(tree, 'a.txt'), 'a');
    await writeFile(join(tree, 'provenance.json'), 'the build wrote this');
    await writeFile(join(tree, 'z', 'b'), 'b');
    const att = { predicateType: 'https://slsa.dev/provenance/v0.2', predicate: Buffer.from('{}'), path: 'provenance.json' };
    const dest = join(dir, 'out.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: tree, attestations: [att] }, { store, sourceDateEpoch: 1_700_000_000 });
    const { stdout } = await execFileAsync('tar', ['-tf', dest]);
    expect(stdout.trim().split('\n')).toEqual(['a.txt', 'provenance.json', 'z/', 'z/b']);
    const { stdout: statement } = await execFileAsync('tar', ['-xOf', dest, 'provenance.json']);
    expect(JSON.parse(statement)).toMatchObject({ _type: 'https://in-toto.io/Statement/v0.1', predicate: {} });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
