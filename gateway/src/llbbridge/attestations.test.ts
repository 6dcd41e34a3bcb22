// Result.attestations (gateway.proto field 12) against bytes assembled by hand from BuildKit
// v0.11.6's gateway.proto: map<string, Attestations> attestations = 12; Attestations
// {repeated Attestation attestation = 1}; Attestation {AttestationKind kind = 1; map<string, bytes>
// metadata = 2; Ref ref = 3; string path = 4; string inTotoPredicateType = 5; repeated
// InTotoSubject inTotoSubjects = 6}; InTotoSubject {InTotoSubjectKind kind = 1; repeated string
// digest = 2; string name = 3}; enum AttestationKind {InToto = 0; Bundle = 1}; enum
// InTotoSubjectKind {Self = 0; Raw = 1}. Then both sides of the bridge carrying them.
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { encodeDefinition, mkfile, scratch, type Definition, type FileStat, type FrontendAttestation, type FrontendClient, type FrontendResult, type Ref } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge } from '../index.js';
import { attestationsFromWire, attestationsToWire } from './attestations.js';
import { GrpcClient } from './grpc-client.js';
import { LLBBridgeCodec, type WireRef } from './messages.js';
import { bytes, len, num, str } from '../../test/wire-bytes.js';

const codec = await LLBBridgeCodec.load();
const te = new TextEncoder();

class FakeRef implements Ref {
  readonly definition: Definition;
  readonly #files: Readonly<Record<string, string>>;
  constructor(definition: Definition, files: Readonly<Record<string, string>> = {}) {
    this.definition = definition;
    this.#files = files;
  }
  async readFile(path: string): Promise<Uint8Array> {
    const f = this.#files[path];
    if (f === undefined) throw new Error(`open ${path}: no such file or directory`);
    return te.encode(f);
  }
  async readDir(): Promise<readonly FileStat[]> {
    return [];
  }
  async statFile(path: string): Promise<FileStat> {
    return { path, mode: 0o644, uid: 0, gid: 0, size: 1, modTime: 0n };
  }
}

const definitionOf = (text: string): Promise<Definition> => scratch().file(mkfile('/f', 0o644, text)).marshal();
const SPDX = 'https://spdx.dev/Document';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('Result.attestations on the wire (field 12)', () => {
  test('a bundle (kind 1) with metadata and a predicate type, an in-toto (kind 0, left unset) with a raw (1) and a self (0) subject', async () => {
    const D = encodeDefinition(await definitionOf('sbom'));
    const ref = [...str(1, 'r-sbom'), ...len(2, D)];
    const bundle = [
      ...num(1, 1),
      ...len(2, [...str(1, 'reason'), ...len(2, te.encode('sbom'))]),
      ...len(2, [...str(1, 'sbom-core'), ...len(2, te.encode('sbom'))]),
      ...len(3, ref),
      ...str(5, SPDX),
    ];
    const intoto = [...len(3, ref), ...str(4, 'out/pred.json'), ...str(5, 'https://example.com/p'), ...len(6, [...num(1, 1), ...str(2, DIGEST), ...str(3, 'bin')]), ...len(6, [])];
    const wire = bytes(len(1, [...len(3, ref), ...len(12, [...str(1, 'linux/amd64'), ...len(2, [...len(1, bundle), ...len(1, intoto)])])]));

    const m = codec.decode('ReturnRequest', wire);
    const atts = m.result?.attestations?.['linux/amd64']?.attestation;
    expect(atts).toHaveLength(2);
    expect(atts?.[0]).toMatchObject({ kind: 1, inTotoPredicateType: SPDX, ref: { id: 'r-sbom' } });
    expect(atts?.[0]?.path).toBeUndefined();
    expect(atts?.[1]?.kind).toBeUndefined();
    expect(atts?.[1]?.inTotoSubjects).toEqual([{ kind: 1, digest: [DIGEST], name: 'bin' }, { digest: [] }]);

    const refs = new Map<string, Ref>([['r-sbom', new FakeRef(await definitionOf('sbom'))]]);
    const decoded = attestationsFromWire(m.result?.attestations, (w) => refs.get(w.id ?? ''));
    const sbomRef = refs.get('r-sbom');
    expect(decoded).toEqual(
      new Map([
        [
          'linux/amd64',
          [
            { kind: 'bundle', ref: sbomRef, metadata: new Map([['reason', te.encode('sbom')], ['sbom-core', te.encode('sbom')]]), predicateType: SPDX },
            { kind: 'in-toto', ref: sbomRef, path: 'out/pred.json', predicateType: 'https://example.com/p', subjects: [{ kind: 'raw', name: 'bin', digest: [DIGEST] }, { kind: 'self' }] },
          ],
        ],
      ]),
    );

    // Encoded again: the same bytes (zero enum values and empty strings unset, as Go writes them).
    const again = attestationsToWire(decoded, (r): WireRef => ({ id: r === sbomRef ? 'r-sbom' : '?', def: encodeDefinition(r.definition) }));
    expect(codec.encode('ReturnRequest', { result: { ref: { id: 'r-sbom', def: D }, ...(again === undefined ? {} : { attestations: again }) } })).toEqual(wire);
  });

  test('an unknown kind, an unknown subject kind and a missing ref are KLN0614', () => {
    const ref = { id: 'r' };
    const known = (): Ref => new FakeRef({ def: [], metadata: new Map() });
    expect(() => attestationsFromWire({ k: { attestation: [{ kind: 2, ref }] } }, known)).toThrow(expect.objectContaining({ code: 'KLN0614', message: 'unknown attestation kind 2' }));
    expect(() => attestationsFromWire({ k: { attestation: [{ ref, inTotoSubjects: [{ kind: 7 }] }] } }, known)).toThrow(expect.objectContaining({ code: 'KLN0614', message: 'unknown in-toto subject kind 7' }));
    expect(() => attestationsFromWire({ k: { attestation: [{ kind: 1 }] } }, known)).toThrow(expect.objectContaining({ code: 'KLN0614', message: 'attestation of k comes without a ref' }));
    expect(attestationsFromWire({ k: {} }, known)).toBeUndefined();
  });
});

function streamPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

/** The gateway's interface, faked: solve gives refs over `files`; solveFrontend answers `nested`. */
function fakeClient(nested: () => FrontendResult, files: Readonly<Record<string, string>> = {}): FrontendClient {
  return {
    opts: new Map(),
    inputs: new Map(),
    solve: async ({ definition }) => new FakeRef(definition, files),
    solveFrontend: async () => nested(),
    resolveImageConfig: () => Promise.reject(new Error('no registry')),
    warn: () => undefined,
  };
}

describe('attestations across LLBBridge', () => {
  test("a nested frontend's attestations come back with readable refs; returned, the daemon gets its very refs, kinds, metadata and subjects", async () => {
    const result = new FakeRef(await definitionOf('image'), { '/app': 'x' });
    const scan = new FakeRef(await definitionOf('scan'), { 'sbom.spdx.json': '{"predicateType":"https://spdx.dev/Document"}' });
    const attestations = new Map<string, FrontendAttestation[]>([
      [
        'linux/amd64',
        [
          { kind: 'bundle', ref: scan, metadata: new Map([['reason', te.encode('sbom')]]), predicateType: SPDX },
          { kind: 'in-toto', ref: scan, path: 'sbom.spdx.json', subjects: [{ kind: 'self' }, { kind: 'raw', name: 'x', digest: [DIGEST] }] },
        ],
      ],
    ]);
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fakeClient(() => ({ ref: result, metadata: new Map(), attestations })));
    const client = await connectLLBBridge(frontendSide, {});
    const nested = await client.solveFrontend({ frontend: 'dockerfile.v0', opts: new Map([['attest:sbom', '']]) });
    const got = nested.attestations?.get('linux/amd64') ?? [];
    expect(got.map((a) => [a.kind, a.path, a.predicateType, a.subjects])).toEqual([
      ['bundle', undefined, SPDX, undefined],
      ['in-toto', 'sbom.spdx.json', undefined, [{ kind: 'self' }, { kind: 'raw', name: 'x', digest: [DIGEST] }]],
    ]);
    expect(got[0]?.metadata?.get('reason')).toEqual(te.encode('sbom'));
    // The ref crossed with its Definition, and reads through the bridge.
    expect(encodeDefinition(got[0]?.ref.definition as Definition)).toEqual(encodeDefinition(scan.definition));
    expect(new TextDecoder().decode(await got[1]?.ref.readFile('sbom.spdx.json'))).toContain('spdx');

    await client.return(nested);
    const returned = await served;
    expect(returned.ref).toBe(result);
    const back = returned.attestations?.get('linux/amd64') ?? [];
    expect(back.map((a) => a.ref)).toEqual([scan, scan]);
    expect(back[0]?.ref).toBe(scan);
    expect(back.map((a) => [a.kind, a.path, a.predicateType, a.subjects])).toEqual([
      ['bundle', undefined, SPDX, undefined],
      ['in-toto', 'sbom.spdx.json', undefined, [{ kind: 'self' }, { kind: 'raw', name: 'x', digest: [DIGEST] }]],
    ]);
  });

  test('a Return whose attestation names a ref id never handed out fails the run with KLN0614; a foreign ref is refused before sending', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fakeClient(() => ({ metadata: new Map() })));
    const grpc = new GrpcClient(frontendSide, () => []);
    const call = grpc.call(
      '/moby.buildkit.v1.frontend.LLBBridge/Return',
      codec.encode('ReturnRequest', { result: { metadata: {}, attestations: { 'linux/amd64': { attestation: [{ kind: 1, ref: { id: 'nope' } }] } } } }),
    ).catch((e: unknown) => e);
    await expect(served).rejects.toMatchObject({ code: 'KLN0614', message: 'the frontend returned an unknown ref id "nope"' });
    expect(await call).toMatchObject({ grpcCode: 13 });
    grpc.destroy();

    const [d2, f2] = streamPair();
    const served2 = serveLLBBridge(d2, fakeClient(() => ({ metadata: new Map() })));
    const client = await connectLLBBridge(f2, {});
    const own = await client.solve({ definition: await definitionOf('own') });
    const foreign = new FakeRef(await definitionOf('foreign'));
    await expect(client.return({ ref: own, metadata: new Map(), attestations: new Map([['k', [{ kind: 'bundle', ref: foreign }]]]) })).rejects.toMatchObject({ code: 'KLN0614' });
    await client.return({ ref: own, metadata: new Map() });
    expect((await served2).attestations).toBeUndefined();
  });
});
