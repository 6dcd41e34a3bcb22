import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lstat, mkdir, mkdtemp, readFile, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MountType, digestOf, encodeOp, type Definition, type Digest, type Op, type OpMetadata } from '@kiln/llb-core';
import {
  ContentStore,
  ImageStore,
  LocalSnapshotter,
  RuncExecutor,
  applyFileAction,
  createBusyboxImage,
  ensureImage,
  unpackLayer,
  type ExecRequest,
} from '@kiln/runtime';
import { CacheStore, ExecFailedError, RuntimeWorker, Solver, type BuildResult, type FailedExecState, type RuntimeWorkerDeps } from '@kiln/solver';

let root = '';
let ctxDir = '';
let runs = 0;
let solver: Solver;
let snapshotter: LocalSnapshotter;
let worker: RuntimeWorker;
let deps: RuntimeWorkerDeps;

beforeAll(async () => {
  try {
    execFileSync('runc', ['--version']);
  } catch {
    throw new Error('runc is required for these tests: apt-get install runc busybox-static');
  }
  root = await mkdtemp(join(tmpdir(), 'kiln-solver-it-'));
  ctxDir = await mkdtemp(join(tmpdir(), 'kiln-solver-ctx-'));
  await writeFile(join(ctxDir, 'app.txt'), 'v1\n');
  await writeFile(join(ctxDir, 'other.txt'), 'unrelated\n');
  await mkdir(join(ctxDir, 'sub'));
  await writeFile(join(ctxDir, 'sub', 'f.txt'), 'from sub\n');
  const content = await ContentStore.open(join(root, 'content'));
  const images = await ImageStore.open(join(root, 'images'));
  await createBusyboxImage(content, { names: ['localhost:5000/busybox:latest'], images });
  snapshotter = new LocalSnapshotter({ root });
  const runc = new RuncExecutor({ root });
  const executor = {
    run: (req: ExecRequest) => {
      runs++;
      return runc.run(req);
    },
  };
  deps = {
    root,
    snapshotter,
    executor,
    content,
    ensureImage: (ref, o) => ensureImage(ref, { store: content, images, ...o }),
    unpackLayer,
    applyFileAction,
    localDirs: { context: ctxDir },
    secrets: { tok: new TextEncoder().encode('sekrit') },
    recordUsage: (r) => store.upsertRecord(r),
    leaseSnapshot: (id) => store.lease(id),
  };
  worker = new RuntimeWorker(deps);
  const store: CacheStore = CacheStore.open({ path: join(root, 'solver.db'), releaseSnapshot: (id, ctx) => worker.releaseSnapshot(id, ctx) });
  solver = new Solver({ worker, store, parallelism: 2 });
}, 120_000);

afterAll(async () => {
  solver?.store.close();
  await rm(root, { recursive: true, force: true });
  await rm(ctxDir, { recursive: true, force: true });
});

function definition(ops: Op[], names: Record<number, string>): Definition {
  const def: Uint8Array[] = [];
  const metadata = new Map<Digest, OpMetadata>();
  ops.forEach((op, i) => {
    const bytes = encodeOp(op);
    def.push(bytes);
    const name = names[i];
    if (name !== undefined) metadata.set(digestOf(bytes), { description: new Map([['llb.customname', name]]) });
  });
  def.push(encodeOp({ kind: 'none', inputs: [{ digest: digestOf(def[def.length - 1] as Uint8Array), index: 0 }] }));
  return { def, metadata };
}
const ref = (ops: Op[], i: number): { digest: ReturnType<typeof digestOf>; index: number } => ({ digest: digestOf(encodeOp(ops[i] as Op)), index: 0 });
const ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

/** busybox (op 0) and the context (op 1), then `exec` on both as inputs 0 and 1 (op 2). */
function execOnContext(exec: Extract<Op, { kind: 'exec' }>['exec']): Op[] {
  const ops: Op[] = [
    { kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } },
    { kind: 'source', inputs: [], source: { identifier: 'local://context' } },
  ];
  ops.push({ kind: 'exec', inputs: [ref(ops, 0), ref(ops, 1)], exec });
  return ops;
}

