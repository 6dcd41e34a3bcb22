import { describe, expect, test } from 'vitest';
import { decodeOp, digestOf, scratch } from '@kiln/llb-core';
import type { Digest, ImageMetaResolver, Op } from '@kiln/llb-core';
import { KilnError, formatError } from '../errors.js';
import { convertDockerfile } from './convert.js';
import type { ConvertOptions } from './options.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest;

/** A resolver double: every image is a one-layer linux image with PATH and `app` as user. */
function fakeResolver(calls: string[] = [], fail?: RegExp): ImageMetaResolver {
  return {
    resolveImageConfig(ref) {
      calls.push(ref);
      if (fail?.test(ref)) return Promise.reject(new Error('manifest unknown'));
      const config = {
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [DIGEST] },
        config: { Env: ['PATH=/bin'], WorkingDir: '/home/app', Cmd: ['sh'] },
      };
      return Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify(config)) });
    },
  };
}

async function convert(text: string, opts: ConvertOptions = {}) {
  return convertDockerfile(text, { metaResolver: fakeResolver(), targetPlatform: 'linux/amd64', sessionId: 's', ...opts });
}

const ops = (res: Awaited<ReturnType<typeof convert>>): Op[] => res.definition.def.slice(0, -1).map((b) => decodeOp(b));

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error('expected a KilnError');
}

