import { describe, expect, test } from 'vitest';
import { image, local, scratch, mkdir, copy, merge, decodeOp, loadDefinition } from './index.js';

// Keeps the README example honest: it must marshal and load.
describe('README example', () => {
  test('marshals to a valid definition', async () => {
    const src = local('context', { sessionId: 'sess-1', sharedKeyHint: 'context' });
    const build = image('golang:1.22')
      .dir('/src')
      .file(copy(src, '.', '.', { copyDirContentsOnly: true }))
      .addEnv('CGO_ENABLED', '0')
      .run({
        shlex: 'go build -o /out/app ./cmd/app',
        mounts: [{ target: '/root/.cache/go-build', cache: { id: 'gocache', sharing: 'shared' } }, { target: '/out' }],
        secrets: [{ id: 'netrc', target: '/root/.netrc' }],
        network: 'none',
      });
    const app = scratch()
      .file(mkdir('/app', 0o755).copy(build.getMount('/out'), '/app', '/app/bin'))
      .platform('linux/amd64');
    const def = await merge([image('busybox'), app], { customName: 'final' }).marshal({ platform: 'linux/amd64' });
    const g = loadDefinition(def);
    expect(g.root?.vertex.op.kind).toBe('merge');
    const kinds = def.def.map((b) => decodeOp(b).kind);
    expect(kinds).toEqual(['source', 'source', 'source', 'file', 'exec', 'file', 'merge', 'none']);
    const exec = def.def.map((b) => decodeOp(b)).find((o) => o.kind === 'exec');
    if (exec?.kind !== 'exec') throw new Error('expected exec');
    expect(exec.exec.meta?.cwd).toBe('/src');
    expect(exec.exec.mounts?.map((m) => [m.dest, m.output ?? 0])).toEqual([
      ['/', 0],
      ['/out', 1],
      ['/root/.cache/go-build', -1],
      ['/root/.netrc', 0],
    ]);
  });
});
