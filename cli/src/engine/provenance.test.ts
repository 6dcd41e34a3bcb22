import { describe, expect, test } from 'vitest';
import { copy, decodeOp, digestOf, image, local, type Definition } from '@kiln/llb-core';
import { buildSteps, filterImagePlatforms, newInvocationId, provenancePredicate, redactCredentials, type ProvenanceCapture } from './provenance.js';

const DIGEST = 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const amd64 = { os: 'linux', architecture: 'amd64' };

/** A Dockerfile-like build: a pinned base, a RUN with a secret and the SSH agent, a COPY from the context. */
async function dockerfileLike(): Promise<Definition> {
  const ctx = local('context', { sessionId: 'sess-123', sharedKeyHint: 'context' });
  return image(`docker.io/library/busybox@${DIGEST}`)
    .run({ args: ['/bin/sh', '-c', 'echo hi > /a'], secrets: [{ id: 'tok', target: '/run/secrets/tok' }], ssh: [{}] })
    .root()
    .file(copy(ctx, '/f', '/f'))
    .marshal({ platform: 'linux/amd64' });
}

function capture(def: Definition, extra: Partial<ProvenanceCapture> = {}): ProvenanceCapture {
  return {
    frontend: 'dockerfile.v0',
    frontendOpts: new Map([
      ['filename', 'Dockerfile'],
      ['target', 'app'],
      ['build-arg:VERSION', '1.2'],
      ['label:org.example', 'x'],
      ['platform', 'linux/amd64'],
      ['image-resolve-mode', 'pull'],
      ['vcs:source', 'https://example.com/repo.git'],
      ['vcs:revision', ''],
    ]),
    definitions: [def],
    resolvedImages: [{ ref: 'docker.io/library/busybox:latest', platform: amd64, digest: DIGEST }],
    ...extra,
  };
}

const inputs = (result: Definition | undefined) => ({
  result,
  invocationId: 'abc',
  startedOn: new Date('2023-11-14T22:13:20.500Z'),
  finishedOn: new Date('2023-11-14T22:13:21Z'),
  hostPlatform: { os: 'linux', architecture: 'x86_64' },
});

type Json = Record<string, unknown>;
const parse = (b: Uint8Array): Json => JSON.parse(Buffer.from(b).toString('utf8')) as Json;