function graph(lastCmd = 'cat /app.txt /base.txt > /result.txt'): Definition {
  const ops: Op[] = [
    { kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } },
    { kind: 'source', inputs: [], source: { identifier: 'local://context' } },
  ];
  ops.push({ kind: 'exec', inputs: [ref(ops, 0)], exec: { meta: { args: ['/bin/sh', '-c', 'echo base > /base.txt'], env: ENV, cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] } });
  ops.push({
    kind: 'file',
    inputs: [ref(ops, 2), ref(ops, 1)],
    file: { actions: [{ input: 0, secondaryInput: 1, output: 0, action: { kind: 'copy', copy: { src: '/app.txt', dest: '/app.txt', createDestPath: true, mode: -1, timestamp: -1n } } }] },
  });
  ops.push({ kind: 'exec', inputs: [ref(ops, 3)], exec: { meta: { args: ['/bin/sh', '-c', lastCmd], env: ENV, cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] } });
  return definition(ops, { 0: '[1/4] FROM busybox', 2: '[2/4] RUN echo base', 3: '[3/4] COPY app.txt /app.txt', 4: `[4/4] RUN ${lastCmd}` });
}

const held: BuildResult[] = [];
async function solve(def: Definition): Promise<BuildResult | undefined> {
  const r = await solver.solve(def);
  if (r !== undefined) held.push(r);
  return r;
}

async function readResult(r: BuildResult | undefined, path: string): Promise<string> {
  if (r === undefined) throw new Error('no result');
  const m = await snapshotter.mount(r.ref.snapshot);
  try {
    return await readFile(join(m.path, path), 'utf8');
  } finally {
    await m.release();
  }
}