describe('conversion errors', () => {
  test('unknown --target names the stages', async () => {
    const e = await rejection(convert('FROM busybox AS build\nFROM busybox AS final\n', { target: 'buidl' }));
    expect(e).toMatchObject({ code: 'KLN0501' });
    expect(e.message).toContain('did you mean build?');
  });

  test('COPY --from an index out of range points at the COPY', async () => {
    const e = await rejection(convert('FROM busybox\nRUN true\nCOPY --from=3 /a /b\n'));
    expect(e).toMatchObject({ code: 'KLN0501', location: { file: 'Dockerfile', line: 3, column: 1 } });
  });

  test('COPY --from cycle', async () => {
    const text = 'FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n';
    const e = await rejection(convert(text));
    expect(e).toMatchObject({ code: 'KLN0502' });
    expect(e.message).toBe('circular dependency detected on stage: a');
    expect(e.location?.line).toBe(4);
  });

  test('COPY --from a stage defined later', async () => {
    const e = await rejection(convert('FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nRUN true\n', { target: 'a' }));
    expect(e).toMatchObject({ code: 'KLN0501', location: { line: 2, column: 1 } });
  });

  test('undefined required variable ${VAR:?} names the line', async () => {
    const e = await rejection(convert('FROM busybox\nWORKDIR /src\nCOPY ${SRC:?required} /dst\n'));
    expect(e).toMatchObject({ code: 'KLN0201', location: { line: 3, column: 1 } });
    const text = formatError(e, { text: 'FROM busybox\nWORKDIR /src\nCOPY ${SRC:?required} /dst\n' });
    expect(text.split('\n')[0]).toMatch(/^Dockerfile:3:1: .*SRC: required/);
    expect(text).toContain('3 | COPY ${SRC:?required} /dst');
  });

  test('blank base name from an undefined ARG', async () => {
    const e = await rejection(convert('ARG BASE\nFROM ${BASE}\n'));
    expect(e).toMatchObject({ code: 'KLN0504', location: { line: 2, column: 1 } });
  });

  test('an image that cannot be resolved points at FROM', async () => {
    const e = await rejection(convertDockerfile('FROM busybox\n\nFROM nope/missing\nRUN x\n', { metaResolver: fakeResolver([], /missing/) }));
    expect(e).toMatchObject({ code: 'KLN0503', location: { line: 3, column: 1 } });
    expect(e.message).toContain('nope/missing: manifest unknown');
  });

  test('an unknown base image close to a well-known one is suggested', async () => {
    // BuildKit dockerfile2llb: suggest.WrapError(err, origName, append(stage names, commonImageNames()...))
    const e = await rejection(convertDockerfile('FROM alpnie:latest\nRUN x\n', { metaResolver: fakeResolver([], /alpnie/) }));
    expect(e).toMatchObject({ code: 'KLN0503', location: { line: 1, column: 1 }, hint: 'did you mean the image "alpine:latest"?' });
  });

  test('COPY --from an image that does not exist points at the flag', async () => {
    const e = await rejection(convertDockerfile('FROM busybox AS builder\nFROM busybox\nCOPY  --from=buidler /out /out\n', { metaResolver: fakeResolver([], /buidler/) }));
    expect(e).toMatchObject({ code: 'KLN0503', location: { line: 3, column: 7 }, hint: 'did you mean the stage "builder"?' });
  });

  test('invalid FROM --platform', async () => {
    const e = await rejection(convert('FROM --platform=linux/a/b/c busybox\n'));
    expect(e).toMatchObject({ code: 'KLN0505', location: { line: 1 } });
  });

  test('COPY of a URL is rejected (ADD only)', async () => {
    const e = await rejection(convert('FROM busybox\nCOPY http://example.com/x /x\n'));
    expect(e).toMatchObject({ code: 'KLN0506', location: { line: 2, column: 1 } });
  });

  test('--checksum on a non-HTTP source', async () => {
    const e = await rejection(convert('FROM busybox\nADD --checksum=sha256:abc local.txt /x\n'));
    expect(e).toMatchObject({ code: 'KLN0506', location: { line: 2 } });
  });

  test('VOLUME whose variable expands to nothing is rejected', async () => {
    // BuildKit dockerfile2llb/convert.go dispatchVolume: `if v == "" { return errors.New("VOLUME
    // specified can not be an empty string") }`, checked after expansion (the parser's own check
    // only sees the unexpanded `$EMPTY`).
    const e = await rejection(convert('FROM busybox\nARG EMPTY\nVOLUME /data $EMPTY\n'));
    expect(e).toMatchObject({ code: 'KLN0405', message: 'VOLUME specified can not be an empty string', location: { file: 'Dockerfile', line: 3, column: 1 } });
    const ok = await convert('FROM busybox\nARG DIR=/data\nVOLUME $DIR\n');
    expect((ok.imageConfig.config as { Volumes?: unknown }).Volumes).toEqual({ '/data': {} });
  });

  test('bad --chmod', async () => {
    const e = await rejection(convert('FROM busybox\nCOPY --chmod=u+x a /a\n'));
    expect(e).toMatchObject({ code: 'KLN0507', location: { line: 2 } });
  });

  test('parser errors keep their position (unknown instruction)', async () => {
    const e = await rejection(convert('FROM busybox\nRUN true\nCOPPY a b\n'));
    expect(e).toMatchObject({ code: 'KLN0401', location: { line: 3, column: 1 } });
  });

  test('a bad mount option after expansion points at the flag', async () => {
    const e = await rejection(convert('FROM busybox\nARG S=bogus\nRUN --mount=type=cache,target=/c,sharing=$S true\n'));
    expect(e).toMatchObject({ code: 'KLN0415', location: { line: 3 } });
  });

  test('a mount without target= (joined to WORKDIR /) says target= is missing, not only that "/" is invalid', async () => {
    const e = await rejection(convert('FROM busybox\nWORKDIR /\nRUN --mount=type=cache true\n'));
    expect(e).toMatchObject({ code: 'KLN0414', message: 'invalid mount target "/"', hint: expect.stringContaining('no target=: add target=/PATH') });
    const explicit = await rejection(convert('FROM busybox\nRUN --mount=type=tmpfs,target=/ true\n'));
    expect(explicit).toMatchObject({ code: 'KLN0414', hint: 'mount somewhere other than /' });
  });

  test('an inherited ONBUILD trigger that fails points at FROM', async () => {
    const resolver: ImageMetaResolver = {
      resolveImageConfig: () =>
        Promise.resolve({
          digest: DIGEST,
          config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { diff_ids: [DIGEST] }, config: { OnBuild: ['EXPOSE notaport'] } })),
        }),
    };
    const e = await rejection(convertDockerfile('# base\nFROM base\nRUN true\n', { metaResolver: resolver }));
    expect(e).toMatchObject({ code: 'KLN0405', location: { line: 2, column: 1 } });
  });

  test('empty Dockerfile', async () => {
    await expect(convert('')).rejects.toMatchObject({ code: 'KLN0508' });
  });
});