describe('provenancePredicate mode=max', () => {
  test('fields in BuildKit v0.11 order, request with ids only, materials as purls', async () => {
    const def = await dockerfileLike();
    const bytes = provenancePredicate(capture(def), { mode: 'max' }, inputs(def));
    const p = parse(bytes);
    expect(Object.keys(p)).toEqual(['builder', 'buildType', 'materials', 'invocation', 'buildConfig', 'metadata']);
    expect(p['builder']).toEqual({ id: '' });
    expect(p['buildType']).toBe('https://mobyproject.org/buildkit@v1');
    // the digest-pinned source ref gives way to the resolved name:tag (OptimizeImageSources)
    expect(p['materials']).toEqual([{ uri: 'pkg:docker/busybox@latest?platform=linux%2Famd64', digest: { sha256: DIGEST.slice(7) } }]);
    const inv = p['invocation'] as Json;
    expect(inv['configSource']).toEqual({ entryPoint: 'Dockerfile' });
    expect(inv['environment']).toEqual({ platform: 'linux/amd64' });
    const params = inv['parameters'] as Json;
    expect(Object.keys(params)).toEqual(['frontend', 'args', 'secrets', 'ssh', 'locals']);
    expect(params['frontend']).toBe('dockerfile.v0');
    // host-specific options, the filename and vcs: keys are not arguments; keys sorted
    expect(Object.keys(params['args'] as Json)).toEqual(['build-arg:VERSION', 'label:org.example', 'target']);
    expect(params['secrets']).toEqual([{ id: 'tok' }]);
    expect(params['ssh']).toEqual([{ id: 'default' }]);
    expect(params['locals']).toEqual([{ name: 'context' }]);
    const meta = p['metadata'] as Json;
    expect(Object.keys(meta)).toEqual(['buildInvocationID', 'buildStartedOn', 'buildFinishedOn', 'reproducible', 'completeness', 'https://mobyproject.org/buildkit@v1#metadata']);
    expect(meta['buildStartedOn']).toBe('2023-11-14T22:13:20.5Z');
    expect(meta['buildFinishedOn']).toBe('2023-11-14T22:13:21Z');
    expect(meta['reproducible']).toBe(false);
    // a local source makes the materials incomplete
    expect(meta['completeness']).toEqual({ parameters: true, environment: true, materials: false });
    expect((meta['https://mobyproject.org/buildkit@v1#metadata'] as Json)['vcs']).toEqual({ source: 'https://example.com/repo.git' });
    // Go's encoder escapes > in the RUN command
    expect(Buffer.from(bytes).toString()).toContain('echo hi \\u003e /a');
  });

  test('buildConfig: the LLB as steps, inputs before their users, the terminal last with "Op": null', async () => {
    const def = await dockerfileLike();
    const p = parse(provenancePredicate(capture(def), { mode: 'max' }, inputs(def)));
    const bc = p['buildConfig'] as { llbDefinition: Array<{ id: string; op: Json; inputs?: string[] }>; digestMapping: Record<string, string> };
    const steps = bc.llbDefinition;
    expect(steps.map((s) => s.id)).toEqual(['step0', 'step1', 'step2', 'step3', 'step4']);
    const [src, run, ctx, cp, term] = steps;
    expect((src?.op['Op'] as Json)['source']).toEqual({ identifier: `docker-image://docker.io/library/busybox@${DIGEST}` });
    expect(((run?.op['Op'] as Json)['exec'] as { meta: { args: string[] } }).meta.args).toEqual(['/bin/sh', '-c', 'echo hi > /a']);
    expect(run?.inputs).toEqual(['step0:0']);
    // the session-bound attrs are dropped; the op's own inputs are not in the op
    expect(JSON.stringify(ctx?.op)).not.toContain('local.session');
    expect(JSON.stringify(ctx?.op)).not.toContain('local.unique');
    expect(ctx?.op['inputs']).toBeUndefined();
    expect(cp?.inputs).toEqual(['step1:0', 'step2:0']);
    expect(term).toEqual({ id: 'step4', op: { Op: null }, inputs: ['step3:0'] });
    expect(Object.values(bc.digestMapping).sort()).toEqual(['step0', 'step1', 'step2', 'step3', 'step4']);
    expect(bc.digestMapping[digestOf(def.def[def.def.length - 1] as Uint8Array)]).toBe('step4');
  });

  test('layers of the exported result under its step; builder-id and reproducible from the request', async () => {
    const def = await dockerfileLike();
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: DIGEST as never, size: 3, annotations: { 'containerd.io/uncompressed': DIGEST } };
    const ops = def.def.map((b) => digestOf(b));
    const layers = [
      { op: ops[3] as never, output: 0, layers: [layer, layer] },
      { op: ops[0] as never, output: 0, layers: [layer] },
      { op: 'sha256:0000000000000000000000000000000000000000000000000000000000000000' as never, output: 0, layers: [layer] },
    ];
    const p = parse(provenancePredicate(capture(def), { mode: 'max', builderId: 'https://ci.example/run/1', reproducible: true }, { ...inputs(def), layers }));
    expect(p['builder']).toEqual({ id: 'https://ci.example/run/1' });
    const meta = p['metadata'] as Json;
    expect(meta['reproducible']).toBe(true);
    // by step and output, internal annotations dropped, ops outside the Definition left out
    const d = { mediaType: layer.mediaType, digest: DIGEST, size: 3 };
    const mapping = (p['buildConfig'] as { digestMapping: Record<string, string> }).digestMapping;
    const step = (i: number): string => mapping[ops[i] as string] ?? '';
    expect(step(0)).toMatch(/^step\d$/);
    expect((meta['https://mobyproject.org/buildkit@v1#metadata'] as Json)['layers']).toEqual({ [`${step(0)}:0`]: [[d]], [`${step(3)}:0`]: [[d, d]] });
  });
});

describe('provenancePredicate mode=min', () => {
  test('no buildConfig, no build args or labels (parameters then incomplete), no secrets or ssh', async () => {
    const def = await dockerfileLike();
    const p = parse(provenancePredicate(capture(def), { mode: 'min' }, inputs(def)));
    expect(p['buildConfig']).toBeUndefined();
    const params = (p['invocation'] as Json)['parameters'] as Json;
    expect(params['args']).toEqual({ target: 'app' });
    expect(params['secrets']).toBeUndefined();
    expect(params['ssh']).toBeUndefined();
    expect(params['locals']).toEqual([{ name: 'context' }]);
    expect(((p['metadata'] as Json)['completeness'] as Json)['parameters']).toBe(false);
    expect(Object.keys((p['metadata'] as Json)['https://mobyproject.org/buildkit@v1#metadata'] as Json)).toEqual(['vcs']);
  });
});

