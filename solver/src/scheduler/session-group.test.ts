import { expect, test } from 'vitest';
import { CacheManager } from '../cache/cache-manager.js';
import { CacheStore } from '../cache/store.js';
import { Scheduler } from './scheduler.js';
import type { Op, OpContext, SolverEdge, SolverVertex } from './types.js';

// A step shared by builds takes secrets and ssh agents from the builds still attached to it, at
// each use (BuildKit's session.Group), not from the build whose resolveOp made its op.

const D = (s: string): string => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;

/** An op that reports what its group offers when it starts and again when `next` resolves. */
function sharedStep(seen: Array<[string | undefined, string | undefined]>, started: () => void, next: Promise<void>): (v: SolverVertex) => Op {
  const look = (ctx: OpContext): [string | undefined, string | undefined] => {
    const secret = ctx.group?.secret('s');
    return [ctx.group?.sshSockets('default')[0], secret === undefined ? undefined : Buffer.from(secret).toString()];
  };
  return () => ({
    cacheMap: async () => ({ digest: D('run'), deps: [] }),
    exec: async (ctx) => {
      seen.push(look(ctx));
      started();
      await next;
      seen.push(look(ctx));
      return [{ snapshot: 'run-result', size: 1 }];
    },
  });
}

const edge = (digest: string): SolverEdge => ({ vertex: { digest, name: 'RUN --mount=type=ssh', inputs: [], options: {}, op: {} }, index: 0 });

test.each([
  ['the same vertex', D('v'), D('v')],
  ['a vertex merged by cache key', D('va'), D('vb')],
])('%s: the build that started the step leaves; the step uses the attachables of the one still in it', async (_, da, db) => {
  const seen: Array<[string | undefined, string | undefined]> = [];
  let started = (): void => undefined;
  const running = new Promise<void>((r) => (started = r));
  let next = (): void => undefined;
  const later = new Promise<void>((r) => (next = r));
  const resolveOp = sharedStep(seen, started, later);
  const s = new Scheduler({ resolveOp, cache: new CacheManager(CacheStore.open({ path: ':memory:' })) });
  const ca = new AbortController();
  const a = s.build(edge(da), { signal: ca.signal, resolveOp, attachables: { ssh: { default: '/agent-a' }, secrets: { s: Buffer.from('a') } } });
  a.catch(() => undefined);
  await running;
  const b = s.build(edge(db), { resolveOp, attachables: { ssh: { default: '/agent-b' } } });
  // b is attached (it waits for the running step) before a leaves.
  await new Promise((r) => setTimeout(r, 20));
  ca.abort();
  await expect(a).rejects.toThrow(/cancelled/);
  next();
  expect((await b).ref.snapshot).toBe('run-result');
  // a's agent and secret first; after a left, b's agent, and no secret (b has none).
  expect(seen).toEqual([
    ['/agent-a', 'a'],
    ['/agent-b', undefined],
  ]);
});

test('first joined, first asked: both builds offer their agents in join order; the failed-step state goes to a build still attached', async () => {
  const seen: Array<{ sockets: readonly string[]; failed: string | undefined }> = [];
  let started = (): void => undefined;
  const running = new Promise<void>((r) => (started = r));
  let bJoined = (): void => undefined;
  const joined = new Promise<void>((r) => (bJoined = r));
  let next = (): void => undefined;
  const later = new Promise<void>((r) => (next = r));
  const kept: string[] = [];
  const handler = (name: string) => () => void kept.push(name);
  const handlers = new Map<unknown, string>();
  const resolveOp = (): Op => ({
    cacheMap: async () => ({ digest: D('run2'), deps: [] }),
    exec: async (ctx) => {
      started();
      await joined;
      const look = (): void => {
        const h = ctx.group?.onFailedExec();
        seen.push({ sockets: ctx.group?.sshSockets('default') ?? [], failed: h === undefined ? undefined : handlers.get(h) });
      };
      look();
      await later;
      look();
      return [{ snapshot: 'run2-result', size: 1 }];
    },
  });
  const s = new Scheduler({ resolveOp, cache: new CacheManager(CacheStore.open({ path: ':memory:' })) });
  const ha = handler('a');
  const hb = handler('b');
  handlers.set(ha, 'a').set(hb, 'b');
  const ca = new AbortController();
  const a = s.build(edge(D('v2')), { signal: ca.signal, resolveOp, attachables: { ssh: { default: '/agent-a' }, onFailedExec: ha } });
  a.catch(() => undefined);
  await running;
  const b = s.build(edge(D('v2')), { resolveOp, attachables: { ssh: { default: '/agent-b' }, onFailedExec: hb } });
  await new Promise((r) => setTimeout(r, 20));
  bJoined();
  await new Promise((r) => setTimeout(r, 20));
  ca.abort();
  await expect(a).rejects.toThrow(/cancelled/);
  next();
  expect((await b).ref.snapshot).toBe('run2-result');
  expect(seen).toEqual([
    { sockets: ['/agent-a', '/agent-b'], failed: 'a' },
    { sockets: ['/agent-b'], failed: 'b' },
  ]);
  // Nothing of a build is kept by the group once it left: the vertex is gone with the last build.
  expect(s.activeVertices).toBe(0);
});
