import { describe, expect, test } from 'vitest';
import { mkfile, scratch, type Container, type ContainerMount, type Definition, type FileStat, type Frontend, type NewContainerRequest, type Ref } from '@kiln/llb-core';
import { FrontendRegistry, Gateway, GatewayClient, type BackendContainerRequest, type SolveBackend, type SolvedRef } from '@kiln/gateway';

// GatewayClient.newContainer over a fake SolveBackend (the gateway's own interface): requests
// are checked before the backend sees them, refs arrive solved, and containers a frontend leaves
// open are released with its build. The real thing runs in cli/test/integration/container.test.ts.

interface FakeContainer extends Container {
  readonly request: BackendContainerRequest;
  released: number;
}

function fakeBackend(withContainers = true): SolveBackend & { solved: Definition[]; made: FakeContainer[] } {
  const solved: Definition[] = [];
  const made: FakeContainer[] = [];
  const backend: SolveBackend & { solved: Definition[]; made: FakeContainer[] } = {
    solved,
    made,
    async solve(definition: Definition): Promise<SolvedRef> {
      solved.push(definition);
      return {
        readFile: async () => new Uint8Array(),
        readDir: async () => [],
        statFile: async (path): Promise<FileStat> => ({ path, mode: 0, uid: 0, gid: 0, size: 0, modTime: 0n }),
      };
    },
    async resolveImageConfig(): Promise<never> {
      throw new Error('no registry here');
    },
  };
  if (withContainers) {
    backend.newContainer = async (request) => {
      const c: FakeContainer = {
        request,
        released: 0,
        start: async () => ({ wait: async () => 0, signal: async () => undefined, resize: async () => undefined }),
        release: async () => {
          c.released += 1;
        },
      };
      made.push(c);
      return c;
    };
  }
  return backend;
}

async function def(name: string): Promise<Definition> {
  return scratch().file(mkfile('/f', 0o644, name)).marshal();
}

function client(backend: SolveBackend, signal?: AbortSignal): GatewayClient {
  return new GatewayClient({ backend, opts: new Map(), inputs: new Map(), ...(signal === undefined ? {} : { signal }) });
}

describe('GatewayClient.newContainer: request checks', () => {
  test('absent when the backend cannot make containers', () => {
    expect(client(fakeBackend(false)).newContainer).toBeUndefined();
    expect(client(fakeBackend()).newContainer).toBeTypeOf('function');
  });

  const rejected: ReadonlyArray<{ name: string; code: string; mounts: (ref: Ref) => ContainerMount[] }> = [
    { name: 'no / mount', code: 'KLN0620', mounts: (ref) => [{ dest: '/src', ref }] },
    { name: 'no mounts at all', code: 'KLN0620', mounts: () => [] },
    { name: 'two mounts at one dest (/a and /a/)', code: 'KLN0620', mounts: (ref) => [{ dest: '/', ref }, { dest: '/a', type: 'tmpfs' }, { dest: '/a/', type: 'tmpfs' }] },
    { name: 'a relative dest', code: 'KLN0620', mounts: (ref) => [{ dest: '/', ref }, { dest: 'src', type: 'tmpfs' }] },
    { name: 'a ref on a tmpfs mount', code: 'KLN0620', mounts: (ref) => [{ dest: '/', ref }, { dest: '/t', type: 'tmpfs', ref }] },
    { name: 'a selector without a ref', code: 'KLN0620', mounts: (ref) => [{ dest: '/', ref }, { dest: '/s', selector: 'x' }] },
    { name: 'a secret without an id', code: 'KLN0620', mounts: (ref) => [{ dest: '/', ref }, { dest: '/run/secrets/x', type: 'secret' }] },
    { name: 'a cache mount as root', code: 'KLN0620', mounts: () => [{ dest: '/', type: 'cache', cacheId: 'c' }] },
  ];
  test.for(rejected)('$name: $code, and the backend is not asked', async ({ code, mounts }) => {
    const backend = fakeBackend();
    const c = client(backend);
    const ref = await c.solve({ definition: await def('a') });
    await expect(c.newContainer?.({ mounts: mounts(ref) })).rejects.toMatchObject({ code });
    expect(backend.made).toHaveLength(0);
  });

  test("a ref of another client (another build) is KLN0621; this build's refs are solved and passed on", async () => {
    const backend = fakeBackend();
    const mine = client(backend);
    const theirs = client(backend);
    const foreign = await theirs.solve({ definition: await def('b') });
    await expect(mine.newContainer?.({ mounts: [{ dest: '/', ref: foreign }] })).rejects.toMatchObject({ code: 'KLN0621' });
    const own = await mine.solve({ definition: await def('a') });
    const plain = { definition: own.definition, readFile: own.readFile, readDir: own.readDir, statFile: own.statFile };
    await expect(mine.newContainer?.({ mounts: [{ dest: '/', ref: plain }] })).rejects.toMatchObject({ code: 'KLN0621' });
    expect(backend.solved).toHaveLength(0);
    const c = await mine.newContainer?.({ mounts: [{ dest: '/', ref: own }, { dest: '/src/', ref: own, selector: 'sub', readonly: true }, { dest: '/cache', type: 'cache', cacheId: 'x' }], network: 'host' });
    expect(c).toBeDefined();
    // Solved once however often it is mounted (the ref's solve is forced before the backend is asked).
    expect(backend.solved).toHaveLength(1);
    const req = backend.made[0]?.request;
    expect(req?.network).toBe('host');
    expect(req?.mounts.map((m) => [m.dest, m.ref === undefined ? 'none' : 'solved', m.selector ?? ''])).toEqual([
      ['/', 'solved', ''],
      ['/src', 'solved', 'sub'],
      ['/cache', 'none', ''],
    ]);
  });

  test('a process without args is KLN0620, a release()d container KLN0623; release is idempotent', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    const ref = await c.solve({ definition: await def('a') });
    const ctr = await c.newContainer?.({ mounts: [{ dest: '/', ref }] });
    await expect(ctr?.start({ args: [] })).rejects.toMatchObject({ code: 'KLN0620' });
    expect(await (await ctr?.start({ args: ['true'] }))?.wait()).toBe(0);
    await Promise.all([ctr?.release(), ctr?.release()]);
    await ctr?.release();
    expect(backend.made[0]?.released).toBe(1);
    await expect(ctr?.start({ args: ['true'] })).rejects.toMatchObject({ code: 'KLN0623' });
  });
});