describe('sources and completeness', () => {
  test('an image-only build without network is hermetic with complete materials; an unresolved tag is not a material', async () => {
    const def = await image(`docker.io/library/alpine:3.18@${DIGEST}`).run({ shlex: 'true', network: 'none' }).root().marshal({ platform: 'linux/arm64' });
    const p = parse(provenancePredicate(capture(def, { frontendOpts: new Map(), resolvedImages: [] }), { mode: 'max' }, inputs(def)));
    expect(p['materials']).toEqual([{ uri: `pkg:docker/alpine@3.18?digest=${encodeURIComponent(DIGEST).replace('%3A', ':')}&platform=linux%2Farm64`, digest: { sha256: DIGEST.slice(7) } }]);
    expect((p['metadata'] as Json)['completeness']).toEqual({ parameters: true, environment: true, materials: true, 'https://mobyproject.org/buildkit@v1#hermetic': true });
    expect((p['invocation'] as Json)['parameters']).toEqual({ frontend: 'dockerfile.v0' });
  });

  test('http sources with a checksum and git sources at a commit are materials; configSource takes the context URL', async () => {
    const { http, git } = await import('@kiln/llb-core');
    const commit = '4b220de5058abfd01ff619c9d2ff6b09a049bea0';
    const def = await image(`busybox@${DIGEST}`)
      .file(copy(http('https://example.com/a.tgz', { checksum: DIGEST }), '/a.tgz', '/a.tgz'))
      .file(copy(git('github.com/moby/buildkit.git', commit), '/', '/src'))
      .marshal({ platform: 'linux/amd64' });
    const opts = new Map([['context', `https://github.com/moby/buildkit.git#${commit}`]]);
    const p = parse(provenancePredicate(capture(def, { frontendOpts: opts, resolvedImages: [] }), { mode: 'min' }, inputs(def)));
    expect(p['materials']).toEqual([
      { uri: `pkg:docker/busybox?digest=${DIGEST}&platform=linux%2Famd64`, digest: { sha256: DIGEST.slice(7) } },
      { uri: `https://github.com/moby/buildkit.git#${commit}`, digest: { sha1: commit } },
      { uri: 'https://example.com/a.tgz', digest: { sha256: DIGEST.slice(7) } },
    ]);
    expect((p['invocation'] as Json)['configSource']).toEqual({ uri: `https://github.com/moby/buildkit.git#${commit}`, digest: { sha1: commit } });
  });
});

test('credentials in git and http URLs never reach the materials or configSource (BuildKit >= v0.11.4 urlutil.RedactCredentials, GHSA-gc89-7gcr-jxqc)', async () => {
  const { http, git } = await import('@kiln/llb-core');
  const commit = '4b220de5058abfd01ff619c9d2ff6b09a049bea0';
  const def = await image(`busybox@${DIGEST}`)
    .file(copy(http('https://alice:hunter2@example.com/a.tgz', { checksum: DIGEST }), '/a.tgz', '/a.tgz'))
    .file(copy(git('https://ghp_tok3n@github.com/moby/buildkit.git', commit), '/', '/src'))
    .marshal({ platform: 'linux/amd64' });
  const opts = new Map([
    ['context', `https://bob:pa55@github.com/moby/buildkit.git#${commit}`],
    ['vcs:source', 'https://carol:s3cret@example.com/repo.git'],
  ]);
  const bytes = provenancePredicate(capture(def, { frontendOpts: opts, resolvedImages: [] }), { mode: 'min' }, inputs(def));
  const text = Buffer.from(bytes).toString('utf8');
  for (const secret of ['hunter2', 'ghp_tok3n', 'pa55', 's3cret', 'alice', 'bob', 'carol']) expect(text.includes(secret), secret).toBe(false);
  const p = parse(bytes);
  expect(p['materials']).toEqual([
    { uri: `pkg:docker/busybox?digest=${DIGEST}&platform=linux%2Famd64`, digest: { sha256: DIGEST.slice(7) } },
    { uri: `https://xxxxx@github.com/moby/buildkit.git#${commit}`, digest: { sha1: commit } },
    { uri: 'https://xxxxx:xxxxx@example.com/a.tgz', digest: { sha256: DIGEST.slice(7) } },
  ]);
  expect((p['invocation'] as Json)['configSource']).toEqual({ uri: `https://xxxxx:xxxxx@github.com/moby/buildkit.git#${commit}` });
  const meta = (p['metadata'] as Json)['https://mobyproject.org/buildkit@v1#metadata'] as Json;
  expect(meta['vcs']).toEqual({ source: 'https://xxxxx:xxxxx@example.com/repo.git' });
});

