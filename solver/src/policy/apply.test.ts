import { describe, expect, test } from 'vitest';
import { decodeOp, digestOf, git, http, image, SourceMap, type Definition, type Digest, type Op, type State } from '@kiln/llb-core';
import { loadGraph } from '../llb/load.js';
import { applySourcePolicy } from './apply.js';
import { SourcePolicyEngine } from './engine.js';
import { parseSourcePolicy } from './policy.js';

const M = { platform: 'linux/amd64' } as const;
const PIN = `sha256:${'d'.repeat(64)}`;
const policy = (rules: unknown[]): SourcePolicyEngine => new SourcePolicyEngine([parseSourcePolicy(JSON.stringify({ rules }), 'policy.json')]);
const dockerfile = new SourceMap('Dockerfile', new TextEncoder().encode('FROM busybox\nRUN echo hi > /hi\n'), { language: 'Dockerfile' });
const at = (line: number) => [dockerfile.location([{ start: { line }, end: { line } }])];

function build(ref: string): State {
  return image(ref, { sourceLocations: at(1), customName: 'FROM busybox' }).run({ args: ['sh', '-c', 'echo hi > /hi'], sourceLocations: at(2), customName: 'RUN echo hi' }).root();
}
const identifiers = (def: Definition): string[] => def.def.map((b) => decodeOp(b)).flatMap((op) => (op.kind === 'source' ? [op.source.identifier ?? ''] : []));

// Unknown fields, by hand (tag = field << 3 | wire type): varint field 14, a length-delimited
// field 15 holding a marker, and a group (field 20, wire types 3 and 4) holding a varint.
const MARKER = 'kiln-unknown-marker';
const GROUP = [0xa3, 0x01, 0x08, 0x05, 0xa4, 0x01];
const EXTRA = Uint8Array.from([0x70, 0x01, 0x7a, MARKER.length, ...Buffer.from(MARKER), ...GROUP]);
const hasMarker = (b: Uint8Array): boolean => Buffer.from(b).includes(MARKER);

/**
 * Rewrites the ops `pick` selects with `f` (unknown fields added), and every digest that names a
 * rewritten op: in later ops' inputs (a digest string keeps its length, so it is replaced in
 * place), in metadata and in the source map. Ops come inputs first, so one pass is enough.
 */
function rewriteOps(def: Definition, pick: (op: Op) => boolean, f: (b: Uint8Array) => Uint8Array): Definition {
  const renamed = new Map<string, string>();
  const ops = def.def.map((b) => {
    let bytes = Buffer.from(b);
    for (const [from, to] of renamed) {
      for (let at = bytes.indexOf(from); at >= 0; at = bytes.indexOf(from, at)) bytes.write(to, at, 'latin1');
    }
    const out = pick(decodeOp(bytes)) ? f(bytes) : new Uint8Array(bytes);
    if (digestOf(out) !== digestOf(b)) renamed.set(digestOf(b), digestOf(out));
    return out;
  });
  const rename = (d: string): Digest => (renamed.get(d) ?? d) as Digest;
  const locations = def.source?.locations;
  return {
    def: ops,
    metadata: new Map([...def.metadata].map(([d, m]) => [rename(d), m])),
    ...(def.source === undefined ? {} : { source: { ...def.source, ...(locations === undefined ? {} : { locations: new Map([...locations].map(([d, l]) => [rename(d), l])) }) } }),
  };
}
const append = (b: Uint8Array): Uint8Array => Uint8Array.from([...b, ...EXTRA]);

