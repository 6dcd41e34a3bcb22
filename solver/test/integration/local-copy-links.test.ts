// COPY out of a local source hard-links the synced files (local snapshot and COPY result share the
// mirror's inodes). These tests prove the links are invisible: a later sync (context files edited
// in place, chmod'ed, removed) never changes an earlier snapshot or COPY result, metadata is the
// source's, and a COPY that changes owner or mode gets its own inodes.
import { execFileSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { FileOp } from '@kiln/llb-core';
import { ContentStore, LocalSnapshotter, applyFileAction, unpackLayer } from '@kiln/runtime';
import { RuntimeWorker } from '@kiln/solver';

let root = '';
let ctxDir = '';
let snapshotter: LocalSnapshotter;
let worker: RuntimeWorker;
const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };
const localOp = { identifier: 'local://ctx' };

/** `COPY . /ctx` as the Dockerfile frontend writes it, onto scratch, with optional --chown/--chmod. */
function copyOp(extra: { owner?: { user: { kind: 'byId'; byId: number } }; mode?: number } = {}): FileOp {
  return {
    actions: [
      {
        input: -1,
        secondaryInput: 0,
        output: 0,
        action: {
          kind: 'copy',
          copy: {
            src: '/',
            dest: '/ctx',
            followSymlink: true,
            dirCopyContents: true,
            createDestPath: true,
            allowWildcard: true,
            allowEmptyWildcard: true,
            mode: extra.mode ?? -1,
            timestamp: -1n,
            ...(extra.owner === undefined ? {} : { owner: extra.owner }),
          },
        },
      },
    ],
  };
}

async function withSnapshot<T>(id: string, fn: (path: string) => Promise<T>): Promise<T> {
  const m = await snapshotter.mount(id);
  try {
    return await fn(m.path);
  } finally {
    await m.release();
  }
}

