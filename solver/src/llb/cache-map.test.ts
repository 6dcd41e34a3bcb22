import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { opJson, type Op } from '@kiln/llb-core';
import { execCacheMap, fileCacheMap, plainCacheMap, sourceCacheMap } from './cache-map.js';

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const noChecksum = async (): Promise<string> => 'sha256:0';
const IN = 'sha256:1111111111111111111111111111111111111111111111111111111111111111' as Op['inputs'][number]['digest'];

describe('BuildKit v0.11 cache maps (JSON written out by hand from Go encoding/json rules)', () => {
  test('exec: selectors, proxy env and extra-host IPs are left out; platform from the op', () => {
    const op: Op = {
      kind: 'exec',
      inputs: [{ digest: IN, index: 0 }],
      platform: { os: 'linux', architecture: 'arm64' },
      exec: {
        meta: { args: ['/bin/sh', '-c', 'true'], cwd: '/', proxyEnv: { httpProxy: 'http://p' }, extraHosts: [{ host: 'h', ip: '1.2.3.4' }] },
        mounts: [{ input: 0, dest: '/', output: 0, selector: '/ignored' }],
      },
    };
    const cm = execCacheMap(op as Op & { kind: 'exec' }, noChecksum);
    // A lone writable bind root mount (a Dockerfile RUN) is left out of the key entirely
    // (ops/exec.go: "Special case for cache compatibility with buggy versions", moby/buildkit#2076).
    const json = '{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["/bin/sh","-c","true"],"cwd":"/","extraHosts":[{"Host":"h"}]}},"OS":"linux","Arch":"arm64"}';
    expect(cm.digest).toBe(sha(json));
    // The root mount's input: selector digest of "/ignored", no content hash (writable root).
    expect(cm.deps).toHaveLength(1);
    expect(cm.deps[0]?.selector).toBe(sha('/ignored'));
    expect(cm.deps[0]?.computeDigest).toBeUndefined();
  });

  test('exec: the root mount stays in the key when it is not a lone writable bind mount', () => {
    const base = { kind: 'exec' as const, inputs: [{ digest: IN, index: 0 }], platform: { os: 'linux', architecture: 'amd64' } };
    const key = (mounts: NonNullable<(Op & { kind: 'exec' })['exec']['mounts']>): string =>
      execCacheMap({ ...base, exec: { meta: { args: ['true'] }, mounts } } as Op & { kind: 'exec' }, noChecksum).digest;
    const head = '{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["true"]}';
    const tail = '},"OS":"linux","Arch":"amd64"}';
    expect(key([{ input: 0, dest: '/', output: 0, readonly: true }])).toBe(sha(`${head},"mounts":[{"input":0,"dest":"/","output":0,"readonly":true}]${tail}`));
    expect(key([{ input: 0, dest: '/', output: 0 }, { input: -1, dest: '/tmp', output: 1, mountType: 4 }])).toBe(
      sha(`${head},"mounts":[{"input":0,"dest":"/","output":0},{"input":-1,"dest":"/tmp","output":1,"mountType":4}]${tail}`),
    );
    expect(key([{ input: 0, dest: '/', output: 0 }])).toBe(sha(`${head}${tail}`));
  });

  test('exec: a read-only non-root mount is keyed by content', () => {
    const op: Op = {
      kind: 'exec',
      inputs: [{ digest: IN, index: 0 }, { digest: IN, index: 1 }],
      exec: { meta: { args: ['true'] }, mounts: [{ input: 0, dest: '/', output: 0 }, { input: 1, dest: '/src', readonly: true, output: -1 }] },
    };
    const cm = execCacheMap(op as Op & { kind: 'exec' }, noChecksum);
    expect(cm.deps[0]?.computeDigest).toBeUndefined();
    expect(cm.deps[1]?.computeDigest).toBeTypeOf('function');
  });

  test('file copy: source reduced to its base name, default indexes omitted, selector + content hash on the source input', async () => {
    const op: Op = {
      kind: 'file',
      inputs: [{ digest: IN, index: 0 }, { digest: IN, index: 1 }],
      file: { actions: [{ input: 0, secondaryInput: 1, output: 0, action: { kind: 'copy', copy: { src: '/src/app.txt', dest: '/app/', createDestPath: true } } }] },
    };
    const seen: string[] = [];
    const cm = fileCacheMap(op as Op & { kind: 'file' }, async (_ref, path, opts) => {
      seen.push(`${path}|${JSON.stringify(opts)}`);
      return sha(path);
    });
    const action = Buffer.from('{"src":"app.txt","dest":"/app/","createDestPath":true}').toString('base64');
    expect(cm.digest).toBe(sha(`{"Type":"buildkit.file.v0","Actions":["${action}"]}`));
    expect(cm.deps[0]).toEqual({});
    expect(cm.deps[1]?.selector).toBe(sha('/src/app.txt'));
    const d = await cm.deps[1]?.computeDigest?.({ snapshot: 's', size: 0 }, new AbortController().signal);
    expect(seen).toEqual(['/src/app.txt|{}']);
    expect(d).toBe(sha(sha('/src/app.txt')));
  });

  test('file: non-default indexes are part of the key', () => {
    const op: Op = {
      kind: 'file',
      inputs: [{ digest: IN, index: 0 }],
      file: { actions: [{ input: -1, secondaryInput: -1, output: 0, action: { kind: 'mkdir', mkdir: { path: '/x', mode: 0o755 } } }] },
    };
    const action = Buffer.from('{"path":"/x","mode":493}').toString('base64');
    expect(fileCacheMap(op as Op & { kind: 'file' }, noChecksum).digest).toBe(sha(`{"Type":"buildkit.file.v0","Actions":["${action}"],"indexes":[[-1,-1,0]]}`));
  });

  test('merge and diff: the JSON itself is the digest (ops/merge.go, diff.go: digest.Digest(dt)); build: sha256 of {Type, Exec}', () => {
    const merge = { kind: 'merge', inputs: [{ digest: IN, index: 0 }, { digest: IN, index: 1 }], merge: { inputs: [{ input: 0 }, { input: 1 }] } } as Op;
    expect(plainCacheMap(merge, 'buildkit.merge.v0').digest).toBe('{"Type":"buildkit.merge.v0","Merge":{"inputs":[{"input":0},{"input":1}]}}');
    const diff = { kind: 'diff', inputs: [{ digest: IN, index: 0 }, { digest: IN, index: 1 }], diff: { lower: { input: 0 }, upper: { input: 1 } } } as Op;
    const dm = plainCacheMap(diff, 'buildkit.diff.v0');
    expect(dm.digest).toBe('{"Type":"buildkit.diff.v0","Diff":{"lower":{"input":0},"upper":{"input":1}}}');
    expect(dm.deps).toHaveLength(2);
    const build = { kind: 'build', inputs: [], build: { builder: -1 } } as unknown as Op;
    const body = opJson(build).slice('{"Op":{"build":'.length, -2);
    expect(plainCacheMap(build, 'buildkit.build.v0').digest).toBe(sha(`{"Type":"buildkit.build.v0","Exec":${body}}`));
  });

  test('source: buildkit.source.v0 prefix; session keys never match', () => {
    expect(sourceCacheMap('sha256:abc').digest).toBe(sha('buildkit.source.v0:sha256:abc'));
    expect(sourceCacheMap('session:x').digest.startsWith('random:')).toBe(true);
  });
});