describe('conversion', () => {
  test('unreachable stages are not resolved', async () => {
    const calls: string[] = [];
    await convertDockerfile('FROM unused-image AS unused\nFROM busybox\nRUN true\n', { metaResolver: fakeResolver(calls) });
    expect(calls).toEqual(['docker.io/library/busybox:latest']);
  });

  test('the base image is pinned and its config inherited', async () => {
    const res = await convert('FROM busybox\nRUN pwd\n');
    const [img, run] = ops(res);
    expect(img).toMatchObject({ kind: 'source', source: { identifier: `docker-image://docker.io/library/busybox@${DIGEST}` } });
    expect(run).toMatchObject({ kind: 'exec', exec: { meta: { cwd: '/home/app', env: ['PATH=/bin'] } } });
    expect(res.imageConfig).toMatchObject({ config: { WorkingDir: '/home/app', Cmd: ['sh'], OnBuild: null } });
  });

  test('source map: the RUN op points at its line', async () => {
    const text = 'FROM busybox\n\nRUN echo hi\n';
    const res = await convert(text);
    const src = res.definition.source;
    expect(src?.infos?.[0]).toMatchObject({ filename: 'Dockerfile', language: 'Dockerfile' });
    const ranges = [...(src?.locations?.values() ?? [])].flatMap((l) => l.locations ?? []).flatMap((l) => l.ranges ?? []);
    expect(ranges.map((r) => r.start.line).sort()).toEqual([1, 3]);
  });

  test('build context follow paths are sorted and deduplicated', async () => {
    const res = await convert('FROM busybox\nCOPY b.txt a.txt /x/\nRUN --mount=type=bind,source=c,target=/c true\nCOPY a.txt /y\n');
    const local = ops(res).find((o) => o.kind === 'source' && o.source.identifier === 'local://context');
    expect(local?.kind === 'source' ? Object.fromEntries(local.source.attrs ?? []) : {}).toEqual({
      'local.followpaths': '["a.txt","b.txt","c"]',
      'local.session': 's',
      'local.sharedkeyhint': 'context',
    });
  });

  test('context paths known only after expansion still end up exact', async () => {
    const res = await convert('FROM busybox\nARG F=conf\nENV D=data\nCOPY $F/app.ini ${D}/ /x/\n');
    const all = ops(res);
    const local = all.find((o) => o.kind === 'source' && o.source.identifier === 'local://context');
    expect(local?.kind === 'source' ? local.source.attrs?.get('local.followpaths') : undefined).toBe('["conf/app.ini","data"]');
    // the copy reads exactly that source op (no stale context from a first guess)
    const localBytes = res.definition.def[all.indexOf(local as Op)] as Uint8Array;
    const file = all.find((o) => o.kind === 'file');
    expect(file?.inputs.map((i) => i.digest)).toContain(digestOf(localBytes));
    expect(all.filter((o) => o.kind === 'source' && o.source.identifier === 'local://context')).toHaveLength(1);
  });

  test('COPY --parents and --exclude use today\'s file-op fields', async () => {
    const res = await convert('FROM busybox\nCOPY --parents --exclude=*.tmp src/./app/*.go /out/\n');
    const file = ops(res).find((o) => o.kind === 'file');
    const action = file?.kind === 'file' ? file.file.actions?.[0]?.action : undefined;
    expect(action).toMatchObject({ kind: 'copy', copy: { src: '/src', includePatterns: ['app/*.go'], excludePatterns: ['*.tmp'] } });
  });

  test('ADD <git url> with --keep-git-dir (labs syntax always on)', async () => {
    const res = await convert('FROM busybox\nADD --keep-git-dir=true https://example.com/repo.git#v1:sub /src\n');
    const git = ops(res).find((o) => o.kind === 'source' && o.source.identifier?.startsWith('git://') === true);
    expect(git).toMatchObject({ source: { identifier: 'git://example.com/repo.git#v1:sub' } });
    expect(git?.kind === 'source' ? git.source.attrs?.get('git.keepgitdir') : undefined).toBe('true');
  });

  test('ADD --checksum pins the HTTP source', async () => {
    const sum = `sha256:${'cd'.repeat(32)}`;
    const res = await convert(`FROM busybox\nADD --checksum=${sum} https://example.com/f.tgz /f.tgz\n`);
    const src = ops(res).find((o) => o.kind === 'source' && o.source.identifier?.startsWith('https://') === true);
    expect(src?.kind === 'source' ? src.source.attrs?.get('http.checksum') : undefined).toBe(sum);
  });

  test('secret as env and a #! heredoc script', async () => {
    const res = await convert('FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN <<EOF\n#!/bin/sh\necho $TOKEN\nEOF\n');
    const exec = ops(res).find((o) => o.kind === 'exec');
    expect(exec).toMatchObject({ exec: { meta: { args: ['/bin/sh', '-c', '/dev/pipes/EOF'] }, secretenv: [{ id: 'tok', name: 'TOKEN', optional: true }] } });
    expect(exec?.kind === 'exec' ? exec.exec.mounts?.map((m) => m.dest) : []).toEqual(['/', '/dev/pipes/']);
  });

  test('named contexts replace images and the build context', async () => {
    const { local } = await import('@kiln/llb-core');
    const calls: string[] = [];
    const res = await convertDockerfile('FROM alpine\nCOPY x /x\n', {
      metaResolver: fakeResolver(calls),
      namedContexts: new Map([
        ['docker.io/library/alpine:latest', { state: local('alpine-dir') }],
        ['context', { state: local('other') }],
      ]),
    });
    expect(calls).toEqual([]);
    const ids = ops(res).flatMap((o) => (o.kind === 'source' ? [o.source.identifier] : []));
    expect(ids.sort()).toEqual(['local://alpine-dir', 'local://other']);
  });

  test('HEALTHCHECK --start-interval is kept', async () => {
    const res = await convert('FROM busybox\nHEALTHCHECK --interval=5s --start-interval=1s CMD true\n');
    expect(res.imageConfig).toMatchObject({ config: { Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 5e9, StartInterval: 1e9 } } });
  });
});