function listing(dir: string): string[] {
  return execFileSync('find', ['.', '-mindepth', '1', '-printf', '%p %y %m %U:%G %s\\n'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').sort();
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-links-it-'));
  ctxDir = await mkdtemp(join(tmpdir(), 'kiln-links-ctx-'));
  await mkdir(join(ctxDir, 'a/b'), { recursive: true });
  await writeFile(join(ctxDir, 'a/b/keep.txt'), 'keep\n');
  await writeFile(join(ctxDir, 'edit.txt'), 'v1\n');
  await writeFile(join(ctxDir, 'gone.txt'), 'gone\n');
  await writeFile(join(ctxDir, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(ctxDir, 'run.sh'), 0o750);
  await symlink('a/b/keep.txt', join(ctxDir, 'link'));
  await chown(join(ctxDir, 'a'), 1234, 5678);
  await utimes(join(ctxDir, 'a/b/keep.txt'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
  await utimes(join(ctxDir, 'a/b'), new Date('2021-01-02T03:04:05Z'), new Date('2021-01-02T03:04:05Z'));
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

describe('COPY from a local source', () => {
  test('links the synced files, keeps their metadata, and a later sync cannot change an earlier result', async () => {
    const local1 = await worker.source(localOp, ctx);
    const [copy1] = await worker.file(copyOp(), [local1], ctx);
    if (copy1 === undefined) throw new Error('no COPY result');
    const before = await withSnapshot(copy1.snapshot, async (p) => {
      const dir = join(p, 'ctx');
      // Same inode as the mirror and the local snapshot: nothing was copied.
      expect((await lstat(join(dir, 'edit.txt'))).nlink).toBeGreaterThanOrEqual(3);
      expect((await lstat(join(dir, 'run.sh'))).mode & 0o7777).toBe(0o750);
      expect((await lstat(join(dir, 'a/b/keep.txt'))).mtime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
      // The directory the links went into keeps the source's mtime.
      expect((await lstat(join(dir, 'a/b'))).mtime.toISOString()).toBe('2021-01-02T03:04:05.000Z');
      expect(await readlink(join(dir, 'link'))).toBe('a/b/keep.txt');
      return listing(dir);
    });
    // The same tree, owned by 0:0 as a build context is (buildx resetUIDAndGID).
    expect(before).toEqual(listing(ctxDir).map((l) => l.replace(/ \d+:\d+ /, ' 0:0 ')));

    // Edit in place (same inode in the context), chmod, remove, add; then sync and COPY again.
    await writeFile(join(ctxDir, 'edit.txt'), 'v2 longer\n');
    await utimes(join(ctxDir, 'edit.txt'), new Date(), new Date(Date.now() + 5000));
    await chmod(join(ctxDir, 'run.sh'), 0o700);
    await rm(join(ctxDir, 'gone.txt'));
    await writeFile(join(ctxDir, 'new.txt'), 'new\n');
    const local2 = await worker.source(localOp, ctx);
    expect(local2.snapshot).not.toBe(local1.snapshot);
    const [copy2] = await worker.file(copyOp(), [local2], ctx);
    if (copy2 === undefined) throw new Error('no COPY result');

    await withSnapshot(copy1.snapshot, async (p) => {
      const dir = join(p, 'ctx');
      expect(await readFile(join(dir, 'edit.txt'), 'utf8')).toBe('v1\n');
      expect(await readFile(join(dir, 'gone.txt'), 'utf8')).toBe('gone\n');
      expect((await lstat(join(dir, 'run.sh'))).mode & 0o7777).toBe(0o750);
      expect(listing(dir)).toEqual(before);
    });
    await withSnapshot(local1.snapshot, async (p) => {
      expect(await readFile(join(p, 'edit.txt'), 'utf8')).toBe('v1\n');
      expect((await lstat(join(p, 'run.sh'))).mode & 0o7777).toBe(0o750);
    });
    await withSnapshot(copy2.snapshot, async (p) => {
      const dir = join(p, 'ctx');
      expect(await readFile(join(dir, 'edit.txt'), 'utf8')).toBe('v2 longer\n');
      expect((await lstat(join(dir, 'run.sh'))).mode & 0o7777).toBe(0o700);
      expect(listing(dir)).toEqual(listing(ctxDir).map((l) => l.replace(/ \d+:\d+ /, ' 0:0 ')));
      // Unchanged files are still shared with the first COPY (same inode).
      const keep2 = await lstat(join(dir, 'a/b/keep.txt'));
      const keep1 = await withSnapshot(copy1.snapshot, (q) => lstat(join(q, 'ctx/a/b/keep.txt')));
      expect(keep2.ino).toBe(keep1.ino);
    });
  }, 60_000);

  test('--chown and --chmod give the copies their own inodes and leave the source as it was', async () => {
    const local = await worker.source(localOp, ctx);
    const [owned] = await worker.file(copyOp({ owner: { user: { kind: 'byId', byId: 4321 } } }), [local], ctx);
    const [moded] = await worker.file(copyOp({ mode: 0o600 }), [local], ctx);
    if (owned === undefined || moded === undefined) throw new Error('no COPY result');
    await withSnapshot(owned.snapshot, async (p) => {
      const st = await lstat(join(p, 'ctx/edit.txt'));
      expect([st.uid, st.gid, st.nlink]).toEqual([4321, 4321, 1]);
    });
    await withSnapshot(moded.snapshot, async (p) => {
      const st = await lstat(join(p, 'ctx/run.sh'));
      expect([st.mode & 0o7777, st.nlink]).toEqual([0o600, 1]);
    });
    await withSnapshot(local.snapshot, async (p) => {
      const st = await lstat(join(p, 'run.sh'));
      const src = await lstat(join(ctxDir, 'run.sh'));
      expect([st.uid, st.mode & 0o7777]).toEqual([src.uid, src.mode & 0o7777]);
    });
  }, 60_000);
});
