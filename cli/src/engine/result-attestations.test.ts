import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { GatewayResult, SolvedRef } from '@kiln/gateway';
import { goMarshal, solveAttestations, unbundleAttestations, type SolvedAttestation } from './result-attestations.js';
import { SnapshotRef } from './snapshot-ref.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A result directory with these files; the ref double only answers `path()` (what unbundle reads). */
async function result(files: Record<string, string>): Promise<{ dir: string; ref: SnapshotRef }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-unbundle-'));
  dirs.push(dir);
  for (const [p, text] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), text);
  }
  return { dir, ref: { path: () => Promise.resolve(dir) } as unknown as SnapshotRef };
}

const enc = new TextEncoder();
const SPDX = 'https://spdx.dev/Document';
const stmt = (predicateType: string, predicate: string, subject = '[]') => `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"${predicateType}","subject":${subject},"predicate":${predicate}}`;
const bundle = (ref: SnapshotRef, extra: Partial<SolvedAttestation> = {}): SolvedAttestation => ({
  kind: 'bundle',
  ref,
  path: '',
  metadata: new Map([['reason', enc.encode('sbom')], ['sbom-core', enc.encode('sbom')]]),
  predicateType: SPDX,
  subjects: [],
  ...extra,
});

describe('goMarshal (Go json.Marshal of a decoded interface{})', () => {
  test.for([
    ['{"b":1,"a":[true,null,"<x>&"],"c":{"z":1e-7,"y":1e21,"x":0.5,"w":-0}}', '{"a":[true,null,"\\u003cx\\u003e\\u0026"],"b":1,"c":{"w":-0,"x":0.5,"y":1e+21,"z":1e-7}}'],
    ['{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","files":[]}', '{"SPDXID":"SPDXRef-DOCUMENT","files":[],"spdxVersion":"SPDX-2.3"}'],
    ['"\\u2028 é"', '"\\u2028 é"'],
    ['123456789012', '123456789012'],
  ] as const)('%s', ([input, want]) => {
    expect(goMarshal(JSON.parse(input))).toBe(want);
  });
});

