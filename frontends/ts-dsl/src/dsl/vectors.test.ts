/**
 * The DSL writes the same graphs as BuildKit v0.11.6's Go `client/llb` for a set of llb-ops
 * vectors: the op digests must equal the vector's `.digests` and the op bytes its `.pb`
 * (expected values come only from the conformance files).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CAPS_V0_11_6, decodeDefinition, definitionToJsonLines, digestOf, type Digest, type ImageMetaResolver } from '@kiln/llb-core';
import { bind, cache, diff, git, http, image, merge, scratch, secret, sh, ssh, tmpfs, marshal, type MarshalOpts, type State } from './index.js';

const dir = join(import.meta.dirname, '../../../../../shared/conformance/llb-ops');
const bb = (): State => image('localhost:5000/busybox');
const files = (): State => image('localhost:5000/files');

const cases: Record<string, () => State> = {
  'source-image': () => bb(),
  'exec-basic': () => bb().run('echo hello'),
  'exec-cache-mounts': () =>
    bb().run('ls /c1 /c2 /c3', {
      mounts: {
        '/c1': cache('cache-shared'),
        '/c2': cache('cache-private', { sharing: 'private' }),
        '/c3': cache('cache-locked', { sharing: 'locked', from: bb(), path: '/etc' }),
      },
    }),
  'exec-tmpfs': () => bb().run(['df'], { mounts: { '/dev/shm': tmpfs({ size: 64 * 1024 * 1024 }), '/tmp': tmpfs() } }),
  'exec-secrets': () =>
    bb().run(sh`cat /run/secrets/a /etc/b; echo $TOKEN`, {
      mounts: {
        '/run/secrets/a': secret('/run/secrets/a'),
        '/etc/b': secret('b-id', { uid: 1000, gid: 1000, mode: 0o440, optional: true }),
      },
      secretEnv: { TOKEN: secret('token-id'), OPTIONAL_ENV: secret('OPTIONAL_ENV', { optional: true }) },
    }),
  'exec-ssh': () =>
    bb().run(['ssh-add', '-l'], {
      ssh: [ssh(), ssh({ id: 'deploy', target: '/run/deploy.sock', optional: true }), ssh({ id: 'owned', target: '/run/owned.sock', uid: 1000, gid: 1000, mode: 0o660 })],
    }),
  'exec-network-security': () =>
    bb()
      .network('none')
      .run(['ip', 'link'])
      .run(['hostname'], { network: 'host' })
      .run(['cat', '/proc/self/status'], { security: 'insecure' })
      .network('sandbox')
      .security('sandbox')
      .run(['true']),
  'exec-readonly-rootfs': () => bb().run(['touch', '/out/file'], { readonlyRootfs: true, mounts: { '/out': scratch() } }).output('/out'),
  // five calls, one FileOp: the batching of consecutive file calls
  'file-chained-actions': () =>
    bb()
      .dir('/work')
      .mkdir('out')
      .mkfile('out/a.txt', 'a')
      .copy(files(), '/data/hello.txt', 'out/hello.txt', { contentsOnly: false, createDestPath: false })
      .copy(files(), '/data/sub', 'out/sub', { createDestPath: false })
      .rm('out/a.txt'),
  merge: () => {
    const a = scratch().mkfile('/a', 'a');
    const b = scratch().mkfile('/b', 'b');
    return merge([bb(), scratch(), a, b, a], { name: 'merge a b' });
  },
  'merge-degenerate': () => merge([scratch(), bb().run(['true'])]),
  diff: () => diff(bb(), bb().run(sh`echo changed > /changed`), { name: 'diff of run' }),
  'scratch-mkfile': () => scratch().mkfile('/hello.txt', 'hello\n'),
  // two FileOps: a value change (`.dir("/")`, no effect on the paths) ends the first batch
  'file-rm': () => bb().rm('/etc/passwd').dir('/').rm('/tmp/*.log', { allowNotFound: true, allowWildcard: true }),
  'diff-rebase': () => {
    const layer = bb().mkfile('/layer.txt', 'layer');
    return merge([files(), diff(bb(), layer), diff(scratch(), layer)]);
  },
  'exec-chained-env': () => bb().addEnv('A', '1').addEnv('B', '2').run('echo first $A').addEnv('C', '4').run(['env']),
};

/** Vectors marshaled with caps or a resolver (README: exec-caps-*, source-image-resolved). */
const images = join(dir, '../images');
const onbuildIndex = JSON.parse(readFileSync(join(images, 'busybox-onbuild/index.json'), 'utf8')) as { manifests: { digest: string }[] };
const onbuildManifest = onbuildIndex.manifests[0]?.digest ?? '';
const onbuildConfig = (JSON.parse(readFileSync(join(images, 'busybox-onbuild/blobs/sha256', onbuildManifest.slice('sha256:'.length)), 'utf8')) as { config: { digest: string } }).config.digest;
const resolver: ImageMetaResolver = {
  resolveImageConfig: async (ref) => {
    if (!ref.includes('busybox-onbuild')) throw new Error(`unexpected lookup of ${ref}`);
    return { digest: onbuildManifest as Digest, config: new Uint8Array(readFileSync(join(images, 'busybox-onbuild/blobs/sha256', onbuildConfig.slice('sha256:'.length)))) };
  },
};