describe('SBOM scan args', () => {
  test('ARG BUILDKIT_SBOM_SCAN_STAGE / _CONTEXT stay out of the RUN environment', async () => {
    // BuildKit dockerfile2llb/convert.go: nonEnvArgs = {BUILDKIT_SBOM_SCAN_CONTEXT,
    // BUILDKIT_SBOM_SCAN_STAGE}; dispatchArg adds an ARG to the state env only when it is not one.
    const res = await convert('FROM busybox\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG BUILDKIT_SBOM_SCAN_CONTEXT\nARG OTHER=1\nRUN env\n', { buildArgs: { BUILDKIT_SBOM_SCAN_CONTEXT: 'true' } });
    const exec = ops(res).find((o) => o.kind === 'exec');
    expect(exec?.kind === 'exec' ? exec.exec.meta?.env : undefined).toEqual(['PATH=/bin', 'OTHER=1']);
  });
});

describe('no-cache', () => {
  test('only the named stage ignores the cache (RUN and COPY ops)', async () => {
    const res = await convert('FROM busybox AS a\nRUN one\nFROM busybox AS b\nRUN two\nCOPY --from=a /x /x\n', { noCache: ['b'] });
    const byName = new Map([...res.definition.metadata.values()].map((m) => [m.description?.get('llb.customname') ?? '', m.ignoreCache === true]));
    expect(byName.get('[a 2/2] RUN one')).toBe(false);
    expect(byName.get('[b 2/3] RUN two')).toBe(true);
    expect(byName.get('[b 3/3] COPY --from=a /x /x')).toBe(true);
  });

  test('a stage name in the filter matches case-insensitively, as strings.EqualFold does', async () => {
    const res = await convert('FROM busybox AS builder\nRUN one\nFROM busybox\nRUN two\nCOPY --from=builder /x /x\n', { noCache: ['BUILDER'] });
    const byName = new Map([...res.definition.metadata.values()].map((m) => [m.description?.get('llb.customname') ?? '', m.ignoreCache === true]));
    expect(byName.get('[builder 2/2] RUN one')).toBe(true);
    expect(byName.get('[stage-1 2/3] RUN two')).toBe(false);
    expect(res.unmatchedNoCache).toEqual([]);
  });

  // BuildKit ignores a name no stage has; kiln built everything from the cache without a word.
  test('a name no stage has is reported (with the stages and a near one), and the build is as without it', async () => {
    const df = 'FROM busybox AS builder\nRUN one\nFROM busybox AS final\nRUN two\n';
    const res = await convert(df, { noCache: ['bulider', 'nosuch'] });
    expect(res.unmatchedNoCache).toEqual(['no stage named "bulider" (stages: builder, final; did you mean builder?)', 'no stage named "nosuch" (stages: builder, final)']);
    expect([...res.definition.metadata.values()].some((m) => m.ignoreCache === true)).toBe(false);
    expect((await convert('FROM busybox\nRUN x\n', { noCache: ['a'] })).unmatchedNoCache).toEqual(['no stage named "a" (no stage has a name)']);
    expect((await convert(df, { noCache: true })).unmatchedNoCache).toEqual([]);
  });
});

