import { describe, expect, test } from 'vitest';
import { decodeOp, digestOf, image, MountType, type Definition, type Digest, type FrontendClient, type ImageMetaResolver, type Op, type Ref } from '@kiln/llb-core';
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
function execOf(def: Definition): Extract<Op, { kind: 'exec' }> {
  const ops = def.def.map((b) => decodeOp(b));
  const exec = ops.find((o) => o.kind === 'exec' && o.exec.mounts?.some((m) => m.dest === '/run/out/') === true);
  if (exec === undefined || exec.kind !== 'exec') throw new Error('no exec op');
  return exec;
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

  // sbom.go passes llb.IgnoreCache to the Run only: the scanner image and the scanned result
  // keep their cache; without it nothing is uncached.
  test('ignoreCache marks the scan exec alone', async () => {
    const scanner = await createSBOMScanner(resolver({ os: 'linux', architecture: 'amd64', config: { Cmd: ['scan'] } }), 'reg.example/s:2');
    const uncached = async (ignoreCache: boolean): Promise<string[]> => {
      const def = await scanner('linux/amd64', { core: image('busybox').run({ args: ['true'] }).root(), ignoreCache }).marshal();
      return def.def.filter((b) => def.metadata.get(digestOf(b))?.ignoreCache === true).map((b) => {
        const op = decodeOp(b);
        return op.kind === 'exec' ? (op.exec.meta?.args ?? []).join(' ') : op.kind;
      });
    };
    expect(await uncached(true)).toEqual(['scan']);
    expect(await uncached(false)).toEqual([]);
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
  function client(opts: Record<string, string>, dockerfile = 'FROM busybox\nRUN touch /x\n') {
    const solved: Definition[] = [];
    const c: FrontendClient = {
      opts: new Map(Object.entries(opts)),
      inputs: new Map(),
      solve({ definition }) {
        solved.push(definition);
        const ref: Ref = {
          definition,
          readFile: (p) => (p === 'Dockerfile' ? Promise.resolve(enc.encode(dockerfile)) : Promise.reject(new Error(`${p}: not found`))),
          readDir: () => Promise.resolve([]),
          statFile: () => Promise.reject(new Error('not implemented')),
        };
        return Promise.resolve(ref);
      },
      warn() {},
      resolveImageConfig: (ref) =>
        Promise.resolve({ digest: DIGEST, config: enc.encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: ref.includes('scan') ? { Cmd: ['/scan'] } : {} })) }),
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

  test('multi-platform: one scan per platform key, each mounting that platform\'s result as built (same op digests)', async () => {
    const { c } = client({ platform: 'linux/amd64,linux/arm64', 'attest:sbom': 'generator=scan:1' });
    const res = await dockerfileFrontend(c);
    expect([...(res.attestations?.keys() ?? [])]).toEqual(['linux/amd64', 'linux/arm64']);
    for (const key of ['linux/amd64', 'linux/arm64']) {
      const scanDef = res.attestations?.get(key)?.[0]?.ref.definition as Definition;
      const exec = execOf(scanDef);
      const core = exec.exec.mounts?.find((m) => m.dest === '/run/src/core/sbom');
      const resultOps = (res.refs?.get(key)?.definition.def ?? []).map((b) => digestOf(b));
      expect(resultOps).toContain(exec.inputs?.[core?.input ?? -1]?.digest);
      expect(decodeOp(scanDef.def.find((b) => digestOf(b) === exec.inputs?.[core?.input ?? -1]?.digest) as Uint8Array).platform?.architecture).toBe(key.split('/')[1]);
    }
  });

  test('BUILDKIT_SBOM_SCAN_STAGE / _CONTEXT: the built stages that turn it on and the context are extras', async () => {
    const df = [
      'ARG BUILDKIT_SBOM_SCAN_CONTEXT',
      'FROM busybox AS build',
      'ARG BUILDKIT_SBOM_SCAN_STAGE=true',
      'RUN touch /built',
      'FROM busybox AS unused',
      'ARG BUILDKIT_SBOM_SCAN_STAGE=true',
      'RUN touch /unused',
      'FROM busybox AS other',
      'RUN touch /other',
      'FROM busybox',
      'COPY --from=build /built /built',
      'COPY --from=other /other /other',
      '',
    ].join('\n');
    const mounts = async (opts: Record<string, string>): Promise<[string, string | undefined][]> => {
      const { c } = client({ platform: 'linux/amd64', 'attest:sbom': 'generator=scan:1', ...opts }, df);
      const res = await dockerfileFrontend(c);
      const exec = execOf(res.attestations?.get('linux/amd64')?.[0]?.ref.definition as Definition);
      return (exec.exec.mounts ?? []).filter((m) => m.dest?.startsWith('/run/src/') === true).map((m) => [m.dest as string, exec.exec.meta?.env?.find((e) => e.startsWith('BUILDKIT_SCAN_SOURCE_EXTRAS='))]);
    };
    // The meta ARG without a value scans nothing; `unused` is not built; `other` does not ask.
    expect(await mounts({})).toEqual([
      ['/run/src/core/sbom', 'BUILDKIT_SCAN_SOURCE_EXTRAS=/run/src/extras'],
      ['/run/src/extras/sbom-build', 'BUILDKIT_SCAN_SOURCE_EXTRAS=/run/src/extras'],
    ]);
    // A build arg sets the declared ARG: the context too; a stage list names stages.
    expect((await mounts({ 'build-arg:BUILDKIT_SBOM_SCAN_CONTEXT': 'true' })).map(([m]) => m)).toEqual(['/run/src/core/sbom', '/run/src/extras/sbom-build', '/run/src/extras/sbom-context']);
    expect((await mounts({ 'build-arg:BUILDKIT_SBOM_SCAN_STAGE': 'false' })).map(([m]) => m)).toEqual(['/run/src/core/sbom']);
    expect((await mounts({ 'build-arg:BUILDKIT_SBOM_SCAN_STAGE': 'other,build' })).map(([m]) => m)).toEqual(['/run/src/core/sbom', '/run/src/extras/sbom-build']);
  });

  test('a lone stage: a declared ARG without value scans no context; =true does', async () => {
    const scanMounts = async (df: string): Promise<string[]> => {
      const { c } = client({ platform: 'linux/amd64', 'attest:sbom': 'generator=scan:1' }, df);
      const res = await dockerfileFrontend(c);
      const exec = execOf(res.attestations?.get('linux/amd64')?.[0]?.ref.definition as Definition);
      return (exec.exec.mounts ?? []).map((m) => m.dest ?? '').filter((d) => d.startsWith('/run/src/'));
    };
    expect(await scanMounts('ARG BUILDKIT_SBOM_SCAN_CONTEXT\nFROM busybox\nRUN true\n')).toEqual(['/run/src/core/sbom']);
    expect(await scanMounts('FROM busybox\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\nRUN true\n')).toEqual(['/run/src/core/sbom', '/run/src/extras/sbom-context']);
    // BuildKit clears a lone stage's name before the scan flags are read (toDispatchState:
    // `states[0].stageName = ""`), so a stage list never names it (`stage-0` neither); only an
    // empty list element matches the empty name.
    expect(await scanMounts('FROM busybox\nARG BUILDKIT_SBOM_SCAN_CONTEXT=stage-0\nRUN true\n')).toEqual(['/run/src/core/sbom']);
    expect(await scanMounts('FROM busybox AS app\nARG BUILDKIT_SBOM_SCAN_CONTEXT=app\nRUN true\n')).toEqual(['/run/src/core/sbom']);
    expect(await scanMounts('FROM busybox\nARG BUILDKIT_SBOM_SCAN_CONTEXT=x,\nRUN true\n')).toEqual(['/run/src/core/sbom', '/run/src/extras/sbom-context']);
  });
});