describe('containers end with their build', () => {
  test('the gateway releases what the frontend left open when the build ends, once; a late newContainer is refused', async () => {
    const backend = fakeBackend();
    let late: ((r: NewContainerRequest) => Promise<Container>) | undefined;
    let root: Ref | undefined;
    const frontend: Frontend = async (fc) => {
      const ref = await fc.solve({ definition: await def('a') });
      root = ref;
      const kept = await fc.newContainer?.({ mounts: [{ dest: '/', ref }] });
      const done = await fc.newContainer?.({ mounts: [{ dest: '/', ref }] });
      await done?.release();
      expect(kept).toBeDefined();
      late = fc.newContainer;
      return { ref, metadata: new Map() };
    };
    const gateway = new Gateway(backend, new FrontendRegistry().register('test/ctr', frontend));
    await gateway.build({ frontend: 'test/ctr', opts: new Map(), inputs: new Map() });
    expect(backend.made.map((c) => c.released)).toEqual([1, 1]);
    if (root === undefined) throw new Error('the frontend did not solve its root');
    await expect(late?.({ mounts: [{ dest: '/', ref: root }] })).rejects.toMatchObject({ code: 'KLN0623' });
  });

  test("a failing frontend's containers are released too", async () => {
    const backend = fakeBackend();
    const frontend: Frontend = async (fc) => {
      const ref = await fc.solve({ definition: await def('a') });
      await fc.newContainer?.({ mounts: [{ dest: '/', ref }] });
      throw new Error('frontend failed');
    };
    const gateway = new Gateway(backend, new FrontendRegistry().register('test/ctr', frontend));
    await expect(gateway.build({ frontend: 'test/ctr', opts: new Map(), inputs: new Map() })).rejects.toThrow('frontend failed');
    expect(backend.made.map((c) => c.released)).toEqual([1]);
  });

  test("the client's signal and the request's own signal release", async () => {
    const backend = fakeBackend();
    const build = new AbortController();
    const c = client(backend, build.signal);
    const ref = await c.solve({ definition: await def('a') });
    const own = new AbortController();
    await c.newContainer?.({ mounts: [{ dest: '/', ref }], signal: own.signal });
    await c.newContainer?.({ mounts: [{ dest: '/', ref }] });
    own.abort();
    await new Promise((r) => setImmediate(r));
    expect(backend.made.map((m) => m.released)).toEqual([1, 0]);
    build.abort();
    await new Promise((r) => setImmediate(r));
    expect(backend.made.map((m) => m.released)).toEqual([1, 1]);
    await expect(c.newContainer?.({ mounts: [{ dest: '/', ref }] })).rejects.toThrow();
  });

  test('a signal that aborts while the backend makes the container: newContainer rejects with its reason and the container is released once', async () => {
    const backend = fakeBackend();
    const make = backend.newContainer;
    let made: () => void = () => undefined;
    const slow = new Promise<void>((r) => (made = r));
    let asked: () => void = () => undefined;
    const entered = new Promise<void>((r) => (asked = r));
    backend.newContainer = async (request) => {
      asked();
      await slow;
      return (await make?.(request)) as Container;
    };
    const c = client(backend);
    const ref = await c.solve({ definition: await def('a') });
    const own = new AbortController();
    const pending = c.newContainer?.({ mounts: [{ dest: '/', ref }], signal: own.signal });
    pending?.catch(() => undefined);
    await entered;
    own.abort(new Error('stop it'));
    made();
    await expect(pending).rejects.toThrow('stop it');
    await new Promise((r) => setImmediate(r));
    expect(backend.made.map((m) => m.released)).toEqual([1]);
  });
});