describe('unbundleAttestations (BuildKit exporter/attestation Unbundle, v0.11)', () => {
  test('one attestation per file, by name, the core sbom first; predicate keys sorted; raw subjects kept', async () => {
    const { ref } = await result({
      'b.spdx.json': stmt(SPDX, '{"z":1,"a":2}'),
      'sbom.spdx.json': stmt(SPDX, '{"name":"core"}'),
      'a.spdx.json': stmt(SPDX, '{}', '[{"name":"","digest":{"sha512":"aa","sha256":"bb"}}]'),
    });
    const atts = await unbundleAttestations([bundle(ref)]);
    expect(atts.map((a) => [a.path, a.predicateType, Buffer.from(a.predicate).toString()])).toEqual([
      ['sbom.spdx.json', SPDX, '{"name":"core"}'],
      ['a.spdx.json', SPDX, '{}'],
      ['b.spdx.json', SPDX, '{"a":2,"z":1}'],
    ]);
    expect(atts[1]?.subjects).toEqual([{ name: '_', digest: { sha256: 'bb', sha512: 'aa' } }]);
    expect(atts[0]?.subjects).toEqual([]);
  });

  test('an in-toto attestation is read from its path, compacted as json.Marshal writes a RawMessage (key order kept)', async () => {
    const { ref } = await result({ 'p/pred.json': '{"b":1, "a":[ 2 ,\n "x y" ]}\n' });
    const atts = await unbundleAttestations([{ kind: 'in-toto', ref, path: 'p/pred.json', metadata: new Map(), predicateType: 'https://example.com/x', subjects: [{ kind: 'self' }] }]);
    expect(atts.map((a) => [a.path, a.predicateType, Buffer.from(a.predicate).toString(), a.subjects])).toEqual([['p/pred.json', 'https://example.com/x', '{"b":1,"a":[2,"x y"]}', ['self']]]);
  });

  // BuildKit's json.Marshal of the statement fails on a RawMessage that is not one JSON value;
  // inserted as it is, the predicate could add keys to the statement (a second "subject").
  test.for([
    ['not JSON', 'not json'],
    ['two values (a second subject injected)', '{},"subject":[{"name":"x","digest":{"sha256":"00"}}]'],
    ['empty', ''],
  ] as const)('an in-toto predicate file that is %s is refused', async ([, text]) => {
    const { ref } = await result({ 'pred.json': text });
    await expect(unbundleAttestations([{ kind: 'in-toto', ref, path: 'pred.json', metadata: new Map(), predicateType: 'https://example.com/x', subjects: [] }])).rejects.toMatchObject({
      code: 'KLN0704',
      message: expect.stringContaining('pred.json') as unknown,
    });
  });

  test.for([
    ['another predicate type than the bundle requires', { 'sbom.spdx.json': stmt('https://cyclonedx.org/bom', '{}') }, {}, 'bundle entry https://cyclonedx.org/bom does not match required predicate type https://spdx.dev/Document'],
    ['provenance in a bundle', { 'p.json': stmt('https://slsa.dev/provenance/v0.2', '{}') }, { predicateType: '' }, 'frontend may not bundle provenance attestations'],
    ['a file that is no JSON', { 'sbom.spdx.json': 'not json' }, {}, 'cannot decode in-toto statement sbom.spdx.json'],
    ['a bundle directory that is missing', {}, { path: 'out' }, 'attestation path out not found'],
  ] as const)('%s is refused', async ([, files, extra, message]) => {
    const { ref } = await result(files);
    await expect(unbundleAttestations([bundle(ref, extra)])).rejects.toMatchObject({ code: 'KLN0704', message: expect.stringContaining(message) as unknown });
  });

  test('a statement file that links out of the result is refused', async () => {
    const outside = await result({ 'secret.json': stmt(SPDX, '{"secret":true}') });
    const { dir, ref } = await result({});
    await symlink(join(outside.dir, 'secret.json'), join(dir, 'sbom.spdx.json'));
    await expect(unbundleAttestations([bundle(ref)])).rejects.toMatchObject({ code: 'KLN0704', message: expect.stringContaining('leaves its result') as unknown });
  });

  // A hostile scanner's /run/out: a named pipe would block the read (the build hangs), a
  // directory reads as EISDIR; only regular files are statements.
  test('a bundle entry that is no regular file (a fifo, a directory) is refused, not read', async () => {
    const { dir, ref } = await result({ 'sbom.spdx.json': stmt(SPDX, '{}') });
    execFileSync('mkfifo', [join(dir, 'x.fifo')]);
    await expect(unbundleAttestations([bundle(ref)])).rejects.toMatchObject({ code: 'KLN0704', message: expect.stringContaining('x.fifo is not a regular file') as unknown });
    const d = await result({ 'sbom.spdx.json': stmt(SPDX, '{}'), 'sub/a.json': stmt(SPDX, '{}') });
    await expect(unbundleAttestations([bundle(d.ref)])).rejects.toMatchObject({ code: 'KLN0704', message: expect.stringContaining('sub is not a regular file') as unknown });
  }, 5000);

  test('a frontend may not set provenance', async () => {
    const { ref } = await result({ 'p.json': '{}' });
    await expect(unbundleAttestations([{ kind: 'in-toto', ref, path: 'p.json', metadata: new Map(), predicateType: 'https://slsa.dev/provenance/v0.2', subjects: [] }])).rejects.toMatchObject({ message: 'frontend may not set provenance attestations' });
  });
});

describe('solveAttestations: the gateway result\'s attestations as snapshots', () => {
  test('defaults filled (metadata, path, subjects); a ref that is no snapshot of this build is KLN0704', () => {
    const snap = Object.create(SnapshotRef.prototype) as SnapshotRef;
    const attestations: GatewayResult['attestations'] = new Map([['linux/amd64', [{ kind: 'bundle' as const, ref: snap, predicateType: SPDX }]]]);
    expect(solveAttestations(attestations)).toEqual(new Map([['linux/amd64', [{ kind: 'bundle', ref: snap, metadata: new Map(), path: '', predicateType: SPDX, subjects: [] }]]]));
    const foreign = { readFile: () => Promise.reject(new Error('unused')) } as unknown as SolvedRef;
    expect(() => solveAttestations(new Map([['linux/amd64', [{ kind: 'in-toto' as const, ref: foreign }]]]))).toThrow(expect.objectContaining({ code: 'KLN0704' }));
  });
});