test('mode=max: credentials in named-context args and in the source steps of buildConfig never reach the attestation', async () => {
  const { http, git } = await import('@kiln/llb-core');
  const commit = '4b220de5058abfd01ff619c9d2ff6b09a049bea0';
  const def = await image(`busybox@${DIGEST}`)
    .file(copy(http('https://alice:hunter2@example.com/a.tgz'), '/a.tgz', '/a.tgz'))
    .file(copy(git('https://ghp_tok3n@github.com/moby/buildkit.git', commit), '/', '/src'))
    .marshal({ platform: 'linux/amd64' });
  const opts = new Map([
    ['context:extra', 'https://dave:pa55w0rd@example.com/extra.tar'],
    ['context:base', 'docker-image://busybox:latest'],
  ]);
  const bytes = provenancePredicate(capture(def, { frontendOpts: opts, resolvedImages: [] }), { mode: 'max' }, inputs(def));
  const text = Buffer.from(bytes).toString('utf8');
  for (const secret of ['hunter2', 'ghp_tok3n', 'pa55w0rd', 'alice', 'dave']) expect(text.includes(secret), secret).toBe(false);
  const p = parse(bytes);
  expect(((p['invocation'] as Json)['parameters'] as Json)['args']).toEqual({
    'context:base': 'docker-image://busybox:latest',
    'context:extra': 'https://xxxxx:xxxxx@example.com/extra.tar',
  });
  const steps = (p['buildConfig'] as Json)['llbDefinition'] as { id: string; op: { Op?: { source?: { identifier: string; attrs?: Record<string, string> } } } }[];
  const sources = steps.map((s) => s.op.Op?.source).filter((s) => s !== undefined);
  expect(sources.map((s) => s.identifier)).toContain('https://xxxxx:xxxxx@example.com/a.tgz');
  const gitStep = sources.find((s) => s.identifier.startsWith('git://'));
  expect(gitStep?.attrs?.['git.fullurl']).toBe('https://xxxxx@github.com/moby/buildkit.git');
  // The mapping still names the ops by the digests the solver ran.
  const mapping = (p['buildConfig'] as Json)['digestMapping'] as Record<string, string>;
  for (const bytes of def.def.slice(0, -1)) expect(mapping[digestOf(bytes)]).toMatch(/^step\d+$/);
});

test('redactCredentials: as BuildKit urlutil (user and password each xxxxx; not a URL: unchanged)', () => {
  expect(redactCredentials('https://user:password@host.tld/this:that')).toBe('https://xxxxx:xxxxx@host.tld/this:that');
  expect(redactCredentials('https://user@host.tld/this:that')).toBe('https://xxxxx@host.tld/this:that');
  expect(redactCredentials('https://:password@host.tld/this:that')).toBe('https://:xxxxx@host.tld/this:that');
  expect(redactCredentials('https://host.tld/this:that')).toBe('https://host.tld/this:that');
  expect(redactCredentials('https://host.tld/a@b')).toBe('https://host.tld/a@b');
  expect(redactCredentials('1https://foo.com')).toBe('1https://foo.com');
});

test('buildSteps ignores a definition without a terminal op', async () => {
  const def = await dockerfileLike();
  expect(buildSteps({ ...def, def: def.def.slice(0, -1) })).toBeUndefined();
  expect(decodeOp(def.def[def.def.length - 1] as Uint8Array).kind).toBe('none');
});

test('invocation ids are 25 base-36 characters (BuildKit identity.NewID)', () => {
  const id = newInvocationId((n) => new Uint8Array(n).fill(255));
  expect(id).toMatch(/^[0-9a-z]{25}$/);
  expect(newInvocationId((n) => new Uint8Array(n))).toBe('0'.repeat(25));
});

