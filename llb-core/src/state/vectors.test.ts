/**
 * Rebuilds every llb-ops vector (BuildKit v0.11.6 client/llb graphs) through the State
 * API and compares with the reference `.pb`: the same op bytes in the same order, and
 * the same metadata and source map, so the whole Definition is byte-identical.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Digest } from '../digest.js';
import { digestOf } from '../digest.js';
import type { Definition } from '../op.js';
import { decodeDefinition, encodeDefinition, encodeOpMetadata } from '../pb/definition-codec.js';
import type { ImageMetaResolver } from '../image-config.js';
import { Caps, CAPS_V0_11_6 } from './caps.js';
import { copy, mkdir, mkfile, rm } from './file.js';
import { diff, merge } from './merge-diff.js';
import type { MarshalOptions } from './marshal.js';
import { git, http, image, local, ociLayout, resolveImage } from './source.js';
import { scratch, type State } from './state.js';

const conf = join(import.meta.dirname, '../../../../shared/conformance');
const dir = join(conf, 'llb-ops');
const TS = 1704164645000000006n;

/** Resolves `localhost:5000/<name>:<tag>` against the fixture OCI layouts. */
const layoutResolver: ImageMetaResolver = {
  async resolveImageConfig(ref) {
    const m = /^localhost:5000\/([^:@]+)(?::([^@]+))?/.exec(ref);
    if (!m) throw new Error(`unknown fixture ${ref}`);
    const root = join(conf, 'images', m[1] as string);
    const blob = (d: string): Buffer => readFileSync(join(root, 'blobs', d.replace(':', '/')));
    const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const entry = index.manifests.find((e) => e.annotations?.['org.opencontainers.image.ref.name'] === (m[2] ?? 'latest'));
    if (!entry) throw new Error(`no tag in ${ref}`);
    const manifest = JSON.parse(blob(entry.digest).toString('utf8')) as { config: { digest: string } };
    return { digest: entry.digest as Digest, config: new Uint8Array(blob(manifest.config.digest)) };
  },
};

const bb = (): State => image('localhost:5000/busybox');
const files = (): State => image('localhost:5000/files');

interface Case {
  build: () => State | Promise<State>;
  opts?: MarshalOptions;
}

