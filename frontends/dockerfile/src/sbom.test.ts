import { describe, expect, test } from 'vitest';
import { decodeOp, digestOf, image, MountType, type Definition, type Digest, type ExecOp, type FrontendClient, type ImageMetaResolver, type Ref } from '@kiln/llb-core';
import { createSBOMScanner, DEFAULT_SBOM_GENERATOR, parseAttestOptions } from './sbom.js';
import { dockerfileFrontend } from './frontend.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest;
const enc = new TextEncoder();

function resolver(config: unknown, seen: string[] = []): ImageMetaResolver {
  return {
    resolveImageConfig: (ref) => {
      seen.push(ref);
      return Promise.resolve({ digest: DIGEST, config: enc.encode(JSON.stringify(config)) });
    },
  };
}

/** The scan's exec op (the one with the /run/out/ mount). */
function execOf(def: Definition): ExecOp & { kind: 'exec' } {
  const ops = def.def.map((b) => decodeOp(b));
  const exec = ops.find((o) => o.kind === 'exec' && o.exec.mounts?.some((m) => m.dest === '/run/out/') === true);
  if (exec === undefined || exec.kind !== 'exec') throw new Error('no exec op');
  return exec as ExecOp & { kind: 'exec' };
}

describe('parseAttestOptions (frontend/attestations Parse)', () => {
  test.for([
    ['attest:sbom', '', { sbom: { generator: DEFAULT_SBOM_GENERATOR } }],
    ['attest:sbom', 'generator=127.0.0.1:5000/scan:1', { sbom: { generator: '127.0.0.1:5000/scan:1' } }],
    ['attest:SBOM', 'generator=x,foo', { sbom: { generator: 'x', foo: '' } }],
    ['build-arg:BUILDKIT_ATTEST_SBOM', 'generator=y', { sbom: { generator: 'y' } }],
    ['attest:provenance', 'mode=max', { provenance: { mode: 'max' } }],
    ['attest:sbom', '"generator=a,b"', { sbom: { generator: 'a,b' } }],
  ] as const)('%s=%s', ([key, value, want]) => {
    const got = parseAttestOptions(new Map([[key, value], ['build-arg:X', '1']]));
    expect(Object.fromEntries([...got].map(([k, v]) => [k, Object.fromEntries(v)]))).toEqual(want);
  });

  test('a broken CSV value is refused', () => {
    expect(() => parseAttestOptions(new Map([['attest:sbom', 'generator="x']]))).toThrow(expect.objectContaining({ code: 'KLN0511' }));
  });

  test('no attest option, nothing', () => {
    expect(parseAttestOptions(new Map([['target', 'a']])).size).toBe(0);
  });
});

describe('createSBOMScanner (frontend/attestations/sbom)', () => {
  test('runs the generator as BuildKit does: mounts, env, args, cwd, step name', async () => {
    const seen: string[] = [];
    const scanner = await createSBOMScanner(resolver({ os: 'linux', architecture: 'amd64', config: { Env: ['PATH=/bin', 'A=1'], Entrypoint: ['/bin/sh'], Cmd: ['/scan.sh'] } }, seen), 'scanner');
    expect(seen).toEqual(['docker.io/library/scanner:latest']);
    const core = image('busybox');
    const ctx = image('alpine');
    const def = await scanner('linux/amd64', { core, extras: new Map([['context', ctx]]) }).marshal({ platform: 'linux/amd64' });
    const exec = execOf(def);
    expect(exec.exec.meta?.args).toEqual(['/bin/sh', '/scan.sh']);
    expect(exec.exec.meta?.cwd).toBe('/');
    expect(exec.exec.meta?.env).toEqual([
      'PATH=/bin',
      'A=1',
      'BUILDKIT_SCAN_DESTINATION=/run/out/',
      'BUILDKIT_SCAN_SOURCE=/run/src/core/sbom',
      'BUILDKIT_SCAN_SOURCE_EXTRAS=/run/src/extras',
    ]);
    // Mounts sorted by target; the root is the scanner image, the output is /run/out/ alone.
    const mounts = exec.exec.mounts ?? [];
    expect(mounts.map((m) => [m.dest, m.readonly === true, m.output ?? 0])).toEqual([
      ['/', false, 0],
      ['/run/out/', false, 1],
      ['/run/src/core/sbom', true, -1],
      ['/run/src/extras/sbom-context', true, -1],
      ['/tmp', false, -1],
    ]);
    expect(mounts.find((m) => m.dest === '/tmp')?.mountType).toBe(MountType.TMPFS);
    const inputs = exec.inputs?.map((i) => decodeOp(def.def.find((b) => digestOf(b) === i.digest) as Uint8Array)) ?? [];
    expect(inputs.map((o) => (o.kind === 'source' ? o.source.identifier : o.kind))).toEqual([
      'docker-image://docker.io/library/scanner:latest',
      'docker-image://docker.io/library/busybox:latest',
      'docker-image://docker.io/library/alpine:latest',
    ]);
    const names = [...def.metadata.values()].map((m) => m.description?.get('llb.customname')).filter((n) => n !== undefined);
    expect(names).toEqual(['[linux/amd64] generating sbom using docker.io/library/scanner:latest']);
  });

  test('without extras there is no BUILDKIT_SCAN_SOURCE_EXTRAS; WorkingDir is the cwd', async () => {
    const scanner = await createSBOMScanner(resolver({ os: 'linux', architecture: 'amd64', config: { Cmd: ['scan'], WorkingDir: '/work' } }), 'reg.example/s:2');
    const exec = execOf(await scanner('linux/arm64', { core: image('busybox'), ignoreCache: true }).marshal());
    expect(exec.exec.meta?.env).toEqual(['BUILDKIT_SCAN_DESTINATION=/run/out/', 'BUILDKIT_SCAN_SOURCE=/run/src/core/sbom']);
    expect(exec.exec.meta?.cwd).toBe('/work');
  });

  test('an image without entrypoint or cmd is refused', async () => {
    await expect(createSBOMScanner(resolver({ os: 'linux', architecture: 'amd64', config: {} }), 'scanner')).rejects.toMatchObject({ code: 'KLN0511', message: 'scanner docker.io/library/scanner:latest does not have cmd' });
  });

  test('an unresolvable default generator names the image and suggests generator=', async () => {
    const failing: ImageMetaResolver = { resolveImageConfig: () => Promise.reject(new Error('dial tcp: no route to host')) };
    await expect(createSBOMScanner(failing, DEFAULT_SBOM_GENERATOR)).rejects.toMatchObject({
      code: 'KLN0511',
      message: expect.stringContaining('docker.io/docker/buildkit-syft-scanner:stable-1') as unknown,
      hint: expect.stringContaining('generator=<image>') as unknown,
    });
  });
});

