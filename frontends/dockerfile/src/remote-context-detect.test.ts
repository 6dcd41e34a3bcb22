import { describe, expect, test } from 'vitest';
import { copy, decodeOp, git, scratch } from '@kiln/llb-core';
import type { Definition, Digest, FrontendClient, Op, Ref } from '@kiln/llb-core';
import { parseGitRef } from './convert/git-ref.js';
import { dockerfileFrontend } from './frontend.js';
import { contextGitRef, gitContext, isRemoteContext } from './remote-context.js';

// Scheme-less github.com/ORG/REPO contexts (BuildKit v0.11 gitutil.ParseGitRef, buildx's
// urlutil.IsGitURL) and the `contextsubdir` option (BuildKit v0.11's builder scopeToSubDir).

const DIGEST = `sha256:${'cd'.repeat(32)}` as Digest;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const ops = (d: Definition): Op[] => d.def.map((b) => decodeOp(b));
const sources = (d: Definition): string[] => ops(d).flatMap((o) => (o.kind === 'source' ? [o.source.identifier ?? ''] : []));
const names = (d: Definition): string[] => [...d.metadata.values()].flatMap((m) => m.description?.get('llb.customname') ?? []);
const json = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));

/** A FrontendClient double: a git checkout holds `repo`; any other Definition (an input) holds it too. */
function client(repo: Record<string, string>, opts: Record<string, string>, inputs: ReadonlyMap<string, Definition> = new Map()) {
  const solved: Definition[] = [];
  const c: FrontendClient = {
    opts: new Map(Object.entries(opts)),
    inputs,
    solve({ definition }) {
      solved.push(definition);
      const ref: Ref = {
        definition,
        readFile: (p, o) => {
          const v = repo[p];
          if (v === undefined) return Promise.reject(new Error(`${p}: not found`));
          const b = enc(v);
          return Promise.resolve(o?.length === undefined ? b : b.subarray(0, o.length));
        },
        readDir: () => Promise.resolve([]),
        statFile: () => Promise.reject(new Error('not implemented')),
      };
      return Promise.resolve(ref);
    },
    warn() {},
    resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: enc(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { diff_ids: [DIGEST] }, config: {} })) }),
  };
  return { c, solved };
}

describe('github.com/ORG/REPO without a scheme', () => {
  test.each([
    ['github.com/moby/buildkit', true],
    ['github.com/moby/buildkit#v0.11.6:frontend', true],
    ['github.com/moby/buildkit.git', true],
    // only github.com is read so (docker's urlutil, BuildKit's gitutil): others are local paths
    ['gitlab.com/org/app', false],
    ['bitbucket.org/org/app', false],
    ['www.github.com/org/app', false],
    ['github.company.com/org/app', false],
    ['github.com', false],
  ])('isRemoteContext(%s) → %s', (ref, want) => {
    expect(isRemoteContext(ref)).toBe(want);
  });

  test('is a git source of https://github.com/…, named by the argument, with #REF:DIR', async () => {
    expect(contextGitRef('github.com/moby/buildkit#v0.11.6:frontend/dockerfile')).toEqual({ remote: 'github.com/moby/buildkit', commit: 'v0.11.6', subDir: 'frontend/dockerfile' });
    const st = gitContext('github.com/moby/buildkit#v0.11.6:frontend', false);
    if (st === undefined) return expect.fail('no git context');
    const def = await st.marshal();
    const src = ops(def).find((o) => o.kind === 'source');
    expect(src).toMatchObject({ source: { identifier: 'git://github.com/moby/buildkit#v0.11.6:frontend' } });
    expect(src?.kind === 'source' ? src.source.attrs?.get('git.fullurl') : undefined).toBe('https://github.com/moby/buildkit');
    expect(names(def)).toEqual(['[internal] load git source github.com/moby/buildkit#v0.11.6:frontend']);
    // the same op llb.Git makes of that remote, so the same cache key as BuildKit's
    const same = await git('github.com/moby/buildkit', 'v0.11.6:frontend', { customName: '[internal] load git source github.com/moby/buildkit#v0.11.6:frontend' }).marshal();
    expect(def.def).toEqual(same.def);
  });

  test('the Dockerfile frontend builds it as a remote git context', async () => {
    const { c, solved } = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n' }, { context: 'github.com/org/app#main' });
    const res = await dockerfileFrontend(c);
    expect(sources(solved[0] as Definition)).toEqual(['git://github.com/org/app#main']);
    expect(sources(res.ref?.definition as Definition)).toContain('git://github.com/org/app#main');
  });

  test('ADD and COPY --from still read it as a local path (BuildKit: IndistinguishableFromLocal)', async () => {
    expect(parseGitRef('github.com/org/app')).toBeUndefined();
    const { c } = client({ Dockerfile: 'FROM busybox\nCOPY --from=x / /x\n' }, { 'context:x': 'github.com/org/app' });
    await expect(dockerfileFrontend(c)).rejects.toMatchObject({ code: 'KLN0504', message: 'unsupported context source github.com/org/app for x' });
  });
});

