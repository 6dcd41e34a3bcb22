import { describe, expect, test } from 'vitest';
import { decodeOp } from '../pb/op-codec.js';
import type { Definition, Op } from '../op.js';
import { formatPlatform, normalizePlatform, parsePlatform } from '../platform.js';
import { normalizeImageReference } from '../reference.js';
import { Caps } from './caps.js';
import { formatIP } from './exec.js';
import { copy, mkdir, mkfile } from './file.js';
import { merge } from './merge-diff.js';
import { normalizePath } from './paths.js';
import { shlexSplit } from './shlex.js';
import { git, image, local } from './source.js';
import { scratch } from './state.js';

const ops = (d: Definition): Op[] => d.def.map((b) => decodeOp(b));
const M = { platform: 'linux/amd64' } as const;

describe('State values', () => {
  test('every method returns a new state and leaves the receiver alone', () => {
    const a = scratch().addEnv('A', '1');
    const b = a.addEnv('A', '2').addEnv('B', '3').dir('/x').user('u');
    expect(a.env()).toEqual(['A=1']);
    expect(a.getDir()).toBe('/');
    expect(b.env()).toEqual(['A=2', 'B=3']);
    expect(b.dir('y/../z').getDir()).toBe('/x/z');
    expect(b.getUser()).toBe('u');
  });

  test('a replaced env key moves to the end, like Go EnvList.AddOrReplace', () => {
    expect(scratch().addEnv('A', '1').addEnv('B', '2').addEnv('A', '3').env()).toEqual(['B=2', 'A=3']);
  });

  test('run options apply to that exec only', async () => {
    const base = image('busybox');
    const r = base.run({ args: ['true'], env: { ONLY: 'here' }, dir: '/tmp' });
    expect(r.getEnv('ONLY')).toBeUndefined();
    expect(r.getDir()).toBe('/');
    const exec = ops(await r.marshal(M))[1];
    if (exec?.kind !== 'exec') throw new Error('expected exec');
    expect(exec.exec.meta?.env).toEqual(['ONLY=here']);
    expect(exec.exec.meta?.cwd).toBe('/tmp');
  });

  test('withImageConfig applies Env and WorkingDir but not User', () => {
    const s = scratch().withImageConfig({
      architecture: 'arm64',
      os: 'linux',
      config: { Env: ['PATH=/bin', 'EMPTY=', 'NOVALUE'], WorkingDir: '/app', User: 'nobody' },
    });
    expect(s.env()).toEqual(['PATH=/bin', 'EMPTY=', 'NOVALUE=']);
    expect(s.getDir()).toBe('/app');
    expect(s.getUser()).toBeUndefined();
    expect(s.getPlatform()).toEqual({ os: 'linux', architecture: 'arm64' });
  });
});