describe('applySourcePolicy', () => {
  test('a converted source: the Definition is the one written with the converted image, op for op', async () => {
    const original = await build('busybox:latest').marshal(M);
    const target = `registry.local/team/busybox@${PIN}`;
    const converted = applySourcePolicy(original, policy([{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/busybox:latest' }, updates: { identifier: `docker-image://${target}` } }]), () => undefined);
    const direct = await build(target).marshal(M);
    // Same bytes, so the same vertex digests and cache keys as a build of the converted image.
    expect(converted.def).toEqual(direct.def);
    expect(identifiers(converted)).toEqual([`docker-image://${target}`]);
    // Every op's digest changed (the exec and the terminal through their inputs).
    const before = new Set(original.def.map(digestOf));
    expect(converted.def.map(digestOf).filter((d) => before.has(d))).toEqual([]);
    // Names, locations and the rest of the metadata moved to the new digests.
    const g = loadGraph(converted);
    const names = [...g.vertices.values()].filter((v) => v.op.kind !== 'none').map((v) => [v.name, v.options.locations?.[0]?.line]);
    expect(names).toEqual([
      ['FROM busybox', 1],
      ['RUN echo hi', 2],
    ]);
  });

  test('loadGraph applies the policy it is given; without a change the Definition is untouched', async () => {
    const def = await build('busybox:latest').marshal(M);
    const allowAll = policy([{ action: 'ALLOW', selector: { identifier: 'docker-image://*' } }]);
    expect(applySourcePolicy(def, allowAll, () => undefined)).toBe(def);
    const plain = loadGraph(def);
    const viaPolicy = loadGraph(def, { sourcePolicy: allowAll });
    expect([...viaPolicy.vertices.keys()]).toEqual([...plain.vertices.keys()]);
  });

  test('a denied source fails with the Dockerfile line of its op (source map)', async () => {
    const def = await build('busybox:latest').marshal(M);
    const deny = policy([{ action: 'DENY', selector: { identifier: 'docker-image://docker.io/library/*' } }]);
    let err: unknown;
    try {
      loadGraph(def, { sourcePolicy: deny });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'KLN0952', ruleIndex: 0, identifier: 'docker-image://docker.io/library/busybox:latest', location: { file: 'Dockerfile', line: 1, source: 'FROM busybox' } });
  });

  test('http sources: attrs added by CONVERT, DENY by scheme', async () => {
    const st = http('https://example.com/tool.tgz', { filename: 'tool.tgz' });
    const def = await st.marshal(M);
    const pinned = applySourcePolicy(def, policy([{ action: 'CONVERT', selector: { identifier: 'https://example.com/*' }, updates: { attrs: { 'http.checksum': PIN } } }]), () => undefined);
    const op = decodeOp(pinned.def[0] as Uint8Array);
    expect(op.kind === 'source' ? Object.fromEntries(op.source.attrs ?? []) : undefined).toEqual({ 'http.checksum': PIN, 'http.filename': 'tool.tgz' });
    expect(pinned.def[0]).toEqual((await http('https://example.com/tool.tgz', { filename: 'tool.tgz', checksum: PIN }).marshal(M)).def[0]);
    expect(() => loadGraph(def, { sourcePolicy: policy([{ action: 'DENY', selector: { identifier: 'https://*' } }]) })).toThrow(expect.objectContaining({ code: 'KLN0952' }));
  });

  test('git sources: a ref rewritten by a wildcard CONVERT, a host denied', async () => {
    const def = await git('https://github.com/moby/buildkit.git', 'v0.11.6').marshal(M);
    expect(identifiers(def)).toEqual(['git://github.com/moby/buildkit.git#v0.11.6']);
    const moved = applySourcePolicy(def, policy([{ action: 'CONVERT', selector: { identifier: 'git://github.com/moby/*' }, updates: { identifier: 'git://git.mirror.local/moby/${1}' } }]), () => undefined);
    expect(identifiers(moved)).toEqual(['git://git.mirror.local/moby/buildkit.git#v0.11.6']);
    expect(() => loadGraph(def, { sourcePolicy: policy([{ action: 'DENY', selector: { identifier: 'git://github.com/*' } }]) })).toThrow(expect.objectContaining({ code: 'KLN0952', identifier: 'git://github.com/moby/buildkit.git#v0.11.6' }));
  });

  test('two sources that become one op: the graph keeps it once', async () => {
    const a = image('alpine:latest');
    const b = image(`alpine:latest@${PIN}`);
    const def = await a.run({ args: ['true'], mounts: [{ target: '/b', source: b }] }).root().marshal(M);
    const out = applySourcePolicy(def, policy([{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/alpine:latest' }, updates: { identifier: `docker-image://docker.io/library/alpine:latest@${PIN}` } }]), () => undefined);
    expect(new Set(out.def.map(digestOf)).size).toBe(out.def.length);
    expect(out.def.length).toBe(def.def.length - 1);
    // The source, the exec and the terminal.
    expect(loadGraph(out).vertices.size).toBe(3);
  });

  // BuildKit v0.11.6's gogo codec (gogofaster: no XXX_unrecognized) skips unknown fields when it
  // unmarshals an op and never writes them back, so the ops loadLLB marshals again lose them.
  test('unknown fields: the ops marshaled again drop them, as BuildKit does, and match a build of the converted image', async () => {
    const target = `registry.local/team/busybox@${PIN}`;
    const original = rewriteOps(await build('busybox:latest').marshal(M), () => true, append);
    expect(original.def.every(hasMarker)).toBe(true);
    expect(loadGraph(original).vertices.size).toBe(3);
    const converted = applySourcePolicy(original, policy([{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/busybox:latest' }, updates: { identifier: `docker-image://${target}` } }]), () => undefined);
    const direct = await build(target).marshal(M);
    // The source, the exec on it and the terminal: all marshaled again, with known fields only.
    expect(converted.def).toEqual(direct.def);
    expect([...converted.metadata.keys()].sort()).toEqual([...direct.metadata.keys()].sort());
  });

  test('unknown fields: an op the conversion does not reach keeps its bytes and digest', async () => {
    const withMount = (ref: string) => image(ref).run({ args: ['true'], mounts: [{ target: '/a', source: image('alpine:latest') }] }).root();
    const original = rewriteOps(await withMount('busybox:latest').marshal(M), () => true, append);
    const alpine = original.def.find((b) => identifiers({ def: [b], metadata: new Map() })[0]?.includes('alpine')) as Uint8Array;
    expect(hasMarker(alpine)).toBe(true);
    const out = applySourcePolicy(original, policy([{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/busybox:latest' }, updates: { identifier: `docker-image://docker.io/library/busybox:latest@${PIN}` } }]), () => undefined);
    expect(out.def.filter(hasMarker)).toEqual([alpine]);
    const exec = out.def.map((b) => decodeOp(b)).find((op) => op.kind === 'exec');
    expect(exec?.inputs.map((i) => i.digest)).toContain(digestOf(alpine));
    expect(loadGraph(out).vertices.size).toBe(4);
  });

  test('a source op that starts with an unknown group field is still evaluated', async () => {
    const prepend = (b: Uint8Array): Uint8Array => Uint8Array.from([...GROUP, ...b]);
    const def = rewriteOps(await build('busybox:latest').marshal(M), (op) => op.kind === 'source', prepend);
    expect(() => loadGraph(def, { sourcePolicy: policy([{ action: 'DENY', selector: { identifier: 'docker-image://docker.io/library/*' } }]) })).toThrow(expect.objectContaining({ code: 'KLN0952', location: expect.objectContaining({ line: 1 }) }));
    const target = `docker-image://docker.io/library/busybox:latest@${PIN}`;
    const out = applySourcePolicy(def, policy([{ action: 'CONVERT', selector: { identifier: 'docker-image://docker.io/library/busybox:latest' }, updates: { identifier: target } }]), () => undefined);
    expect(identifiers(out)).toEqual([target]);
  });
});
