import { describe, expect, test } from 'vitest';
import { decodeOp, defaultPlatform, formatPlatform, ResultMetadataKey } from '@kiln/llb-core';
import type { Definition, Digest, FrontendClient, Ref } from '@kiln/llb-core';
import { dockerfileFrontend } from './frontend.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest;

/** A FrontendClient double: serves one Dockerfile, records solved definitions. */
function client(files: Record<string, string>, opts: Record<string, string>, inputs: Record<string, Definition> = {}) {
  const solved: Definition[] = [];
  const c: FrontendClient = {
    opts: new Map(Object.entries(opts)),
    inputs: new Map(Object.entries(inputs)),
    solve({ definition }) {
      solved.push(definition);
      const ref: Ref = {
        definition,
        readFile: (p) => (files[p] === undefined ? Promise.reject(new Error(`${p}: not found`)) : Promise.resolve(new TextEncoder().encode(files[p]))),
        readDir: () => Promise.resolve([]),
        statFile: () => Promise.reject(new Error('not implemented')),
      };
      return Promise.resolve(ref);
    },
    warn() {},
    resolveImageConfig: () =>
      Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'arm64', rootfs: { diff_ids: [DIGEST] }, config: {} })) }),
  };
  return { c, solved };
}

describe('dockerfileFrontend', () => {
  test('reads the file named by `filename`, applies build args and target, returns the image config', async () => {
    const { c, solved } = client(
      { 'build.Dockerfile': 'FROM busybox AS a\nARG MSG\nRUN echo $MSG\nFROM busybox AS b\nRUN false\n' },
      { filename: 'build.Dockerfile', target: 'a', 'build-arg:MSG': 'hi', platform: 'linux/arm64' },
    );
    const res = await dockerfileFrontend(c);
    expect(solved).toHaveLength(3); // the Dockerfile, the context's .dockerignore, the build
    const first = solved[0] as Definition;
    const src = decodeOp(first.def[0] as Uint8Array);
    expect(src).toMatchObject({ kind: 'source', source: { identifier: 'local://dockerfile' } });
    const def = solved[2] as Definition;
    const exec = def.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ exec: { meta: { args: ['/bin/sh', '-c', 'echo $MSG'], env: expect.arrayContaining(['MSG=hi']) } }, platform: { architecture: 'arm64' } });
    const cfg = JSON.parse(new TextDecoder().decode(res.metadata.get(ResultMetadataKey.imageConfig))) as { architecture: string; history: unknown[] };
    expect(cfg.architecture).toBe('arm64');
    expect(res.ref?.definition).toBe(def);
  });

  test('a missing Dockerfile fails', async () => {
    const { c } = client({}, {});
    await expect(dockerfileFrontend(c)).rejects.toThrow('Dockerfile: not found');
  });

  test('several platforms give one ref per platform, the image configs and refs.platforms', async () => {
    const { c, solved } = client({ Dockerfile: 'FROM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH\n' }, { platform: 'linux/amd64,linux/arm64', 'no-cache': '' });
    const res = await dockerfileFrontend(c);
    expect([...(res.refs?.keys() ?? [])]).toEqual(['linux/amd64', 'linux/arm64']);
    expect(solved).toHaveLength(4);
    const arm = res.refs?.get('linux/arm64')?.definition;
    const exec = arm?.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ exec: { meta: { env: expect.arrayContaining(['TARGETARCH=arm64']) } } });
    expect([...(arm?.metadata.values() ?? [])].some((m) => m.ignoreCache === true)).toBe(true);
    const platforms = JSON.parse(new TextDecoder().decode(res.metadata.get(ResultMetadataKey.platforms))) as { platforms: { id: string }[] };
    expect(platforms.platforms.map((p) => p.id)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(res.metadata.has(`${ResultMetadataKey.imageConfig}/linux/arm64`)).toBe(true);
  });

  test('BUILDPLATFORM is the host for every target: a --platform=$BUILDPLATFORM stage is one op for both platforms', async () => {
    const host = defaultPlatform();
    const { c } = client({ Dockerfile: 'FROM --platform=$BUILDPLATFORM busybox AS b\nARG BUILDPLATFORM\nRUN echo $BUILDPLATFORM > /x\nFROM scratch\nCOPY --from=b /x /x\n' }, { platform: 'linux/amd64,linux/arm64,linux/s390x' });
    const res = await dockerfileFrontend(c);
    const execs = [...(res.refs?.values() ?? [])].map((r) => r.definition.def.slice(0, -1).find((b) => decodeOp(b).kind === 'exec'));
    expect(execs).toHaveLength(3);
    // The same op bytes (so the same digest): the solver runs the stage once for all three.
    expect(new Set(execs.map((b) => Buffer.from(b as Uint8Array).toString('hex'))).size).toBe(1);
    expect(decodeOp(execs[0] as Uint8Array)).toMatchObject({ platform: { architecture: host.architecture, os: host.os }, exec: { meta: { env: expect.arrayContaining([`BUILDPLATFORM=${formatPlatform(host)}`]) } } });
  });

  test("BUILDPLATFORM and the default target are the worker's first platform when the client names one (under buildkitd)", async () => {
    const { c } = client({ Dockerfile: 'FROM --platform=$BUILDPLATFORM busybox AS b\nARG BUILDPLATFORM TARGETPLATFORM\nRUN echo $BUILDPLATFORM $TARGETPLATFORM > /x\n' }, {});
    const worker: FrontendClient = { ...c, workerPlatforms: [{ os: 'linux', architecture: 's390x' }, { os: 'linux', architecture: 'amd64' }] };
    const res = await dockerfileFrontend(worker);
    const exec = res.ref?.definition.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ platform: { architecture: 's390x', os: 'linux' }, exec: { meta: { env: expect.arrayContaining(['BUILDPLATFORM=linux/s390x', 'TARGETPLATFORM=linux/s390x']) } } });
  });

  test("only the worker's first platform is a build platform: an image of another platform it lists does not move the default target there", async () => {
    // dockerui: buildPlatforms = [Workers[0].Platforms[0]]; dockerfile2llb's autoDetectPlatform
    // looks for the image's platform among those alone. A buildkitd with qemu lists linux/arm64
    // after its native linux/amd64: a FROM of an arm64-only image stays an amd64 stage there.
    const { c } = client({ Dockerfile: 'FROM busybox\nARG TARGETPLATFORM\nRUN echo $TARGETPLATFORM\n' }, {});
    const worker: FrontendClient = { ...c, workerPlatforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }] };
    const res = await dockerfileFrontend(worker);
    const exec = res.ref?.definition.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ platform: { architecture: 'amd64', os: 'linux' }, exec: { meta: { env: expect.arrayContaining(['TARGETPLATFORM=linux/amd64']) } } });
  });

  test('multi-platform / BUILDKIT_MULTI_PLATFORM return a platform map even for one platform', async () => {
    // BuildKit frontend/dockerui config.go: MultiPlatformRequested = len(platforms) > 1, or the
    // `multi-platform` option (the BUILDKIT_MULTI_PLATFORM build arg replaces it when non-empty),
    // parsed with strconv.ParseBool; false with several platforms is a conflict.
    const { c } = client({ Dockerfile: 'FROM busybox\nRUN true\n' }, { platform: 'linux/arm64', 'build-arg:BUILDKIT_MULTI_PLATFORM': '1' });
    const res = await dockerfileFrontend(c);
    expect(res.ref).toBeUndefined();
    expect([...(res.refs?.keys() ?? [])]).toEqual(['linux/arm64']);
    const platforms = JSON.parse(new TextDecoder().decode(res.metadata.get(ResultMetadataKey.platforms))) as { platforms: { id: string }[] };
    expect(platforms.platforms.map((p) => p.id)).toEqual(['linux/arm64']);
    expect(res.metadata.has(`${ResultMetadataKey.imageConfig}/linux/arm64`)).toBe(true);
    // the progress names carry the platform, as in a multi-platform build
    const names = [...(res.refs?.get('linux/arm64')?.definition.metadata.values() ?? [])].map((m) => m.description?.get('llb.customname') ?? '');
    expect(names.some((n) => n.startsWith('[linux/arm64 '))).toBe(true);

    const single = await dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { 'multi-platform': 'false' }).c);
    expect(single.ref).toBeDefined();
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { 'multi-platform': 'yes' }).c)).rejects.toMatchObject({ code: 'KLN0504', message: 'invalid boolean value for multi-platform: yes' });
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { platform: 'linux/amd64,linux/arm64', 'multi-platform': 'false' }).c)).rejects.toMatchObject({ code: 'KLN0504' });
  });

  test('.dockerignore patterns become the context source\'s excludes', async () => {
    const { c } = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n', '.dockerignore': '# deps\nnode_modules\n!node_modules/keep\n' }, { 'build-arg:X': '1' });
    const res = await dockerfileFrontend(c);
    const ctx = res.ref?.definition.def.map((b) => decodeOp(b)).find((o) => o.kind === 'source' && o.source.identifier === 'local://context');
    expect(ctx?.kind === 'source' ? ctx.source.attrs?.get('local.excludepatterns') : undefined).toBe('["node_modules","!node_modules/keep"]');
  });

  test('label:, add-hosts, hostname, image-resolve-mode and force-network-mode options reach the image and every RUN', async () => {
    const { c } = client(
      { Dockerfile: 'FROM busybox\nLABEL a=from-dockerfile\nRUN true\n' },
      { 'label:a': 'from-cli', 'label:org.example.b': 'two', 'add-hosts': 'db=10.0.0.5,cache:10.0.0.6', hostname: 'builder', 'image-resolve-mode': 'pull', 'force-network-mode': 'none' },
    );
    const res = await dockerfileFrontend(c);
    const cfg = JSON.parse(new TextDecoder().decode(res.metadata.get(ResultMetadataKey.imageConfig))) as { config: { Labels: Record<string, string> } };
    expect(cfg.config.Labels).toEqual({ a: 'from-cli', 'org.example.b': 'two' });
    const ops = res.ref?.definition.def.map((b) => decodeOp(b)) ?? [];
    const exec = ops.find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ exec: { network: 2, meta: { hostname: 'builder', extraHosts: [{ host: 'db', ip: '10.0.0.5' }, { host: 'cache', ip: '10.0.0.6' }] } } });
    const img = ops.find((o) => o.kind === 'source' && o.source.identifier?.startsWith('docker-image://') === true);
    expect(img?.kind === 'source' ? img.source.attrs?.get('image.resolvemode') : undefined).toBe('pull');
  });

  test('BUILDKIT_CACHE_MOUNT_NS and BUILDKIT_SANDBOX_HOSTNAME build args are read as dockerui options', async () => {
    // BuildKit frontend/dockerui/config.go: `bc.CacheIDNamespace = opts["build-arg:BUILDKIT_CACHE_MOUNT_NS"]`
    // and a non-empty `build-arg:BUILDKIT_SANDBOX_HOSTNAME` replaces `hostname`; dockerfile2llb
    // names a cache mount `<namespace>/<id>` (dispatchRunMounts).
    const { c } = client(
      { Dockerfile: 'FROM busybox\nRUN --mount=type=cache,id=deps,target=/deps --mount=type=cache,target=/var/cache true\n' },
      { 'build-arg:BUILDKIT_CACHE_MOUNT_NS': 'team-a', 'build-arg:BUILDKIT_SANDBOX_HOSTNAME': 'sandbox', hostname: 'builder' },
    );
    const res = await dockerfileFrontend(c);
    const exec = res.ref?.definition.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    const caches = exec?.kind === 'exec' ? (exec.exec.mounts ?? []).filter((m) => m.mountType === 3).map((m) => m.cacheOpt?.id) : [];
    expect(caches).toEqual(['team-a/deps', 'team-a//var/cache']);
    expect(exec).toMatchObject({ exec: { meta: { hostname: 'sandbox' } } });
  });

  test('bad add-hosts or resolve mode values are errors that say what to pass', async () => {
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { 'add-hosts': 'db' }).c)).rejects.toMatchObject({ code: 'KLN0504', hint: expect.stringContaining('HOST=IP') });
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { 'image-resolve-mode': 'always' }).c)).rejects.toMatchObject({ code: 'KLN0504' });
    // dockerui parses `ulimit` with docker/go-units ParseUlimit: "invalid ulimit type: %s" for a
    // name outside its table (core, cpu, … nofile, nproc, … stack).
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\nRUN true\n' }, { ulimit: 'nofile=10,openfiles=5' }).c)).rejects.toMatchObject({ code: 'KLN0504', message: 'invalid ulimit type: openfiles' });
  });

  test('context:NAME=docker-image://REF brings the image config, resolved for the stage platform', async () => {
    // BuildKit frontend/dockerui namedcontext.go (docker-image://): ResolveImageConfig of the
    // TagNameOnly reference for the requested platform, then the converter uses that config as
    // the stage's image (Env, WorkingDir, User, Cmd inherited); `scratch` is an empty context.
    const calls: string[] = [];
    const cfg = { os: 'linux', architecture: 'amd64', rootfs: { diff_ids: [DIGEST] }, config: { Env: ['PATH=/opt/bin', 'FROM_CTX=1'], WorkingDir: '/srv', User: 'app', Cmd: ['serve'] } };
    const make = (dockerfile: string, opts: Record<string, string>) => {
      const { c } = client({ Dockerfile: dockerfile }, opts);
      return {
        ...c,
        resolveImageConfig: (ref: string, o: { platform?: { os: string; architecture: string } }) => {
          calls.push(`${ref} ${o.platform?.os ?? ''}/${o.platform?.architecture ?? ''}`);
          return Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify(cfg)) });
        },
      } satisfies FrontendClient;
    };
    const res = await dockerfileFrontend(make('FROM base\nRUN pwd\n', { 'context:base': 'docker-image://alpine:3.18', platform: 'linux/amd64' }));
    expect(calls).toEqual(['docker.io/library/alpine:3.18 linux/amd64']);
    const img = JSON.parse(new TextDecoder().decode(res.metadata.get(ResultMetadataKey.imageConfig))) as { config: Record<string, unknown> };
    expect(img.config).toMatchObject({ Env: ['PATH=/opt/bin', 'FROM_CTX=1'], WorkingDir: '/srv', User: 'app', Cmd: ['serve'] });
    const exec = res.ref?.definition.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ exec: { meta: { cwd: '/srv', user: 'app', env: ['PATH=/opt/bin', 'FROM_CTX=1'] } } });

    // A stage replaced by the context (by its AS name) gets the config too.
    calls.length = 0;
    const staged = await dockerfileFrontend(make('FROM busybox AS base\nRUN false\nFROM base\nCMD ["x"]\n', { 'context:base': 'docker-image://alpine' }));
    expect(calls).toEqual([expect.stringMatching(/^docker\.io\/library\/alpine:latest /)]);
    const img2 = JSON.parse(new TextDecoder().decode(staged.metadata.get(ResultMetadataKey.imageConfig))) as { config: Record<string, unknown> };
    expect(img2.config).toMatchObject({ Env: ['PATH=/opt/bin', 'FROM_CTX=1'], WorkingDir: '/srv', User: 'app', Cmd: ['x'] });

    calls.length = 0;
    const empty = await dockerfileFrontend(make('FROM base\nCOPY a /a\n', { 'context:base': 'docker-image://scratch' }));
    expect(calls).toEqual([]);
    const img3 = JSON.parse(new TextDecoder().decode(empty.metadata.get(ResultMetadataKey.imageConfig))) as { config: Record<string, unknown> };
    expect(img3.config).toMatchObject({ WorkingDir: '/' });
    expect(empty.ref?.definition.def.map((b) => decodeOp(b)).some((o) => o.kind === 'source' && o.source.identifier?.startsWith('docker-image://') === true)).toBe(false);
  });

  test('context:NAME=local:SOURCE excludes what that directory\'s own .dockerignore lists', async () => {
    // BuildKit frontend/dockerui namedcontext.go (local): a first local source following only
    // .dockerignore is read, then the context is llb.Local(SOURCE, ExcludePatterns(those),
    // SharedKeyHint("context:NAME")).
    const { c } = client({ Dockerfile: 'FROM busybox\nCOPY --from=assets . /assets\n' }, { 'context:assets': 'local:assets' });
    const files: Record<string, Record<string, string>> = { assets: { '.dockerignore': '*.tmp\n!keep.tmp\n' }, dockerfile: { Dockerfile: 'FROM busybox\nCOPY --from=assets . /assets\n' } };
    const solve: FrontendClient['solve'] = ({ definition }) => {
      const src = decodeOp(definition.def[0] as Uint8Array);
      const name = src.kind === 'source' ? (src.source.identifier ?? '').replace('local://', '') : '';
      const own = files[name] ?? {};
      const ref: Ref = {
        definition,
        readFile: (p) => (own[p] === undefined ? Promise.reject(new Error(`${p}: not found`)) : Promise.resolve(new TextEncoder().encode(own[p]))),
        readDir: () => Promise.resolve([]),
        statFile: () => Promise.reject(new Error('not implemented')),
      };
      return Promise.resolve(ref);
    };
    const res = await dockerfileFrontend({ ...c, solve });
    const srcs = res.ref?.definition.def.map((b) => decodeOp(b)).filter((o) => o.kind === 'source' && o.source.identifier === 'local://assets') ?? [];
    expect(srcs).toHaveLength(1);
    const attrs = srcs[0]?.kind === 'source' ? srcs[0].source.attrs : undefined;
    expect(attrs?.get('local.excludepatterns')).toBe('["*.tmp","!keep.tmp"]');
    expect(attrs?.get('local.sharedkeyhint')).toBe('context:assets');
  });

  test('context:NAME=git… and https://… are git sources (keeping .git) or an HTTP download', async () => {
    // BuildKit frontend/dockerui namedcontext.go: "git" (and git@ without protocol) →
    // DetectGitContext(v, true) = llb.Git(remote, ref[:subdir], KeepGitDir); "http"/"https" →
    // DetectGitContext, else llb.HTTP(v); any other scheme is "unsupported context source".
    const dockerfile = 'FROM busybox\nCOPY --from=src / /src\nCOPY --from=tool / /tool\n';
    const { c } = client({ Dockerfile: dockerfile }, { 'context:src': 'https://example.com/org/repo.git#v1:sub', 'context:tool': 'https://example.com/tool.tar' });
    const res = await dockerfileFrontend(c);
    const sources = (res.ref?.definition.def.map((b) => decodeOp(b)) ?? []).flatMap((o) => (o.kind === 'source' ? [o.source] : []));
    const gitSrc = sources.find((s) => s.identifier?.startsWith('git://') === true);
    expect(gitSrc?.identifier).toBe('git://example.com/org/repo.git#v1:sub');
    expect(gitSrc?.attrs?.get('git.keepgitdir')).toBe('true');
    expect(sources.some((s) => s.identifier === 'https://example.com/tool.tar')).toBe(true);

    const ssh = await dockerfileFrontend(client({ Dockerfile: 'FROM busybox\nCOPY --from=src / /src\n' }, { 'context:src': 'git@github.com:org/repo.git' }).c);
    const sshSrc = (ssh.ref?.definition.def.map((b) => decodeOp(b)) ?? []).find((o) => o.kind === 'source' && o.source.identifier?.startsWith('git://') === true);
    expect(sshSrc?.kind === 'source' ? sshSrc.source.identifier : undefined).toBe('git://github.com/org/repo.git');
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM busybox\n' }, { 'context:src': 'ftp://example.com/x' }).c)).rejects.toMatchObject({ code: 'KLN0504' });
  });

  test('a `context` input is the main context (dockerui inputs["context"]): COPY reads it, no local context is asked for', async () => {
    const llb = await import('@kiln/llb-core');
    const made = await llb.image('alpine').run({ args: ['/bin/sh', '-c', 'echo made > /app.txt'] }).root().marshal();
    const { c } = client({ Dockerfile: 'FROM scratch\nCOPY app.txt /\n' }, {}, { context: made });
    const res = await dockerfileFrontend(c);
    const ops = res.ref?.definition.def.map((b) => decodeOp(b)) ?? [];
    expect(ops.some((o) => o.kind === 'exec' && o.exec.meta?.args?.at(-1) === 'echo made > /app.txt')).toBe(true);
    expect(ops.some((o) => o.kind === 'source' && o.source.identifier?.startsWith('local://') === true)).toBe(false);
  });

  test('context:NAME=input:X takes the Definition the client passed as input X, with its image config', async () => {
    const base = await (await import('@kiln/llb-core')).image('alpine').run({ args: ['/bin/sh', '-c', 'echo built > /made'] }).root().marshal();
    const meta = JSON.stringify({ [ResultMetadataKey.imageConfig]: Buffer.from(JSON.stringify({ config: { Env: ['FROM_INPUT=1'], WorkingDir: '/w' } })).toString('base64') });
    const { c } = client({ Dockerfile: 'FROM base\nRUN pwd\n' }, { 'context:base': 'input:basedef', 'input-metadata:basedef': meta }, { basedef: base });
    const res = await dockerfileFrontend(c);
    const ops = res.ref?.definition.def.map((b) => decodeOp(b)) ?? [];
    const execs = ops.filter((o) => o.kind === 'exec');
    expect(execs.map((o) => (o.kind === 'exec' ? o.exec.meta?.args?.at(-1) : ''))).toEqual(expect.arrayContaining(['echo built > /made', 'pwd']));
    const pwd = execs.find((o) => o.kind === 'exec' && o.exec.meta?.args?.at(-1) === 'pwd');
    expect(pwd).toMatchObject({ exec: { meta: { cwd: '/w', env: expect.arrayContaining(['FROM_INPUT=1']) } } });
    await expect(dockerfileFrontend(client({ Dockerfile: 'FROM base\n' }, { 'context:base': 'input:nope' }).c)).rejects.toMatchObject({ code: 'KLN0504' });
  });
});