describe('run-wide options', () => {
  test('hostname, extra hosts, shm size, ulimits, cgroup parent and forced network reach every exec', async () => {
    const res = await convert('FROM busybox\nRUN a\nRUN --network=none b\n', {
      hostname: 'builder',
      extraHosts: [{ host: 'db', ip: '10.0.0.2' }],
      shmSize: 64 * 1024 * 1024,
      ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }],
      cgroupParent: 'kiln.slice',
      forceNetworkMode: 'host',
    });
    const execs = ops(res).filter((o) => o.kind === 'exec');
    expect(execs).toHaveLength(2);
    expect(execs[0]).toMatchObject({
      exec: {
        meta: { hostname: 'builder', extraHosts: [{ host: 'db', ip: '10.0.0.2' }], cgroupParent: 'kiln.slice', ulimit: [{ name: 'nofile' }] },
        network: 1,
      },
    });
    expect(execs[1]).toMatchObject({ exec: { network: 2 } });
    const shm = execs[0]?.kind === 'exec' ? execs[0].exec.mounts?.find((m) => m.dest === '/dev/shm') : undefined;
    expect(shm).toMatchObject({ mountType: 4, tmpfsOpt: { size: 64n * 1024n * 1024n } });
  });
});

describe('ONBUILD', () => {
  test('an ONBUILD COPY --from=<image> trigger resolves that image before dispatch', async () => {
    const calls: string[] = [];
    const res = await convertDockerfile('FROM busybox AS x\nONBUILD COPY --from=example.com/assets:1 /data /data\nFROM x\nRUN ls\n', {
      metaResolver: fakeResolver(calls),
      targetPlatform: 'linux/amd64',
    });
    expect(calls.sort()).toEqual(['docker.io/library/busybox:latest', 'example.com/assets:1']);
    const ids = ops(res).flatMap((o) => (o.kind === 'source' ? [o.source.identifier] : []));
    expect(ids).toContain(`docker-image://example.com/assets:1@${DIGEST}`);
    expect(res.imageConfig).toMatchObject({ config: { OnBuild: null } });
  });
});