describe('dockerfileFrontend with attest:sbom', () => {
  function client(opts: Record<string, string>) {
    const solved: Definition[] = [];
    const c: FrontendClient = {
      opts: new Map(Object.entries(opts)),
      inputs: new Map(),
      solve({ definition }) {
        solved.push(definition);
        const ref: Ref = {
          definition,
          readFile: (p) => (p === 'Dockerfile' ? Promise.resolve(enc.encode('FROM busybox\nRUN touch /x\n')) : Promise.reject(new Error(`${p}: not found`))),
          readDir: () => Promise.resolve([]),
          statFile: () => Promise.reject(new Error('not implemented')),
        };
        return Promise.resolve(ref);
      },
      warn() {},
      resolveImageConfig: (ref) =>
        Promise.resolve({ digest: DIGEST, config: enc.encode(JSON.stringify({ os: 'linux', architecture: 'amd64', config: ref.includes('scan') ? { Cmd: ['/scan'] } : {} })) }),
    };
    return { c, solved };
  }

  test('the result gets a bundle attestation per platform; the build LLB is the same as without', async () => {
    const plain = client({ platform: 'linux/amd64' });
    const without = await dockerfileFrontend(plain.c);
    const withSbom = client({ platform: 'linux/amd64', 'attest:sbom': 'generator=scan:1' });
    const res = await dockerfileFrontend(withSbom.c);
    expect(without.attestations).toBeUndefined();
    expect(res.ref?.definition.def).toEqual(without.ref?.definition.def);
    const atts = res.attestations?.get('linux/amd64') ?? [];
    expect(atts.map((a) => [a.kind, a.path, a.predicateType])).toEqual([['bundle', undefined, 'https://spdx.dev/Document']]);
    expect(new TextDecoder().decode(atts[0]?.metadata?.get('sbom-core'))).toBe('sbom');
    // The scan mounts the result's own LLB at /run/src/core/sbom.
    const scanDef = atts[0]?.ref.definition as Definition;
    const exec = execOf(scanDef);
    const core = exec.exec.mounts?.find((m) => m.dest === '/run/src/core/sbom');
    const resultOps = (res.ref?.definition.def ?? []).map((b) => digestOf(b));
    expect(resultOps).toContain(exec.inputs?.[core?.input ?? -1]?.digest);
    expect(withSbom.solved).toHaveLength(plain.solved.length + 1);
  });

  test('multi-platform: one scan per platform key', async () => {
    const { c } = client({ platform: 'linux/amd64,linux/arm64', 'attest:sbom': 'generator=scan:1' });
    const res = await dockerfileFrontend(c);
    expect([...(res.attestations?.keys() ?? [])]).toEqual(['linux/amd64', 'linux/arm64']);
  });
});
