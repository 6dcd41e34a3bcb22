import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeOp } from '@kiln/llb-core';
import type { Definition, Digest, FrontendClient, Op, Ref, SolveFrontendRequest } from '@kiln/llb-core';
import { dockerfileFrontend } from './frontend.js';
import { isArchive, isRemoteContext, redactUrl } from './remote-context.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as Digest;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const ops = (d: Definition): Op[] => d.def.map((b) => decodeOp(b));
const sources = (d: Definition): string[] => ops(d).flatMap((o) => (o.kind === 'source' ? [o.source.identifier ?? ''] : []));
const names = (d: Definition): string[] => [...d.metadata.values()].flatMap((m) => m.description?.get('llb.customname') ?? []);

/**
 * A FrontendClient double for remote contexts: what a solved Definition holds depends on its
 * sources (an unpacking file op, a download, a git checkout, a local source).
 */
function client(files: { git?: Record<string, string>; http?: Uint8Array; archive?: Record<string, string>; local?: Record<string, string> }, opts: Record<string, string>) {
  const solved: Definition[] = [];
  const forwarded: SolveFrontendRequest[] = [];
  const c: FrontendClient = {
    opts: new Map(Object.entries(opts)),
    inputs: new Map(),
    solve({ definition }) {
      solved.push(definition);
      const src = sources(definition);
      const unpacked = ops(definition).some((o) => o.kind === 'file');
      const tree: Record<string, Uint8Array> = {};
      const put = (fs: Record<string, string> | undefined): void => void Object.entries(fs ?? {}).forEach(([k, v]) => (tree[k] = enc(v)));
      if (unpacked) put(files.archive);
      else if (src.some((s) => s.startsWith('git://'))) put(files.git);
      else if (src.some((s) => /^https?:\/\//.test(s)) && files.http !== undefined) tree['context'] = files.http;
      else if (src.some((s) => s.startsWith('local://'))) put(files.local);
      const ref: Ref = {
        definition,
        readFile: (p, o) => {
          const b = tree[p];
          if (b === undefined) return Promise.reject(new Error(`${p}: not found`));
          return Promise.resolve(o?.length === undefined ? b : b.subarray(0, o.length));
        },
        readDir: () => Promise.resolve([]),
        statFile: () => Promise.reject(new Error('not implemented')),
      };
      return Promise.resolve(ref);
    },
    solveFrontend(req) {
      forwarded.push(req);
      return Promise.resolve({ metadata: new Map() });
    },
    warn() {},
    resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: enc(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { diff_ids: [DIGEST] }, config: {} })) }),
  };
  return { c, solved, forwarded };
}

describe('isRemoteContext (buildx IsRemoteURL)', () => {
  test.each([
    ['https://github.com/moby/buildkit.git#master', true],
    ['https://github.com/moby/buildkit.git#v0.11.6:frontend', true],
    ['https://example.com/ctx.tar.gz', true],
    ['http://127.0.0.1:8080/Dockerfile', true],
    ['git://127.0.0.1/app.git', true],
    ['ssh://git@example.com/app.git#main', true],
    ['git@github.com:moby/buildkit.git', true],
    ['app', false],
    ['./app', false],
    ['/srv/app', false],
    ['-', false],
    ['ftp://example.com/ctx.tar', false],
  ])('%s → %s', (ref, want) => {
    expect(isRemoteContext(ref)).toBe(want);
  });
});

test.each([
  ['https://user:s3cret@example.com/app.git#main', 'https://example.com/app.git#main'],
  ['https://ghp_token@github.com/org/app.git', 'https://github.com/org/app.git'],
  ['ssh://git@example.com/app.git', 'ssh://git@example.com/app.git'],
  ['ssh://git:pw@example.com/app.git', 'ssh://git@example.com/app.git'],
  ['git@example.com:org/app.git', 'git@example.com:org/app.git'],
  // the user info ends at the authority's last @, as Go's url.Parse and WHATWG URL read it
  ['https://user:p@ss@example.com/app.git', 'https://example.com/app.git'],
  ['ssh://git:p@ss@example.com/app.git', 'ssh://git@example.com/app.git'],
  ['https://example.com/org/@scope/app.tar.gz', 'https://example.com/org/@scope/app.tar.gz'],
  ['https://example.com/app.git#main:dir@x', 'https://example.com/app.git#main:dir@x'],
])('redactUrl(%s) = %s', (url, want) => {
  expect(redactUrl(url)).toBe(want);
});