describe('named image contexts', () => {
  /** A resolver that knows `kiln.local/base:latest` only by name:tag (as kiln's image store). */
  function tagOnlyResolver(calls: string[]): ImageMetaResolver {
    const inner = fakeResolver(calls);
    return {
      resolveImageConfig(ref, o) {
        return ref === 'kiln.local/base:latest' ? inner.resolveImageConfig(ref, o) : (calls.push(ref), Promise.reject(new Error('not found')));
      },
    };
  }

  test('contexts are found by familiar name, a NAME::PLATFORM context first', async () => {
    // BuildKit frontend/dockerui NamedContext: name = TrimSuffix(FamiliarString(ParseNormalizedNamed(name)),
    // ":latest"), then context "name::<platforms.Format(platform)>" before "name".
    const cfg = (wd: string) => JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: { WorkingDir: wd } });
    const calls: string[] = [];
    const namedContexts = new Map([
      ['alpine', { state: scratch(), imageConfig: cfg('/plain') }],
      ['tools::linux/arm64', { state: scratch(), imageConfig: cfg('/arm') }],
      ['tools', { state: scratch(), imageConfig: cfg('/any') }],
    ]);
    const run = async (text: string, targetPlatform: string) =>
      ((await convertDockerfile(text, { metaResolver: fakeResolver(calls), targetPlatform, namedContexts })).imageConfig.config as { WorkingDir?: string }).WorkingDir;
    expect(await run('FROM docker.io/library/alpine:latest\n', 'linux/amd64')).toBe('/plain');
    expect(await run('FROM tools\n', 'linux/arm64')).toBe('/arm');
    expect(await run('FROM tools\n', 'linux/amd64')).toBe('/any');
    expect(await run('FROM busybox AS tools\nRUN false\nFROM tools\n', 'linux/arm64')).toBe('/arm');
    expect(calls).toEqual([]);
  });

  test('an image context is an image source for the platform of the stage using it', async () => {
    // BuildKit dockerui namedcontext.go: llb.Image(ref, llb.Platform(opt.Platform)) with
    // opt.Platform the stage's --platform (else the target); a stage replaced by the context
    // takes the config's platform (dockerfile2llb: ds.platform from img OS/Architecture).
    const arm = { resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'arm64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config: {} })) }) };
    const namedContexts = new Map([['base', { state: scratch(), imageRef: 'alpine' }]]);
    for (const text of ['FROM --platform=linux/arm64 base\nRUN x\n', 'FROM --platform=linux/arm64 busybox AS base\nRUN y\nFROM base\nRUN x\n']) {
      const res = await convertDockerfile(text, { metaResolver: arm, targetPlatform: 'linux/amd64', namedContexts });
      const src = ops(res).find((o) => o.kind === 'source');
      expect(src).toMatchObject({ source: { identifier: 'docker-image://docker.io/library/alpine:latest' }, platform: { os: 'linux', architecture: 'arm64' } });
      const execs = ops(res).filter((o) => o.kind === 'exec');
      expect(execs.map((o) => (o.kind === 'exec' ? [o.exec.meta?.args?.at(-1), o.platform?.architecture] : []))).toEqual([['x', 'arm64']]);
    }
  });

  test('a name:tag@digest context resolves through its name:tag record when the digest matches', async () => {
    const calls: string[] = [];
    const namedContexts = new Map([['base', { state: scratch(), imageRef: `kiln.local/base:latest@${DIGEST}` }]]);
    const res = await convertDockerfile('FROM base\nRUN pwd\n', { metaResolver: tagOnlyResolver(calls), targetPlatform: 'linux/amd64', namedContexts });
    expect(calls).toEqual([`kiln.local/base:latest@${DIGEST}`, 'kiln.local/base:latest']);
    expect(res.imageConfig).toMatchObject({ config: { WorkingDir: '/home/app', Env: ['PATH=/bin'], Cmd: ['sh'] } });

    const other = `sha256:${'cd'.repeat(32)}`;
    const bad = new Map([['base', { state: scratch(), imageRef: `kiln.local/base:latest@${other}` }]]);
    await expect(convertDockerfile('FROM base\nRUN pwd\n', { metaResolver: tagOnlyResolver([]), targetPlatform: 'linux/amd64', namedContexts: bad })).rejects.toMatchObject({
      code: 'KLN0503',
      location: { line: 1, column: 1 },
    });
  });
});

describe('ADD of a URL with credentials', () => {
  test('the download keeps them; the step name and the image history do not (an ARG-expanded token included)', async () => {
    const res = await convert('FROM busybox\nARG TOKEN\nADD https://user:${TOKEN}@example.com/f.tgz /f\nADD https://${TOKEN}@example.com/g /g\n', { buildArgs: { TOKEN: 'tok-9431' } });
    const ids = ops(res).flatMap((o) => (o.kind === 'source' ? [o.source.identifier ?? ''] : []));
    expect(ids.filter((id) => id.startsWith('https://'))).toEqual(['https://user:tok-9431@example.com/f.tgz', 'https://tok-9431@example.com/g']);
    const names = [...res.definition.metadata.values()].map((m) => m.description?.get('llb.customname') ?? '').filter((n) => n.includes('ADD'));
    expect(names).toEqual(['[2/3] ADD https://example.com/f.tgz /f', '[3/3] ADD https://example.com/g /g']);
    expect(JSON.stringify(res.imageConfig)).not.toContain('tok-9431');
    expect(res.imageConfigJson).toContain('ADD https://example.com/f.tgz /f');
  });

  // The download's own vertex is named by its identifier (progress, history records) unless it
  // has a custom name: the ADD's name was clean, that vertex showed the token.
  test('the download vertex is named without them; one without credentials keeps no custom name (as BuildKit)', async () => {
    const res = await convert('FROM busybox\nARG TOKEN\nADD https://user:${TOKEN}@example.com/f.tgz /f\nADD https://example.com/h /h\n', { buildArgs: { TOKEN: 'tok-9431' } });
    const meta = [...res.definition.metadata.values()].map((m) => m.description ?? new Map<string, string>());
    expect(meta.some((d) => [...d.values()].some((v) => v.includes('tok-9431')))).toBe(false);
    const names = meta.map((d) => d.get('llb.customname')).filter((n) => n?.startsWith('https://'));
    expect(names).toEqual(['https://example.com/f.tgz']);
  });
});