const cases: Record<string, Case> = {
  'build-op': {
    build: () =>
      scratch()
        .file(mkfile('/def.pb', 0o644, 'not-a-real-definition'))
        .build({ filename: '/def.pb', customName: 'nested build' }),
  },
  'diff-rebase': {
    build: () => {
      const up = bb().file(mkfile('/layer.txt', 0o644, 'layer'));
      return merge([files(), diff(bb(), up), diff(scratch(), up)]);
    },
  },
  diff: {
    build: () => diff(bb(), bb().run({ args: ['/bin/sh', '-c', 'echo changed > /changed'] }).root(), { customName: 'diff of run' }),
  },
  'exec-basic': { build: () => bb().run({ shlex: 'echo hello' }) },
  'exec-cache-mounts': {
    build: () =>
      bb().run({
        shlex: 'ls /c1 /c2 /c3',
        mounts: [
          { target: '/c1', cache: { id: 'cache-shared', sharing: 'shared' } },
          { target: '/c2', cache: { id: 'cache-private', sharing: 'private' } },
          { target: '/c3', source: bb(), sourcePath: '/etc', cache: { id: 'cache-locked', sharing: 'locked' } },
        ],
      }),
  },
  'exec-caps-all': { build: () => bb().run({ args: ['env'] }), opts: { caps: CAPS_V0_11_6 } },
  'exec-caps-no-default-path': {
    build: () => scratch().run({ args: ['/bin/true'] }),
    opts: { caps: CAPS_V0_11_6.filter((c) => c !== Caps.execMetaSetsDefaultPath) },
  },
  'exec-chained-env': {
    build: () => {
      const first = bb().addEnv('A', '1').addEnv('B', '2').run({ shlex: 'echo first $A' });
      return first.addEnv('C', '4').run({ args: ['env'] }).reset(scratch());
    },
  },
  'exec-meta': {
    build: () =>
      bb()
        .dir('/work')
        .addEnv('FOO', 'bar')
        .addEnv('GREETING', 'hello kiln')
        .dir('sub-1')
        .user('1000:1000')
        .hostname('builder')
        .run({
          shlex: `/bin/sh -c 'id; hostname; pwd; env'`,
          extraHosts: [
            { host: 'registry.test', ip: '10.0.0.5' },
            { host: 'v6.test', ip: 'fd00:0::1' },
          ],
          ulimits: [
            { name: 'nofile', soft: 1024, hard: 2048 },
            { name: 'nproc', soft: 100, hard: 200 },
          ],
          cgroupParent: '/kiln.slice',
          proxy: {
            httpProxy: 'http://127.0.0.1:3128',
            httpsProxy: 'http://127.0.0.1:3129',
            ftpProxy: 'ftp://127.0.0.1:21',
            noProxy: 'localhost',
            allProxy: 'socks5://127.0.0.1:1080',
          },
        }),
  },
  'exec-mounts': {
    build: () => {
      const r = bb().run({
        args: ['/bin/sh', '-c', 'cp -r /data /out/ && echo x > /rw/x'],
        mounts: [
          { target: '/data', source: files(), sourcePath: '/data', readonly: true },
          { target: '/discard', source: files(), forceNoOutput: true },
          { target: '/out' },
          { target: '/rw', source: files(), sourcePath: '/etc' },
        ],
      });
      return r.getMount('/out').file(copy(r.getMount('/rw'), '/x', '/x'));
    },
  },
  'exec-network-security': {
    build: () =>
      bb()
        .network('none')
        .run({ args: ['ip', 'link'] })
        .run({ args: ['hostname'], network: 'host' })
        .run({ args: ['cat', '/proc/self/status'], security: 'insecure' })
        .network('sandbox')
        .security('sandbox')
        .run({ args: ['true'] }),
  },
  'exec-readonly-rootfs': {
    build: () => bb().run({ args: ['touch', '/out/file'], readonlyRootfs: true, mounts: [{ target: '/out' }] }).getMount('/out'),
  },
  'exec-secrets': {
    build: () =>
      bb().run({
        args: ['/bin/sh', '-c', 'cat /run/secrets/a /etc/b; echo $TOKEN'],
        secrets: [
          { target: '/run/secrets/a' },
          { id: 'b-id', target: '/etc/b', uid: 1000, gid: 1000, mode: 0o440, optional: true },
          { id: 'token-id', env: 'TOKEN' },
          { env: 'OPTIONAL_ENV', optional: true },
        ],
      }),
  },
  'exec-ssh': {
    build: () =>
      bb().run({
        args: ['ssh-add', '-l'],
        ssh: [{}, { id: 'deploy', target: '/run/deploy.sock', optional: true }, { id: 'owned', target: '/run/owned.sock', uid: 1000, gid: 1000, mode: 0o660 }],
      }),
  },
  'exec-tmpfs': {
    build: () =>
      bb().run({ args: ['df'], mounts: [{ target: '/dev/shm', tmpfs: { size: 64 * 1024 * 1024 } }, { target: '/tmp', tmpfs: true }] }),
  },
  'file-chained-actions': {
    build: () =>
      bb()
        .dir('/work')
        .file(
          mkdir('out', 0o755)
            .mkfile('out/a.txt', 0o644, 'a')
            .copy(files(), '/data/hello.txt', 'out/hello.txt')
            .copy(files(), '/data/sub', 'out/sub', { copyDirContentsOnly: true })
            .rm('out/a.txt'),
          { customName: 'chained file actions' },
        ),
  },
  'file-copy-flags': {
    build: () => {
      const ctx = local('context');
      return bb()
        .file(
          copy(ctx, '/src', '/dst/', {
            mode: 0o640,
            followSymlinks: true,
            copyDirContentsOnly: true,
            includePatterns: ['*.go', '**/*.md'],
            excludePatterns: ['*_test.go'],
            attemptUnpack: true,
            createDestPath: true,
            allowWildcard: true,
            allowEmptyWildcard: true,
            chown: { user: 'app', group: 1000 },
            createdTime: TS,
          }),
        )
        .file(copy(ctx, 'plain', 'plain-dest'));
    },
  },
  'file-copy-from-action': {
    build: () => {
      const p = scratch().file(mkdir('/p', 0o755));
      const gen = mkfile('/gen.txt', 0o644, 'generated');
      return bb().file(copy(gen.withState(p), '/gen.txt', '/from-action.txt').copy(p, '/p', '/p2'));
    },
  },
  'file-mkdir': {
    build: () =>
      bb()
        .file(mkdir('/a/b/c', 0o750, { parents: true, chown: 'app:app', createdTime: TS }))
        .file(mkdir('/d', 0o700, { chown: { user: 1000, group: 1000 } }))
        .file(mkdir('/e', 0o755, { chown: 'root' })),
  },
  'file-mkfile': {
    build: () =>
      bb()
        .file(mkfile('/etc/kiln.conf', 0o600, 'key=value\n', { chown: { user: 1000, group: 'nogroup' }, createdTime: TS }))
        .file(mkfile('/empty', 0o644, new Uint8Array())),
  },
  'file-rm': {
    build: () => bb().file(rm('/etc/passwd')).file(rm('/tmp/*.log', { allowNotFound: true, allowWildcard: true })),
  },
  merge: {
    build: () => {
      const a = scratch().file(mkfile('/a', 0o644, 'a'));
      const b = scratch().file(mkfile('/b', 0o644, 'b'));
      return merge([bb(), scratch(), a, b, a], { customName: 'merge a b' });
    },
  },
  'merge-degenerate': { build: () => merge([scratch(), bb().run({ args: ['true'] })]) },
  'metadata-constraints': {
    build: () =>
      bb()
        .run({ args: ['echo', 'a'], ignoreCache: true, description: { 'com.example.key': 'value' }, customName: 'custom a' })
        .file(mkdir('/m', 0o755), { exportCache: true, progressGroup: { id: 'pg-1', name: 'group one' } })
        .file(mkdir('/n', 0o755), { exportCache: false, workerConstraints: ['node.role==builder'] })
        .run({ args: ['true'], customName: 'step 4' }),
    opts: { workerConstraints: ['os==linux'] },
  },
  'platforms-mixed': {
    build: () => {
      const arm = image('localhost:5000/files', { platform: 'linux/arm64' }).run({ args: ['cat', '/etc/platform'] });
      const v7 = scratch().platform('linux/arm/v7').file(mkfile('/v7', 0o644, 'v7'));
      const win = scratch()
        .platform({ os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.1234' })
        .file(mkfile('/win', 0o644, 'w'));
      return bb().file(copy(arm, '/etc/platform', '/arm').copy(v7, '/v7', '/v7').copy(win, '/win', '/win'));
    },
  },
  'scratch-mkfile': { build: () => scratch().file(mkfile('/hello.txt', 0o644, 'hello\n')) },
  'source-git': {
    build: () =>
      merge([
        git('https://127.0.0.1:8443/kiln/repo.git', 'main'),
        git('127.0.0.1:8443/kiln/noscheme'),
        git('git@127.0.0.1:kiln/private.git', 'v1.2.3', {
          knownSshHosts: '127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnFixtureKeyNotReal\n',
          mountSshSock: 'deploy',
        }),
        git('https://127.0.0.1:8443/kiln/repo.git#ignored-fragment', 'refs/tags/v2:subdir', {
          keepGitDir: true,
          authTokenSecret: 'MY_TOKEN',
          authHeaderSecret: 'MY_HEADER',
        }),
      ]),
  },
  'source-http': {
    build: () =>
      merge([
        http('http://127.0.0.1:8080/plain.txt'),
        http('http://127.0.0.1:8080/tool.tgz', {
          checksum: 'sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d',
          filename: 'renamed.tgz',
          chmod: 0o755,
          uid: 1000,
          gid: 1001,
        }),
      ]),
  },
  'source-image': { build: () => bb() },
  'source-image-options': {
    build: () =>
      merge([
        image('localhost:5000/files', { platform: 'linux/arm64', customName: 'files for arm64' }),
        image('localhost:5000/busybox@sha256:e14e06e5c350e5445beb0f39fbc33c13636d555eff1e97858958927c6e3cb7dc', {
          resolveMode: 'pull',
          layerLimit: 1,
        }),
        image('localhost:5000/busybox:1.35', { resolveMode: 'local', recordType: 'internal' }),
        image('localhost:5000/busybox', { resolveMode: 'default' }),
      ]),
  },
  'source-image-resolved': {
    build: async () =>
      (await resolveImage('localhost:5000/busybox-onbuild', { metaResolver: layoutResolver, defaultPlatform: 'linux/amd64' })).run({
        args: ['env'],
      }),
  },
  'source-local': {
    build: () =>
      merge([
        local('context', {
          includePatterns: ['src/**', '*.go'],
          excludePatterns: ['**/*_test.go', 'vendor'],
          followPaths: ['src', 'go.mod'],
          sharedKeyHint: 'ctx-key',
          differ: { type: 'metadata', required: true },
          customName: 'load context',
        }),
        local('dockerfile', { sessionId: 'session-0001', differ: { type: 'none', required: false } }),
      ]),
  },
  'source-oci-layout': {
    build: () =>
      ociLayout('kiln-store/files@sha256:5565f25afad991c0bdb436f2d2e609b03b64c6021eeb31fb3471cbbb845f8736', {
        sessionId: 'session-0001',
        storeId: 'store-1',
        layerLimit: 2,
      }),
  },
};

const names = readdirSync(dir)
  .filter((f) => f.endsWith('.pb'))
  .map((f) => f.slice(0, -3));

const hex = (d: Definition): string[] => d.def.map((b) => Buffer.from(b).toString('hex'));
const metaHex = (d: Definition): Record<string, string> =>
  Object.fromEntries([...d.metadata].map(([k, v]) => [k, Buffer.from(encodeOpMetadata(v)).toString('hex')]));

describe('State API rebuilds every llb-ops vector', () => {
  test('every vector has a builder', () => {
    expect(names.filter((n) => !(n in cases))).toEqual([]);
  });

  test.for(names)('%s', async (name) => {
    const c = cases[name];
    if (!c) throw new Error(`no builder for ${name}`);
    const ref = decodeDefinition(new Uint8Array(readFileSync(join(dir, `${name}.pb`))));
    const st = await c.build();
    const ours = await st.marshal({ platform: 'linux/amd64', localUniqueId: 'kiln-llb-ops', ...c.opts });
    const digests = readFileSync(join(dir, `${name}.digests`), 'utf8').split('\n').filter(Boolean);
    expect(ours.def.map((b) => digestOf(b))).toEqual(digests);
    expect(hex(ours)).toEqual(hex(ref));
    expect(metaHex(ours)).toEqual(metaHex(ref));
    expect(Buffer.from(encodeDefinition(ours)).equals(readFileSync(join(dir, `${name}.pb`)))).toBe(true);
  });
});