describe('isArchive (dockerui: bzip2/gzip/xz magic or a tar header)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-remote-ctx-'));
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\n');
  const tarOf = (flag: string): Uint8Array => {
    execFileSync('tar', ['-C', dir, ...(flag === '' ? [] : [flag]), '-cf', join(dir, 'out'), 'Dockerfile']);
    return readFileSync(join(dir, 'out')).subarray(0, 1024);
  };
  test('tar made by tar(1): plain, gzip, bzip2, xz', () => {
    for (const flag of ['', '-z', '-j', '-J']) expect(isArchive(tarOf(flag))).toBe(true);
  });
  test('a Dockerfile, an empty file, a zero block, a zstd tar are not archives', () => {
    expect(isArchive(enc('FROM busybox\nRUN true\n'.padEnd(1024, '#')))).toBe(false);
    expect(isArchive(new Uint8Array(0))).toBe(false);
    expect(isArchive(new Uint8Array(1024))).toBe(false);
    expect(isArchive(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0]))).toBe(false);
    // a tar header with one byte changed fails its checksum
    const broken = Uint8Array.from(tarOf(''));
    broken[0] = (broken[0] as number) ^ 1;
    expect(isArchive(broken)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('a remote main context (the `context` option)', () => {
  test('a git URL: one git source (REF:DIR, named as BuildKit names it) holds the Dockerfile and is the context', async () => {
    const url = 'https://example.com/org/app.git#v1:sub';
    const { c, solved } = client({ git: { Dockerfile: 'FROM busybox\nCOPY . /src\n' } }, { context: url });
    const res = await dockerfileFrontend(c);
    // no .dockerignore read: a remote context excludes nothing
    expect(solved).toHaveLength(2);
    const first = solved[0] as Definition;
    const src = ops(first).find((o) => o.kind === 'source');
    expect(src).toMatchObject({ source: { identifier: 'git://example.com/org/app.git#v1:sub' } });
    const attrs = src?.kind === 'source' ? src.source.attrs : undefined;
    expect(attrs?.get('git.fullurl')).toBe('https://example.com/org/app.git');
    expect(attrs?.has('git.keepgitdir')).toBe(false);
    expect(names(first)).toEqual([`[internal] load git source ${url}`]);
    const build = res.ref?.definition as Definition;
    expect(sources(build).filter((s) => !s.startsWith('docker-image://'))).toEqual(['git://example.com/org/app.git#v1:sub']);
    // the same op as the one the Dockerfile was read from: one vertex, one fetch
    expect(build.def).toContainEqual(first.def[0]);
  });

  test('BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 keeps .git; -f is relative to the repository', async () => {
    const { c, solved } = client({ git: { 'docker/app.Dockerfile': 'FROM busybox\nCOPY . /src\n' } }, { context: 'git@example.com:org/app.git', filename: 'docker/app.Dockerfile', 'build-arg:BUILDKIT_CONTEXT_KEEP_GIT_DIR': '1' });
    await dockerfileFrontend(c);
    const src = ops(solved[0] as Definition).find((o) => o.kind === 'source');
    expect(src).toMatchObject({ source: { identifier: 'git://example.com/org/app.git' } });
    const attrs = src?.kind === 'source' ? src.source.attrs : undefined;
    expect(attrs?.get('git.keepgitdir')).toBe('true');
    // an ssh remote forwards the default agent (kiln build --ssh default)
    expect(attrs?.get('git.mountsshsock')).toBe('default');
  });

  test('a downloaded tarball is unpacked into scratch and is the context', async () => {
    const { c, solved } = client({ http: new Uint8Array([0x1f, 0x8b, 0x08, 0, 0]), archive: { Dockerfile: 'FROM busybox\nCOPY app /app\n' } }, { context: 'https://example.com/ctx.tar.gz' });
    const res = await dockerfileFrontend(c);
    const download = ops(solved[0] as Definition).find((o) => o.kind === 'source');
    expect(download).toMatchObject({ source: { identifier: 'https://example.com/ctx.tar.gz' } });
    expect(download?.kind === 'source' ? download.source.attrs?.get('http.filename') : undefined).toBe('context');
    expect(names(solved[0] as Definition)).toEqual(['[internal] load remote build context']);
    const build = res.ref?.definition as Definition;
    const unpack = ops(build).find((o) => o.kind === 'file' && JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('"src":"/context"'));
    expect(unpack).toBeDefined();
    expect(JSON.stringify(unpack, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toContain('"attemptUnpackDockerCompatibility":true');
  });

  test('a downloaded file that is no archive is the Dockerfile (named `context`), whatever -f says', async () => {
    const { c } = client({ http: enc('FROM busybox\nRUN echo bare\n') }, { context: 'http://example.com/Dockerfile', filename: 'other/Dockerfile' });
    const res = await dockerfileFrontend(c);
    const build = res.ref?.definition as Definition;
    expect(ops(build).some((o) => o.kind === 'exec')).toBe(true);
    expect(ops(build).some((o) => o.kind === 'file')).toBe(false);
  });

  test('a downloaded web page is named for what it is, not parsed as a Dockerfile', async () => {
    const { c } = client({ http: enc('<!DOCTYPE html>\n<html><body>GitHub</body></html>\n') }, { context: 'https://tok@example.com/org/app/blob/main/Dockerfile' });
    await expect(dockerfileFrontend(c)).rejects.toMatchObject({
      code: 'KLN0504',
      message: 'the build context https://example.com/org/app/blob/main/Dockerfile is neither a tar archive (plain, gzip, bzip2, xz) nor a Dockerfile: it starts with "<!DOCTYPE html>"',
    });
    // a Dockerfile with comments, directives and blank lines first, in any case, still builds
    const ok = client({ http: enc('# syntax=docker/dockerfile:1\n\n# base\nfrom busybox\n') }, { context: 'https://example.com/Dockerfile' });
    const { solveFrontend: _forwarding, ...noForwarding } = ok.c;
    await expect(dockerfileFrontend(noForwarding)).resolves.toBeDefined();
  });

  test('a downloaded Dockerfile cannot be built with the client\'s Dockerfile (BuildKit reads that as `context` and fails)', async () => {
    const { c } = client({ http: enc('FROM busybox\n'), local: { Dockerfile: 'FROM busybox\n' } }, { context: 'http://example.com/Dockerfile', dockerfilekey: 'dockerfile' });
    await expect(dockerfileFrontend(c)).rejects.toMatchObject({ code: 'KLN0504', message: 'the build context http://example.com/Dockerfile is a Dockerfile, not an archive: it cannot be built with another Dockerfile' });
  });

  test('dockerfilekey: the Dockerfile is the client\'s local source, the context stays remote', async () => {
    const { c, solved } = client({ local: { Dockerfile: 'FROM busybox\nCOPY . /src\n' } }, { context: 'git://example.com/app.git', dockerfilekey: 'dockerfile' });
    const res = await dockerfileFrontend(c);
    expect(sources(solved[0] as Definition)).toEqual(['local://dockerfile']);
    expect(sources(res.ref?.definition as Definition)).toContain('git://example.com/app.git');
  });

  test('a missing Dockerfile names the URL without its credentials, and the subdirectory', async () => {
    const { c } = client({ git: {} }, { context: 'https://user:s3cret@example.com/app.git#main:svc' });
    const err = await dockerfileFrontend(c).then(
      () => expect.fail('the build should fail'),
      (e: unknown) => e as Error & { code?: string; hint?: string },
    );
    expect(err).toMatchObject({ code: 'KLN0504' });
    expect(err.message).toBe('the build context https://example.com/app.git#main:svc has no Dockerfile in its subdirectory svc');
    expect(err.message).not.toContain('s3cret');
    expect(err.hint).toContain('-f PATH');
  });

  test('the git step is named without the URL\'s credentials', async () => {
    const { c, solved } = client({ git: { Dockerfile: 'FROM busybox\n' } }, { context: 'https://user:s3cret@example.com/app.git' });
    await dockerfileFrontend(c);
    expect(names(solved[0] as Definition)).toEqual(['[internal] load git source https://example.com/app.git']);
  });

  test('a lowercase dockerfile is read when there is no Dockerfile, as BuildKit does', async () => {
    const { c } = client({ git: { dockerfile: 'FROM busybox\n' } }, { context: 'git://example.com/app.git' });
    await expect(dockerfileFrontend(c)).resolves.toBeDefined();
  });

  test('a # syntax= in the remote Dockerfile forwards to that frontend with the same context option', async () => {
    const { c, forwarded } = client({ git: { Dockerfile: '# syntax=example.com/my/frontend:1 --flag\nFROM busybox\n' } }, { context: 'git://example.com/app.git' });
    await dockerfileFrontend(c);
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]?.frontend).toBe('example.com/my/frontend:1');
    expect(forwarded[0]?.opts.get('cmdline')).toBe('example.com/my/frontend:1 --flag');
    expect(forwarded[0]?.opts.get('source')).toBe('example.com/my/frontend:1');
    expect(forwarded[0]?.opts.get('context')).toBe('git://example.com/app.git');
  });

  test('a failed download or checkout names the URL without its credentials, in the message and the cause', async () => {
    // the http source's own error text carries the URL as it was given (review of 865a75d/0c61a24)
    for (const url of ['http://user:s3cret@example.com/ctx.tar', 'https://tok3n@example.com/app.git#main']) {
      const { c } = client({}, { context: url });
      const raw = url.replace(/#.*/, '');
      const failing: FrontendClient = { ...c, solve: () => Promise.reject(new Error(`failed to fetch ${raw}: HTTP 404`)) };
      const err = await dockerfileFrontend(failing).then(
        () => expect.fail('the build should fail'),
        (e: unknown) => e as Error,
      );
      expect(err).toMatchObject({ code: 'KLN0504' });
      expect(err.message).toContain(`failed to fetch ${redactUrl(raw)}: HTTP 404`);
      for (let cur: unknown = err; cur instanceof Error; cur = cur.cause) {
        expect(cur.message).not.toMatch(/s3cret|tok3n/);
      }
    }
  });

  test('a named context URL: its download step and a refusal name it without credentials (review of 89048a4)', async () => {
    const local = { Dockerfile: 'FROM busybox\nCOPY --from=x f.txt /\n' };
    const { c } = client({ local }, { 'context:x': 'https://user:s3cret@example.com/f.txt' });
    const res = await dockerfileFrontend(c);
    expect(names(res.ref?.definition as Definition)).toContain('[context x] https://example.com/f.txt');
    const refused = client({ local }, { 'context:x': 'ssh://user:s3cret@example.com/app.git' }).c;
    const err = await dockerfileFrontend(refused).then(
      () => expect.fail('the build should fail'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toBe('unsupported context source ssh://user@example.com/app.git for x');
  });

  test('a failed fetch names the URL', async () => {
    const { c } = client({}, { context: 'git://example.com/app.git#nope' });
    const failing: FrontendClient = { ...c, solve: () => Promise.reject(new Error('repository does not contain ref nope')) };
    await expect(dockerfileFrontend(failing)).rejects.toMatchObject({ code: 'KLN0504', message: 'cannot load the build context git://example.com/app.git#nope: repository does not contain ref nope' });
  });
});