describe('marshal', () => {
  test('scratch marshals to an empty definition', async () => {
    const d = await scratch().marshal();
    expect(d.def).toHaveLength(0);
  });

  test('image references are normalized like distribution/reference', () => {
    expect(normalizeImageReference('busybox')).toBe('docker.io/library/busybox:latest');
    expect(normalizeImageReference('user/app:1.0')).toBe('docker.io/user/app:1.0');
    expect(normalizeImageReference('localhost:5000/a/b')).toBe('localhost:5000/a/b:latest');
    expect(normalizeImageReference('index.docker.io/library/alpine@sha256:' + 'a'.repeat(64))).toBe(
      'docker.io/library/alpine@sha256:' + 'a'.repeat(64),
    );
  });

  test('an invalid image reference is held until marshal', async () => {
    const s = image('Not/Valid').run({ args: ['true'] });
    await expect(s.marshal()).rejects.toMatchObject({ code: 'LLB_INVALID_STATE' });
  });

  test('an exec without arguments fails at marshal', async () => {
    await expect(image('busybox').run({}).marshal()).rejects.toMatchObject({ code: 'LLB_INVALID_STATE' });
  });

  test('a tmpfs mount cannot be used as a parent', async () => {
    const r = image('busybox').run({ args: ['true'], mounts: [{ target: '/t', tmpfs: true }] });
    await expect(r.getMount('/t').file(mkdir('/x')).marshal()).rejects.toMatchObject({ code: 'LLB_INVALID_STATE' });
    await expect(r.getMount('/nope').marshal()).rejects.toMatchObject({ code: 'LLB_INVALID_STATE' });
  });

  test('marshal is deterministic and a session-less local gets a stable unique id', async () => {
    const st = image('busybox').file(copy(local('ctx'), '.', '/src'));
    const a = await st.marshal(M);
    const b = await st.marshal(M);
    expect(a.def).toEqual(b.def);
    const src = ops(a).find((o) => o.kind === 'source' && o.source.identifier === 'local://ctx');
    if (src?.kind !== 'source') throw new Error('expected local source');
    expect(src.source.attrs?.get('local.unique')).toMatch(/^[0-9a-f]{25}$/);
  });

  test('without the default-path cap a windows exec gets the windows PATH', async () => {
    // As in Go, the PATH's OS comes from the marshal platform (or a run-level platform),
    // not from the state's platform.
    const d = await scratch().run({ args: ['cmd'] }).marshal({ caps: [], platform: 'windows/amd64' });
    const exec = ops(d)[0];
    if (exec?.kind !== 'exec') throw new Error('expected exec');
    expect(exec.exec.meta?.env).toEqual(['PATH=c:\\Windows\\System32;c:\\Windows']);
    expect(exec.platform).toEqual({ os: 'windows', architecture: 'amd64' });
  });

  test('the terminal op records metadata caps and points at the right output', async () => {
    const r = image('busybox').run({ args: ['true'], mounts: [{ target: '/a' }, { target: '/b' }], ignoreCache: true });
    const d = await r.getMount('/b').marshal(M);
    const term = ops(d).at(-1);
    expect(term?.kind).toBe('none');
    expect(term?.inputs[0]?.index).toBe(2);
    const caps = d.metadata.get(Object.keys(Object.fromEntries(d.metadata)).at(-1) as never)?.caps;
    expect(caps).toBeDefined();
    const termDigest = [...d.metadata.keys()].find((k) => d.metadata.get(k)?.caps?.has(Caps.constraints));
    expect(d.metadata.get(termDigest as never)?.caps?.get(Caps.metaIgnoreCache)).toBe(true);
  });

  test('merge of only scratch is scratch; a file op on a merge keeps its inputs in order', async () => {
    expect(merge([scratch(), scratch()]).isScratch).toBe(true);
    const a = scratch().file(mkfile('/a', 0o644, 'a'));
    const b = scratch().file(mkfile('/b', 0o644, 'b'));
    const d = await merge([a, b]).marshal(M);
    expect(ops(d).map((o) => o.kind)).toEqual(['file', 'file', 'merge', 'none']);
  });
});

describe('helpers', () => {
  test('shlex splits like google/shlex', () => {
    expect(shlexSplit(`echo "a b" 'c d' e\\ f # comment`)).toEqual(['echo', 'a b', 'c d', 'e f']);
    expect(shlexSplit(`a "x\\"y" ''`)).toEqual(['a', 'x"y', '']);
    expect(() => shlexSplit(`echo "open`)).toThrow(expect.objectContaining({ code: 'LLB_INVALID_STATE' }));
  });

  test('normalizePath keeps a trailing slash or /. only for copy destinations', () => {
    expect(normalizePath('/work', 'out/', false)).toBe('/work/out');
    expect(normalizePath('/work', 'out/', true)).toBe('/work/out/');
    expect(normalizePath('/work', './', true)).toBe('/work/');
    expect(normalizePath('/', '/.', true)).toBe('/.');
    expect(normalizePath('/w', 'a/.', true)).toBe('/w/a/.');
    expect(normalizePath('/w', '../../x', false)).toBe('/x');
  });

  test('platforms parse, normalize and format like containerd', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('Linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(normalizePlatform({ os: 'linux', architecture: 'aarch64' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(formatPlatform(parsePlatform('linux/arm/v6'))).toBe('linux/arm/v6');
    expect(() => parsePlatform('linux/arm/v7/x')).toThrow(expect.objectContaining({ code: 'LLB_PLATFORM' }));
  });

  test('extra host IPs print like Go net.IP', () => {
    expect(formatIP('10.0.0.5')).toBe('10.0.0.5');
    expect(formatIP('FD00:0:0::1')).toBe('fd00::1');
    expect(formatIP('::ffff:1.2.3.4')).toBe('1.2.3.4');
  });
});