const withOpts: Record<string, { build: () => State; opts: MarshalOpts }> = {
  'exec-caps-all': { build: () => bb().run(['env']), opts: { caps: CAPS_V0_11_6 } },
  'exec-caps-no-default-path': { build: () => scratch().run(['/bin/true']), opts: { caps: CAPS_V0_11_6.filter((c) => c !== 'exec.meta.setsdefaultpath') } },
  'source-image-resolved': { build: () => image('localhost:5000/busybox-onbuild', { resolve: true }).run(['env']), opts: { resolver } },
};

/** Single ops of vectors whose other ops need options the DSL does not expose: [vector, op index, graph]. */
const singleOps: readonly (readonly [string, number, () => State])[] = [
  ['source-git', 0, () => git('https://127.0.0.1:8443/kiln/repo.git', { ref: 'main' })],
  ['source-git', 1, () => git('127.0.0.1:8443/kiln/noscheme')],
  ['source-http', 0, () => http('http://127.0.0.1:8080/plain.txt')],
  ['source-image-options', 0, () => image('localhost:5000/files', { platform: 'linux/arm64', name: 'files for arm64' })],
  ['platforms-mixed', 2, () => image('localhost:5000/files', { platform: 'linux/arm64' }).run(['cat', '/etc/platform'])],
  ['platforms-mixed', 3, () => scratch().platform('linux/arm/v7').mkfile('/v7', 'v7')],
];

const hex = (def: readonly Uint8Array[]): string[] => def.map((b) => Buffer.from(b).toString('hex'));

describe('DSL graphs equal the llb-ops vectors', () => {
  test.for(Object.keys(cases))('%s', async (name) => {
    const build = cases[name] as () => State;
    const ours = await marshal(build(), { platform: 'linux/amd64', localUniqueId: 'kiln-llb-ops' });
    const digests = readFileSync(join(dir, `${name}.digests`), 'utf8').split('\n').filter(Boolean);
    expect(ours.def.map((b) => digestOf(b))).toEqual(digests);
    const ref = decodeDefinition(new Uint8Array(readFileSync(join(dir, `${name}.pb`))));
    expect(hex(ours.def)).toEqual(hex(ref.def));
  });

  test.for(Object.keys(withOpts))('%s (marshal options)', async (name) => {
    const v = withOpts[name] as { build: () => State; opts: MarshalOpts };
    const ours = await marshal(v.build(), { platform: 'linux/amd64', localUniqueId: 'kiln-llb-ops', ...v.opts });
    const digests = readFileSync(join(dir, `${name}.digests`), 'utf8').split('\n').filter(Boolean);
    expect(ours.def.map((b) => digestOf(b))).toEqual(digests);
    const ref = decodeDefinition(new Uint8Array(readFileSync(join(dir, `${name}.pb`))));
    expect(hex(ours.def)).toEqual(hex(ref.def));
  });

  test.for(singleOps.map(([name, i, build], k) => [`${name} op ${i}`, k, name, i, build] as const))('%s', async ([, , name, i, build]) => {
    const ours = await marshal(build(), { platform: 'linux/amd64', localUniqueId: 'kiln-llb-ops' });
    const digests = readFileSync(join(dir, `${name}.digests`), 'utf8').split('\n').filter(Boolean);
    const ref = decodeDefinition(new Uint8Array(readFileSync(join(dir, `${name}.pb`))));
    // our graph ends with the vector's op i (then the terminal op)
    expect(digestOf(ours.def[ours.def.length - 2] as Uint8Array)).toBe(digests[i]);
    expect(hex([ours.def[ours.def.length - 2] as Uint8Array])).toEqual(hex([ref.def[i] as Uint8Array]));
  });

  test('a bind mount of a selected path, read-only', async () => {
    // exec-mounts without its ForceNoOutput mount is no vector; check the mount fields instead
    const def = await marshal(bb().run(['ls'], { mounts: { '/data': bind(files(), { path: '/data', readonly: true }) } }), { platform: 'linux/amd64' });
    const json = definitionToJsonLines(def);
    expect(json).toContain('"selector":"/data"');
    expect(json).toContain('"readonly":true');
  });
});