describe('git or download: the callers of parseGitRef read a URL as BuildKit v0.11.6 does', () => {
  test('ADD, a named context and the main context: ?query and a bare # are downloads, .git#REF is git', async () => {
    const add = client({ Dockerfile: 'FROM busybox\nADD https://h/a.git?x=1 /a\nADD https://h/b.git# /b\nADD https://h/c.git#main /c\n' }, {});
    const addSrcs = sources((await dockerfileFrontend(add.c)).ref?.definition as Definition);
    expect(addSrcs).toEqual(expect.arrayContaining(['https://h/a.git?x=1', 'https://h/b.git#', 'git://h/c.git#main']));
    expect(addSrcs.filter((s) => s.startsWith('git://'))).toEqual(['git://h/c.git#main']);

    const named = client({ Dockerfile: 'FROM busybox\nCOPY --from=x / /x\n' }, { 'context:x': 'https://h/app.git?ref=main' });
    expect(sources((await dockerfileFrontend(named.c)).ref?.definition as Definition)).toContain('https://h/app.git?ref=main');

    expect(gitContext('https://h/app.git?ref=main', false)).toBeUndefined();
    expect(gitContext('https://h/app.git#:svc', false)).toBeDefined();
  });
});

describe('contextsubdir (BuildKit v0.11 builder: scopeToSubDir of a remote or input context)', () => {
  /** The file op that scopes the context: a copy of DIR's contents to / of scratch (COPY's go to /src/). */
  const scoping = (d: Definition): Op[] => ops(d).filter((o) => o.kind === 'file' && json(o).includes('"dest":"/",') && json(o).includes('"dirCopyContents":true'));

  test('a git context: the Dockerfile is read from the whole repository, the build context is DIR', async () => {
    const { c, solved } = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n' }, { context: 'git://example.com/app.git#main', contextsubdir: 'services/api' });
    const res = await dockerfileFrontend(c);
    // read: the git source alone
    expect(ops(solved[0] as Definition).some((o) => o.kind === 'file')).toBe(false);
    const build = res.ref?.definition as Definition;
    const scope = scoping(build);
    expect(scope).toHaveLength(1);
    expect(json(scope[0])).toContain('"src":"/services/api"');
    expect(json(scope[0])).toContain('"dest":"/"');
    // the same op BuildKit makes: llb.Scratch().File(llb.Copy(ctx, dir, "/", CopyDirContentsOnly))
    const repo = git('git://example.com/app.git', 'main', { customName: '[internal] load git source git://example.com/app.git#main' });
    const want = await scratch().file(copy(repo, 'services/api', '/', { copyDirContentsOnly: true })).marshal();
    const wantOp = ops(want).find((o) => o.kind === 'file');
    expect(json(scope[0])).toBe(json(wantOp));
  });

  test('DIR stays inside the context: .. and a leading / are cleaned away, as Go llb.Copy does', async () => {
    for (const [sub, src] of [['../../etc', '/etc'], ['/services/api/', '/services/api'], ['', '/']] as const) {
      const { c } = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n' }, { context: 'git://example.com/app.git#main', contextsubdir: sub });
      const scope = scoping((await dockerfileFrontend(c)).ref?.definition as Definition);
      expect(scope).toHaveLength(1);
      expect(json(scope[0])).toContain(`"src":"${src}"`);
    }
  });

  test('an input context is scoped too; without the option nothing is', async () => {
    const input = await git('git://example.com/lib.git', 'v1').marshal();
    const { c } = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n' }, { contextsubdir: 'pkg' }, new Map([['context', input]]));
    const res = await dockerfileFrontend(c);
    expect(scoping(res.ref?.definition as Definition)).toHaveLength(1);
    const plain = client({ Dockerfile: 'FROM busybox\nCOPY . /src\n' }, { context: 'git://example.com/app.git#main' });
    const res2 = await dockerfileFrontend(plain.c);
    expect(scoping(res2.ref?.definition as Definition)).toHaveLength(0);
  });
});