describe('git remotes as BuildKit v0.11.6 llb.Git reads them', () => {
  const source = async (remote: string): Promise<{ id: string; url: string | undefined; ssh: boolean }> => {
    const op = ops(await git(remote).marshal(M))[0] as Op & { kind: 'source' };
    const attrs = op.source.attrs ?? new Map<string, string>();
    return { id: op.source.identifier ?? '', url: attrs.get('git.fullurl'), ssh: attrs.has('git.mountsshsock') };
  };

  test.each([
    // scp-style: user and host of sshutil's characters only
    ['git@github.com:org/repo.git', 'git://github.com/org/repo.git', 'git@github.com:org/repo.git', true],
    ['deploy-bot_1@git.example.com:repo', 'git://git.example.com/repo', 'deploy-bot_1@git.example.com:repo', true],
    // a dot or plus in the user, or a host outside [A-Za-z0-9.-], is no ssh remote: https
    ['first.last@host:repo', 'git://first.last@host:repo', 'https://first.last@host:repo', false],
    ['u+x@host:repo', 'git://u+x@host:repo', 'https://u+x@host:repo', false],
    // ssh://: drop through the first @, then the first : becomes /
    ['ssh://git@host:22/org/repo.git', 'git://host/22/org/repo.git', 'ssh://git@host:22/org/repo.git', true],
    ['ssh://host:/srv/repo', 'git://host//srv/repo', 'ssh://host:/srv/repo', true],
    ['https://github.com/org/repo.git', 'git://github.com/org/repo.git', 'https://github.com/org/repo.git', false],
  ])('%s', async (remote, id, url, ssh) => {
    expect(await source(remote)).toEqual({ id, url, ssh });
  });
});

describe('source maps', () => {
  test('op locations land in Definition.source and survive a round trip', async () => {
    const { SourceMap } = await import('./constraints.js');
    const { encodeDefinition, decodeDefinition } = await import('../pb/definition-codec.js');
    const df = new SourceMap('Dockerfile', new TextEncoder().encode('FROM busybox\nRUN true\n'), { language: 'Dockerfile' });
    const other = new SourceMap('other.txt', new Uint8Array([1]));
    const st = image('busybox', { sourceLocations: [df.location([{ start: { line: 1 }, end: { line: 1 } }])] }).run({
      args: ['true'],
      sourceLocations: [other.location([{ start: { line: 3, character: 2 }, end: { line: 4 } }]), df.location([{ start: { line: 2 }, end: { line: 2 } }])],
    });
    const d = await st.marshal(M);
    expect(d.source?.infos?.map((i) => i.filename)).toEqual(['Dockerfile', 'other.txt']);
    expect(d.source?.infos?.[0]?.language).toBe('Dockerfile');
    const [srcDigest, execDigest] = d.def.map((b) => b);
    expect(srcDigest && execDigest).toBeTruthy();
    const locs = [...(d.source?.locations?.values() ?? [])];
    expect(locs.map((l) => l.locations?.map((x) => x.sourceIndex ?? 0))).toEqual([[0], [1, 0]]);
    const again = decodeDefinition(encodeDefinition(d));
    expect(encodeDefinition(again)).toEqual(encodeDefinition(d));
    expect(again.source?.infos?.[1]?.data).toEqual(new Uint8Array([1]));
  });
});
