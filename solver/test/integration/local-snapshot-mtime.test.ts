// A local source's snapshot is what the context holds now, times included: BuildKit syncs the
// context into a ref with the files' current mtimes, which a COPY then keeps. The content digest
// (contenthash's tarsum headers) leaves mtimes out, so it cannot name the snapshot alone.
import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ContentStore, LocalSnapshotter, applyFileAction, unpackLayer } from '@kiln/runtime';
import { RuntimeWorker } from '@kiln/solver';

let root = '';
let ctxDir = '';
let snapshotter: LocalSnapshotter;
let worker: RuntimeWorker;
const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-local-mtime-'));
  ctxDir = await mkdtemp(join(tmpdir(), 'kiln-local-mtime-ctx-'));
  await writeFile(join(ctxDir, 'a.txt'), 'same bytes\n');
  snapshotter = new LocalSnapshotter({ root });
  worker = new RuntimeWorker({
    root,
    snapshotter,
    executor: { run: () => Promise.reject(new Error('no exec here')) },
    content: await ContentStore.open(join(root, 'content')),
    ensureImage: () => Promise.reject(new Error('no images here')),
    unpackLayer,
    applyFileAction,
    localDirs: { ctx: ctxDir },
  });
}, 60_000);

afterAll(async () => {
  if (ctxDir !== '') await rm(ctxDir, { recursive: true, force: true });
  if (root !== '') {
    execFileSync('sh', ['-c', `grep -o ' ${root}/[^ ]*' /proc/mounts | xargs -r -n1 umount -l || true`]);
    await rm(root, { recursive: true, force: true });
  }
});

async function mtimeIn(snapshot: string, path: string): Promise<number> {
  const m = await snapshotter.mount(snapshot);
  try {
    return (await lstat(join(m.path, path))).mtimeMs;
  } finally {
    await m.release();
  }
}

test('a context file whose mtime alone changed is seen with its new mtime; an unchanged context reuses its snapshot', async () => {
  const op = { identifier: 'local://ctx' };
  await utimes(join(ctxDir, 'a.txt'), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
  const first = await worker.source(op, ctx);
  expect(await mtimeIn(first.snapshot, 'a.txt')).toBe(Date.parse('2020-01-01T00:00:00Z'));
  expect((await worker.source(op, ctx)).snapshot).toBe(first.snapshot);

  await utimes(join(ctxDir, 'a.txt'), new Date('2024-06-01T00:00:00Z'), new Date('2024-06-01T00:00:00Z'));
  const second = await worker.source(op, ctx);
  // Same bytes, same mode: the content checksum is equal, the files are not.
  expect(await worker.checksum(second, '/', {}, ctx.signal)).toBe(await worker.checksum(first, '/', {}, ctx.signal));
  expect(await mtimeIn(second.snapshot, 'a.txt')).toBe(Date.parse('2024-06-01T00:00:00Z'));
  // The earlier snapshot is unchanged.
  expect(await mtimeIn(first.snapshot, 'a.txt')).toBe(Date.parse('2020-01-01T00:00:00Z'));
});