describe('RuntimeWorker + Solver with real runc', () => {
  test('build, unchanged rebuild without containers, unrelated change, one-file change', async () => {
    const r1 = await solve(graph());
    expect(runs).toBe(2);
    expect(await readResult(r1, 'result.txt')).toBe('v1\nbase\n');

    const r2 = await solve(graph());
    expect(runs).toBe(2); // no container started
    expect(r2?.cached).toBe(true);

    await writeFile(join(ctxDir, 'other.txt'), 'changed but not copied\n');
    const r3 = await solve(graph());
    expect(runs).toBe(2); // COPY selects app.txt only: its content key is unchanged
    expect(r3?.cached).toBe(true);

    await writeFile(join(ctxDir, 'app.txt'), 'v2\n');
    await utimes(join(ctxDir, 'app.txt'), new Date(), new Date(Date.now() + 2000));
    const r4 = await solve(graph());
    expect(runs).toBe(3); // only the last RUN re-ran; RUN echo base stayed cached
    expect(await readResult(r4, 'result.txt')).toBe('v2\nbase\n');
    expect(solver.du().length).toBeGreaterThan(0);
  }, 120_000);

  test('DiffOp of siblings (lower not a base of upper): merged onto lower it gives upper, deletions included', async () => {
    const before = runs;
    const ops: Op[] = [{ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } }];
    const run = (cmd: string, input: number): Op => ({ kind: 'exec', inputs: [ref(ops, input)], exec: { meta: { args: ['/bin/sh', '-c', cmd], env: ENV, cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] } });
    ops.push(run('echo a > /a.txt && mkdir /d && echo x > /d/x && echo a > /d/a', 0)); // 1: A
    ops.push(run('echo c > /c.txt && mkdir /d && echo x > /d/x && rm /bin/true', 0)); // 2: C
    ops.push({ kind: 'diff', inputs: [ref(ops, 1), ref(ops, 2)], diff: { lower: { input: 0 }, upper: { input: 1 } } }); // 3: Diff(A, C)
    ops.push({ kind: 'merge', inputs: [ref(ops, 1), ref(ops, 3)], merge: { inputs: [{ input: 0 }, { input: 1 }] } }); // 4: Merge(A, Diff(A, C))
    ops.push(run('ls /d > /d-list; for f in /a.txt /bin/true /c.txt; do test -e $f && echo $f; done > /present', 4));
    const r = await solve(definition(ops, {}));
    expect(runs - before).toBe(3);
    expect(await readResult(r, '/present')).toBe('/c.txt\n');
    expect(await readResult(r, '/d-list')).toBe('x\n');
    expect(await readResult(r, '/c.txt')).toBe('c\n');
  });

  test('MergeOp of an image whose top layer is empty (RUN true) and a layer on scratch: the result has every layer of both inputs', async () => {
    const ops: Op[] = [{ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } }];
    ops.push({ kind: 'exec', inputs: [ref(ops, 0)], exec: { meta: { args: ['/bin/true'], env: ENV, cwd: '/' }, mounts: [{ input: 0, dest: '/', output: 0 }] } }); // 1: empty layer
    ops.push({ kind: 'file', inputs: [], file: { actions: [{ input: -1, secondaryInput: -1, output: 0, action: { kind: 'mkfile', mkfile: { path: '/f', mode: 0o644, data: new TextEncoder().encode('f\n'), timestamp: -1n } } }] } }); // 2
    ops.push({ kind: 'merge', inputs: [ref(ops, 1), ref(ops, 2)], merge: { inputs: [{ input: 0 }, { input: 1 }] } }); // 3
    const chain = async (id: string): Promise<{ id: string; diffID: string | undefined }[]> => {
      const out: { id: string; diffID: string | undefined }[] = [];
      for (let cur: string | undefined = id; cur !== undefined; ) {
        const info = await snapshotter.stat(cur);
        out.unshift({ id: info.id, diffID: info.labels['kiln.diffID'] });
        cur = info.parent;
      }
      return out;
    };
    const empty = await solve(definition(ops.slice(0, 2), {}));
    const merged = await solve(definition(ops, {}));
    if (empty === undefined || merged === undefined) throw new Error('no result');
    const image = await chain(empty.ref.snapshot);
    const layers = await chain(merged.ref.snapshot);
    // busybox's layer, the RUN's empty one, the file: an export writes three layers, the image's two first
    expect(layers).toHaveLength(image.length + 1);
    expect(layers.slice(0, image.length)).toEqual(image);
    expect(layers.map((l) => l.diffID)).toEqual([expect.stringMatching(/^sha256:/), undefined, undefined]);
    expect(await readResult(merged, '/f')).toBe('f\n');
  });

  test('a failing RUN reports command, exit code and its output', async () => {
    const p = solve(graph('echo oops >&2; exit 3'));
    await expect(p).rejects.toMatchObject({
      code: 'SOLVER_EXEC_FAILED',
      exitCode: 3,
      command: '/bin/sh -c echo oops >&2; exit 3',
      message: 'process "/bin/sh -c echo oops >&2; exit 3" did not complete successfully: exit code: 3',
      logTail: ['oops'],
    });
  }, 120_000);

  test('a failed exec\'s state is kept when asked: the root with its changes, its mounts, its process without secret values; release drops it', async () => {
    const states: FailedExecState[] = [];
    const keeping = new RuntimeWorker({ ...deps, onFailedExec: (st) => states.push(st) });
    const ops = execOnContext({
      meta: { args: ['/bin/sh', '-c', 'echo half > /half-done; echo c > /cache/c; exit 7'], env: [...ENV, 'MODE=debug'], cwd: '/work', user: 'root' },
      mounts: [
        { input: 0, dest: '/', output: 0 },
        { input: 1, dest: '/src', selector: '/sub', readonly: true, output: -1 },
        { input: -1, dest: '/cache', mountType: MountType.CACHE, cacheOpt: { id: 'it-cache' }, output: -1 },
        { input: -1, dest: '/tmp', mountType: MountType.TMPFS, output: -1 },
        { input: -1, dest: '/run/secrets/tok', mountType: MountType.SECRET, secretOpt: { id: 'tok', mode: 0o440 }, output: -1 },
      ],
      secretenv: [{ id: 'tok', name: 'TOKEN' }],
    });
    // The ExecFailedError behind the solve's VertexError.
    const execFailure = async (p: Promise<unknown>): Promise<ExecFailedError | undefined> => {
      let cause: unknown = await p.then(() => undefined, (e: unknown) => e);
      while (cause instanceof Error && !(cause instanceof ExecFailedError)) cause = cause.cause;
      return cause instanceof ExecFailedError ? cause : undefined;
    };
    const failure = await execFailure(solver.solve(definition(ops, {}), { worker: keeping }));
    expect(failure).toBeInstanceOf(ExecFailedError);
    const state = failure?.state;
    expect(states).toEqual([state]);
    if (state === undefined) return;
    // The env= secret by id (a debugger sets it again from the session), never its value.
    expect(state.process).toEqual({ args: ['/bin/sh', '-c', 'echo half > /half-done; echo c > /cache/c; exit 7'], env: [...ENV, 'MODE=debug'], secretEnv: [{ name: 'TOKEN', secretId: 'tok', optional: false }], cwd: '/work', user: 'root' });
    expect(JSON.stringify(state)).not.toContain('sekrit');
    expect([state.network, state.security]).toEqual(['sandbox', 'sandbox']);
    expect(state.mounts.map((m) => [m.kind, m.dest, 'readonly' in m ? m.readonly : undefined])).toEqual([
      ['snapshot', '/', false],
      ['snapshot', '/src', true],
      ['cache', '/cache', false],
      ['tmpfs', '/tmp', undefined],
      ['secret', '/run/secrets/tok', undefined],
    ]);
    // A secret mount by id (a debugger mounts it again from the session), never its value.
    expect(state.mounts[4]).toEqual({ kind: 'secret', dest: '/run/secrets/tok', secretId: 'tok', mode: 0o440 });
    const rootMount = state.mounts[0];
    const srcMount = state.mounts[1];
    if (rootMount?.kind !== 'snapshot' || srcMount?.kind !== 'snapshot') throw new Error('snapshot mounts expected');
    expect(srcMount.selector).toBe('sub');
    // The root as the process left it: a committed snapshot with the file it wrote.
    const m = await snapshotter.mount(rootMount.snapshot);
    try {
      expect(await readFile(join(m.path, 'half-done'), 'utf8')).toBe('half\n');
    } finally {
      await m.release();
    }
    // Leased: a prune of everything leaves it.
    await solver.prune({ all: true });
    expect(await snapshotter.stat(rootMount.snapshot)).toBeDefined();
    await state.release();
    await state.release();
    await expect(snapshotter.stat(rootMount.snapshot)).rejects.toThrow();
    // Without the hook nothing is kept.
    const plain = await execFailure(solver.solve(definition(ops, {})));
    expect(plain).toBeInstanceOf(ExecFailedError);
    expect(plain?.state).toBeUndefined();
  }, 120_000);

  test('bind mount of a context subpath and a cache mount that persists across builds', async () => {
    const run = (tag: string): Definition => {
      const ops = execOnContext({
        meta: { args: ['/bin/sh', '-c', `cat /src/f.txt > /out; echo ${tag} >> /cache/stamp; wc -l < /cache/stamp > /count; touch /src/ignored || true`], env: ENV, cwd: '/' },
        mounts: [
          { input: 0, dest: '/', output: 0 },
          { input: 1, dest: '/src', selector: '/sub', readonly: true, output: -1 },
          { input: -1, dest: '/cache', mountType: MountType.CACHE, cacheOpt: { id: 'it-cache' }, output: -1 },
        ],
      });
      return definition(ops, { 2: `RUN ${tag}` });
    };
    const a = await solve(run('first'));
    expect(await readResult(a, 'out')).toBe('from sub\n');
    expect((await readResult(a, 'count')).trim()).toBe('1');
    const b = await solve(run('second'));
    expect((await readResult(b, 'count')).trim()).toBe('2');
    await expect(readFile(join(ctxDir, 'sub', 'ignored'))).rejects.toMatchObject({ code: 'ENOENT' });
  }, 120_000);

  test('secret as an env var of one RUN, and a cache mount seeded from an input', async () => {
    const ops: Op[] = [{ kind: 'source', inputs: [], source: { identifier: 'docker-image://localhost:5000/busybox:latest' } }];
    ops.push({
      kind: 'exec',
      inputs: [ref(ops, 0)],
      exec: {
        meta: { args: ['/bin/sh', '-c', 'test "$TOKEN" = sekrit && echo ok > /ok; cat /seed/passwd | head -1 > /seeded'], env: ENV, cwd: '/' },
        mounts: [
          { input: 0, dest: '/', output: 0 },
          { input: 0, selector: '/etc', dest: '/seed', mountType: MountType.CACHE, cacheOpt: { id: 'seeded' }, output: -1 },
        ],
        secretenv: [{ id: 'tok', name: 'TOKEN' }],
      },
    });
    const r = await solve(definition(ops, {}));
    expect(await readResult(r, 'ok')).toBe('ok\n');
    expect(await readResult(r, 'seeded')).toBe('root:x:0:0:root:/root:/bin/sh\n');
  }, 120_000);

  test('local source snapshots match the context exactly, and a later sync leaves an earlier one as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-solver-local-'));
    try {
      await mkdir(join(dir, 'a/b'), { recursive: true });
      await writeFile(join(dir, 'a/b/keep.txt'), 'keep');
      await writeFile(join(dir, 'gone.txt'), 'gone');
      await writeFile(join(dir, 'edit.txt'), 'v1');
      const w = new RuntimeWorker({
        root,
        snapshotter,
        executor: { run: () => Promise.reject(new Error('no exec here')) },
        content: await ContentStore.open(join(root, 'content')),
        ensureImage: () => Promise.reject(new Error('no images here')),
        unpackLayer,
        applyFileAction,
        localDirs: { ctx: dir },
      });
      const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };
      const op = { identifier: 'local://ctx' };
      const first = await w.source(op, ctx);
      await rm(join(dir, 'gone.txt'));
      await writeFile(join(dir, 'edit.txt'), 'v2');
      await utimes(join(dir, 'edit.txt'), new Date(), new Date(Date.now() + 3000));
      await mkdir(join(dir, 'new'));
      await writeFile(join(dir, 'new/n.txt'), 'n');
      const second = await w.source(op, ctx);
      expect(second.snapshot).not.toBe(first.snapshot);
      // The snapshots hard-link the mirror's files; syncing the change did not touch the first one.
      const m1 = await snapshotter.mount(first.snapshot);
      try {
        expect(await readFile(join(m1.path, 'edit.txt'), 'utf8')).toBe('v1');
        expect(await readFile(join(m1.path, 'gone.txt'), 'utf8')).toBe('gone');
      } finally {
        await m1.release();
      }
      const m = await snapshotter.mount(second.snapshot);
      try {
        const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: m.path, encoding: 'utf8' }).trim().split('\n').sort();
        expect(list).toEqual(['./a', './a/b', './a/b/keep.txt', './edit.txt', './new', './new/n.txt']);
        expect(await readFile(join(m.path, 'edit.txt'), 'utf8')).toBe('v2');
      } finally {
        await m.release();
      }
      // Same content again: the same snapshot, nothing copied.
      expect((await w.source(op, ctx)).snapshot).toBe(second.snapshot);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test('aborting a solve kills the running container and stores nothing for it', async () => {
    const ctl = new AbortController();
    const t0 = Date.now();
    const p = solver.solve(graph('sleep 30'), { signal: ctl.signal });
    // Abort once the container is running (the output-less sleep started).
    await new Promise((r) => setTimeout(r, 1500));
    ctl.abort();
    await expect(p).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 500));
    const containers = execFileSync('runc', ['--root', join(root, 'runc'), 'list', '-q'], { encoding: 'utf8' }).trim();
    expect(containers).toBe('');
    expect(solver.du().some((u) => u.description.includes('sleep 30'))).toBe(false);
  }, 120_000);

  test('http source: downloaded, keyed like BuildKit, snapshotted with perm and Last-Modified', async () => {
    let hits = 0;
    const server = createServer((req, res) => {
      hits++;
      if (req.url === '/files/config.yaml') {
        res.writeHead(200, { 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT', 'content-type': 'text/plain' });
        res.end('key: value\n');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: () => undefined };
      const op = { identifier: `http://127.0.0.1:${port}/files/config.yaml`, attrs: new Map([['http.perm', '0644']]) };
      const key = await worker.sourceCacheKey(op, ctx);
      const expected = createHash('sha256')
        .update(`{"Filename":"config.yaml","Perm":420,"UID":0,"GID":0,"Checksum":"sha256:${createHash('sha256').update('key: value\n').digest('hex')}","LastModTime":"Wed, 21 Oct 2015 07:28:00 GMT"}`)
        .digest('hex');
      expect(key).toBe(`sha256:${expected}`);
      const r = await worker.source(op, ctx);
      expect(hits).toBe(1); // the key's download is reused for the snapshot
      const m = await snapshotter.mount(r.snapshot);
      try {
        const st = await lstat(join(m.path, 'config.yaml'));
        expect(st.mode & 0o777).toBe(0o644);
        expect(st.mtime.toISOString()).toBe('2015-10-21T07:28:00.000Z');
        expect(await readFile(join(m.path, 'config.yaml'), 'utf8')).toBe('key: value\n');
      } finally {
        await m.release();
      }
      await expect(worker.sourceCacheKey({ identifier: `http://127.0.0.1:${port}/missing` }, ctx)).rejects.toMatchObject({ code: 'SOLVER_NOT_FOUND' });
      await new Promise((r) => server.close(r));
      // Nothing listens there any more: the error says why the fetch failed, not only that it did.
      await expect(worker.sourceCacheKey({ identifier: `http://127.0.0.1:${port}/gone` }, ctx)).rejects.toMatchObject({
        code: 'SOLVER_NOT_FOUND',
        message: expect.stringMatching(new RegExp(`failed to fetch http://127\\.0\\.0\\.1:${port}/gone: fetch failed \\(.*ECONNREFUSED`)),
      });
    } finally {
      if (server.listening) await new Promise((r) => server.close(r));
    }
  }, 120_000);

  test('http source with credentials in its URL: sent as Basic authorization (as Go\'s client does), never shown in status or errors', async () => {
    const auths: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      auths.push(req.headers.authorization);
      const ok = req.headers.authorization === `Basic ${Buffer.from('tok:p@ss').toString('base64')}`;
      res.writeHead(ok ? 200 : 401);
      res.end(ok ? 'secret file\n' : '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const shown: string[] = [];
      const ctx = { signal: new AbortController().signal, vertex: undefined as never, platform: undefined, log: () => undefined, status: (id: string) => void shown.push(id) };
      const r = await worker.source({ identifier: `http://tok:p%40ss@127.0.0.1:${port}/f.txt` }, ctx);
      const m = await snapshotter.mount(r.snapshot);
      try {
        expect(await readFile(join(m.path, 'f.txt'), 'utf8')).toBe('secret file\n');
      } finally {
        await m.release();
      }
      expect(shown.length).toBeGreaterThan(0);
      expect(shown.every((id) => id === `http://127.0.0.1:${port}/f.txt`)).toBe(true);
      const denied = await worker.sourceCacheKey({ identifier: `http://tok:wrong@127.0.0.1:${port}/g.txt` }, ctx).then(() => undefined, (e: unknown) => e as Error);
      expect(denied?.message).toBe(`failed to fetch http://127.0.0.1:${port}/g.txt: HTTP 401`);
      expect(auths.at(-1)).toBe(`Basic ${Buffer.from('tok:wrong').toString('base64')}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 120_000);

  test('a release the cache store calls off at the last moment (the snapshot was recorded again) keeps the snapshot', async () => {
    await snapshotter.prepare('keep-me-active', undefined);
    await snapshotter.commit('keep-me', 'keep-me-active');
    await expect(worker.releaseSnapshot('keep-me', { stillUnused: () => false })).rejects.toMatchObject({ code: 'SNAPSHOT_STATE' });
    expect((await snapshotter.stat('keep-me')).kind).toBe('committed');
    await worker.releaseSnapshot('keep-me', { stillUnused: () => true });
    await expect(snapshotter.stat('keep-me')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
  });

  test('du lists the cache mount; prune --all releases every snapshot and the cache mount directory', async () => {
    const du = solver.du();
    const mountsDu = du.filter((u) => u.kind === 'exec.cachemount');
    // A cache seeded from an input is keyed by its id and the seed snapshot (BuildKit: id + ref ID).
    expect(mountsDu.map((u) => u.snapshot.replace(/^(cachemount:seeded):.+$/, '$1')).sort()).toEqual(['cachemount:it-cache', 'cachemount:seeded']);
    expect(mountsDu.every((u) => u.size > 0)).toBe(true);
    // Results still held by a caller are in use and survive a prune.
    // A pruned parent of a snapshot still held stays on disk until its child goes: pending
    // removal (listed by du, not reported as removed), and removed by the next prune.
    // A cache mount a running build uses (another process's marker) is not deleted under it: it
    // stays on disk, pending removal.
    const marker = join(root, 'solver', 'cachemounts', 'it-cache.users', `${process.ppid}-busy`);
    await mkdir(dirname(marker), { recursive: true });
    await writeFile(marker, '');
    const removed = await solver.prune({ all: true });
    const pending = solver.du().filter((u) => u.pendingRemoval === true);
    expect(removed.length + pending.length).toBe(du.filter((u) => !u.inUse).length);
    expect(pending.map((u) => u.snapshot)).toContain('cachemount:it-cache');
    expect(await readFile(join(root, 'solver', 'cachemounts', 'it-cache', 'stamp'), 'utf8')).not.toBe('');
    await rm(marker);
    for (const r of held.splice(0)) r.release();
    await solver.prune({ all: true });
    expect(solver.du()).toEqual([]);
    await expect(readFile(join(root, 'solver', 'cachemounts', 'it-cache', 'stamp'))).rejects.toMatchObject({ code: 'ENOENT' });
    // A rebuild after prune runs again and still works.
    const r = await solve(graph());
    expect(r?.cached).toBe(false);
  }, 120_000);
});