test('filterImagePlatforms: an image resolved for every platform counts for its own platform only', () => {
  const arm64 = { os: 'linux', architecture: 'arm64' };
  const images = [
    { ref: 'docker.io/library/busybox:latest', platform: amd64, digest: 'sha256:a' },
    { ref: 'docker.io/library/busybox:latest', platform: arm64, digest: 'sha256:b' },
    { ref: 'docker.io/tonistiigi/xx:latest', platform: amd64, digest: 'sha256:c' },
  ];
  expect(filterImagePlatforms(images, [amd64, arm64], arm64).map((i) => i.digest)).toEqual(['sha256:b', 'sha256:c']);
  expect(filterImagePlatforms(images, [amd64, arm64], amd64).map((i) => i.digest)).toEqual(['sha256:a', 'sha256:c']);
  expect(filterImagePlatforms(images, [amd64], amd64)).toHaveLength(3);
});

test('mode=max: a proxy URL with credentials (build arg and the exec step proxy env) shows without them', async () => {
  const def = await image(`busybox@${DIGEST}`)
    .run({ args: ['/bin/sh', '-c', 'true'], proxy: { httpsProxy: 'http://carol:s3cr3t@proxy.local:3128', noProxy: 'internal' } })
    .root()
    .marshal({ platform: 'linux/amd64' });
  const opts = new Map([
    ['build-arg:HTTPS_PROXY', 'http://carol:s3cr3t@proxy.local:3128'],
    ['build-arg:no_proxy', 'internal'],
    ['build-arg:VERSION', 'http://not:a-proxy@example.com'],
  ]);
  const bytes = provenancePredicate(capture(def, { frontendOpts: opts, resolvedImages: [] }), { mode: 'max' }, inputs(def));
  const text = Buffer.from(bytes).toString('utf8');
  expect(text.includes('s3cr3t'), 's3cr3t').toBe(false);
  expect(text.includes('carol'), 'carol').toBe(false);
  const p = parse(bytes);
  // Only the proxy args: another arg is the user's value as given (as BuildKit records it).
  expect(((p['invocation'] as Json)['parameters'] as Json)['args']).toEqual({
    'build-arg:HTTPS_PROXY': 'http://xxxxx:xxxxx@proxy.local:3128',
    'build-arg:VERSION': 'http://not:a-proxy@example.com',
    'build-arg:no_proxy': 'internal',
  });
  const steps = (p['buildConfig'] as Json)['llbDefinition'] as { op: { Op?: { exec?: { meta?: { proxy_env?: Json } } } } }[];
  const proxyEnv = steps.map((s) => s.op.Op?.exec?.meta?.proxy_env).find((e) => e !== undefined);
  expect(proxyEnv).toEqual({ https_proxy: 'http://xxxxx:xxxxx@proxy.local:3128', no_proxy: 'internal' });
});

test('mode=max: a proxy written without a scheme (user:pass@host:port, http:// to Go and to kiln) shows without its credentials too', async () => {
  const def = await image(`busybox@${DIGEST}`)
    .run({ args: ['/bin/sh', '-c', 'true'], proxy: { httpProxy: 'carol:s3cr3t@proxy.local:3128' } })
    .root()
    .marshal({ platform: 'linux/amd64' });
  const opts = new Map([['build-arg:http_proxy', 'carol:s3cr3t@proxy.local:3128']]);
  const bytes = provenancePredicate(capture(def, { frontendOpts: opts, resolvedImages: [] }), { mode: 'max' }, inputs(def));
  expect(Buffer.from(bytes).toString('utf8').includes('s3cr3t'), 's3cr3t').toBe(false);
  const p = parse(bytes);
  expect(((p['invocation'] as Json)['parameters'] as Json)['args']).toEqual({ 'build-arg:http_proxy': 'xxxxx:xxxxx@proxy.local:3128' });
  const steps = (p['buildConfig'] as Json)['llbDefinition'] as { op: { Op?: { exec?: { meta?: { proxy_env?: Json } } } } }[];
  expect(steps.map((s) => s.op.Op?.exec?.meta?.proxy_env).find((e) => e !== undefined)).toEqual({ http_proxy: 'xxxxx:xxxxx@proxy.local:3128' });
});
