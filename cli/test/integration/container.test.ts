import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { image, type Container, type ContainerProcess, type Frontend, type FrontendClient, type Ref } from '@kiln/llb-core';
import { FrontendRegistry, Gateway } from '@kiln/gateway';
import { KilnEngine } from '../../src/engine/engine.js';
import { SolverBackend, type BackendOptions } from '../../src/engine/backend.js';
import { makeSandbox, requireTools, type KilnSandbox } from './build-helpers.js';

// A frontend's containers (BuildKit's gateway NewContainer) in a real in-process build: the
// gateway client over the real solver backend, runc, overlay snapshots and the busybox base.

let sb: KilnSandbox;
let engine: KilnEngine;

beforeAll(async () => {
  requireTools();
  sb = await makeSandbox();
  engine = await KilnEngine.open({ root: sb.root });
}, 120_000);

afterAll(async () => {
  engine?.close();
  await sb?.cleanup();
});

/** Runs `frontend` as the build's frontend through the gateway, then releases the backend as `kiln build` does. */
async function build(frontend: Frontend, opts: BackendOptions = {}, signal?: AbortSignal): Promise<void> {
  const solver = engine.solver({ localDirs: {} });
  const backend = new SolverBackend(engine, solver, { ...opts, ...(signal === undefined ? {} : { signal }) });
  const gateway = new Gateway(backend, new FrontendRegistry().register('test/ctr', frontend));
  try {
    await gateway.build({ frontend: 'test/ctr', opts: new Map(), inputs: new Map(), ...(signal === undefined ? {} : { signal }) });
  } finally {
    await backend.release();
  }
}

/** A busybox ref with `/data` (`base`) and `/sub/f` (`in sub`). */
async function base(client: FrontendClient): Promise<Ref> {
  const definition = await image('busybox')
    .run({ args: ['sh', '-c', 'echo base > /data; mkdir /sub; echo "in sub" > /sub/f'] })
    .root()
    .marshal();
  return client.solve({ definition, evaluate: true });
}

function newContainer(client: FrontendClient, ...args: Parameters<NonNullable<FrontendClient['newContainer']>>): Promise<Container> {
  if (client.newContainer === undefined) throw new Error('the in-process gateway client has no newContainer');
  return client.newContainer(...args);
}

function collect(): { push: (c: Uint8Array) => void; text: () => string; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return { push: (c) => chunks.push(Buffer.from(c)), text: () => Buffer.concat(chunks).toString(), bytes: () => Buffer.concat(chunks) };
}

/** Runs one process to its end; its exit status and output. */
async function run(c: Container, args: string[], extra: { stdin?: AsyncIterable<Uint8Array>; user?: string; cwd?: string } = {}) {
  const out = collect();
  const err = collect();
  const p = await c.start({ args, env: ['PATH=/bin'], stdout: out.push, stderr: err.push, ...extra });
  const code = await p.wait();
  return { code, stdout: out.text(), stderr: err.text(), bytes: out.bytes() };
}

/** What a container could leave behind: runc state, bundles, scratch dirs, container snapshots, mounts. */
async function leftovers(): Promise<string[]> {
  const rt = engine.executor.runtimeDir;
  const names = await Promise.all([join(rt, 'runc'), join(rt, 'bundles'), join(sb.root, 'executor')].map((d) => readdir(d).catch(() => [] as string[])));
  const snapshots = (await engine.snapshotter.list()).map((i) => i.id).filter((id) => id.startsWith('container-'));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(sb.dir) || l.includes(rt));
  return [...names.flat(), ...snapshots, ...mounts];
}

const result = async (ref: Ref) => ({ ref, metadata: new Map<string, Uint8Array>() });

describe('frontend containers over runc', () => {
  test('cat gives stdin back byte for byte; stderr comes apart; exit codes', async () => {
    const data = randomBytes(1 << 20);
    const seen: { cat?: Buffer; err?: string; code?: number; fail?: number } = {};
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }] });
      async function* input(): AsyncGenerator<Uint8Array> {
        yield data.subarray(0, 4097);
        yield data.subarray(4097);
      }
      const r = await run(c, ['sh', '-c', 'cat; echo "to stderr" >&2'], { stdin: input() });
      seen.cat = r.bytes;
      seen.err = r.stderr;
      seen.code = r.code;
      await c.release();
      const c2 = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }] });
      seen.fail = (await run(c2, ['sh', '-c', 'exit 7'])).code;
      await c2.release();
      return result(ref);
    });
    expect(seen.code).toBe(0);
    expect(seen.cat?.equals(data)).toBe(true);
    expect(seen.err).toBe('to stderr\n');
    expect(seen.fail).toBe(7);
    expect(await leftovers()).toEqual([]);
  });

  test('processes exec\'d while the init runs; signals end them with 128+n; after the init, starts fail', async () => {
    const seen: Record<string, unknown> = {};
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }], hostname: 'ctr-host', extraHosts: [{ host: 'db', ip: '10.0.0.9' }] });
      const init = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      const r = await run(c, ['sh', '-c', 'echo $$; hostname; grep db /etc/hosts; ls /'], { user: 'nobody', cwd: '/tmp' });
      seen.exec = r;
      const who = await run(c, ['sh', '-c', 'id -u; pwd'], { user: 'nobody', cwd: '/tmp' });
      seen.who = who.stdout;
      const sleeper = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      await sleeper.signal('SIGTERM');
      seen.term = await sleeper.wait();
      await init.signal('SIGKILL');
      seen.init = await init.wait();
      seen.after = await c.start({ args: ['true'] }).then(
        () => 'started',
        (e: { code?: string }) => e.code,
      );
      await c.release();
      return result(ref);
    });
    const exec = seen.exec as { code: number; stdout: string };
    expect(exec.code).toBe(0);
    const [pid, host, hosts, ...ls] = exec.stdout.trim().split('\n');
    expect(Number(pid)).toBeGreaterThan(1);
    expect(host).toBe('ctr-host');
    expect(hosts).toBe('10.0.0.9\tdb');
    expect(ls).toEqual(expect.arrayContaining(['bin', 'data', 'sub']));
    expect(seen.who).toBe('65534\n/tmp\n');
    expect(seen.term).toBe(128 + 15);
    expect(seen.init).toBe(128 + 9);
    expect(seen.after).toBe('CONTAINER_EXITED');
    expect(await leftovers()).toEqual([]);
  });

  test("a writable root's changes are seen by later processes, not by the ref; a read-only root and a selector mount", async () => {
    const seen: Record<string, string | number> = {};
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, {
        mounts: [
          { dest: '/', ref },
          { dest: '/sel', ref, selector: 'sub', readonly: true },
          { dest: '/scratch' },
          { dest: '/t', type: 'tmpfs' },
        ],
      });
      const init = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      seen.write = (await run(c, ['sh', '-c', 'echo changed > /data; echo new > /new; echo s > /scratch/s; mount | grep -c " /t type tmpfs"'])).stdout;
      seen.read = (await run(c, ['cat', '/data', '/new', '/sel/f', '/scratch/s'])).stdout;
      seen.selWrite = (await run(c, ['sh', '-c', 'echo x > /sel/x'])).code;
      await init.signal('KILL');
      await init.wait();
      await c.release();
      seen.after = new TextDecoder().decode(await ref.readFile('/data'));
      seen.newInRef = await ref.statFile('/new').then(
        () => 'present',
        () => 'absent',
      );
      const ro = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }] });
      await ro.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      seen.roWrite = (await run(ro, ['sh', '-c', 'echo x > /data'])).code;
      seen.roData = (await run(ro, ['cat', '/data'])).stdout;
      await ro.release();
      return result(ref);
    });
    expect(seen.write).toBe('1\n');
    expect(seen.read).toBe('changed\nnew\nin sub\ns\n');
    expect(seen.selWrite).not.toBe(0);
    expect(seen.after).toBe('base\n');
    expect(seen.newInRef).toBe('absent');
    expect(seen.roWrite).not.toBe(0);
    expect(seen.roData).toBe('base\n');
    expect(await leftovers()).toEqual([]);
  });

  test('a cache mount written in a container is what a later build\'s RUN --mount=type=cache with that id sees', async () => {
    const id = `ctr-cache-${randomBytes(4).toString('hex')}`;
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }, { dest: '/cache', type: 'cache', cacheId: id, cacheSharing: 'locked' }] });
      const r = await run(c, ['sh', '-c', 'echo from-container > /cache/f']);
      expect(r.code).toBe(0);
      await c.release();
      return result(ref);
    });
    let read = '';
    await build(async (client) => {
      const definition = await image('busybox')
        .run({ args: ['sh', '-c', 'cat /c/f > /seen'], mounts: [{ target: '/c', cache: { id, sharing: 'locked' } }] })
        .root()
        .marshal();
      const ref = await client.solve({ definition, evaluate: true });
      read = new TextDecoder().decode(await ref.readFile('/seen'));
      return result(ref);
    });
    expect(read).toBe('from-container\n');
    expect(await leftovers()).toEqual([]);
  });

  test('a prune while a container lives takes neither the snapshots it stands on nor its cache mount', async () => {
    const id = `ctr-prune-${randomBytes(4).toString('hex')}`;
    const other = `${id}-other`;
    // Something the prune does take: a cache mount no one uses any more.
    await build(async (client) => {
      const definition = await image('busybox')
        .run({ args: ['sh', '-c', 'echo o > /c/f'], mounts: [{ target: '/c', cache: { id: other } }] })
        .root()
        .marshal();
      return result(await client.solve({ definition, evaluate: true }));
    });
    const seen: Record<string, unknown> = {};
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, { mounts: [{ dest: '/', ref }, { dest: '/cache', type: 'cache', cacheId: id }] });
      const init = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      expect((await run(c, ['sh', '-c', 'echo x > /cache/f'])).code).toBe(0);
      seen.pruned = (await engine.cache.prune({ all: true })).map((v) => v.snapshot);
      seen.inside = (await run(c, ['cat', '/data', '/cache/f'])).stdout;
      seen.ref = new TextDecoder().decode(await ref.readFile('/sub/f'));
      await init.signal('KILL');
      await c.release();
      return result(ref);
    });
    expect(seen.pruned).toContain(`cachemount:${other}`);
    expect(seen.pruned).not.toContain(`cachemount:${id}`);
    expect(seen.inside).toBe('base\nx\n');
    expect(seen.ref).toBe('in sub\n');
    expect(await leftovers()).toEqual([]);
  });

  test('the end of the build releases containers the frontend forgot: processes killed, nothing left', async () => {
    let forgotten: ContainerProcess | undefined;
    let during: string[] = [];
    await build(async (client) => {
      const ref = await base(client);
      const c = await newContainer(client, { mounts: [{ dest: '/', ref }, { dest: '/w', type: 'tmpfs' }] });
      forgotten = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
      await (await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] })).signal('STOP');
      during = await leftovers();
      return result(ref);
    });
    // While it ran there was a bundle, runc state and a writable snapshot.
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(await forgotten?.wait()).toBe(128 + 9);
    expect(await leftovers()).toEqual([]);
  });

  test('cancelling the build while a process runs kills it and leaves nothing behind', async () => {
    const ac = new AbortController();
    let code: number | undefined;
    const done = build(
      async (client) => {
        const ref = await base(client);
        const c = await newContainer(client, { mounts: [{ dest: '/', ref }, { dest: '/c', type: 'cache', cacheId: 'cancel-test' }] });
        const p = await c.start({ args: ['sh', '-c', 'echo started; sleep 100'], env: ['PATH=/bin'], stdout: () => ac.abort(new Error('user cancelled')) });
        code = await p.wait();
        client.signal?.throwIfAborted();
        return result(ref);
      },
      {},
      ac.signal,
    );
    await expect(done).rejects.toThrow();
    expect(code).toBe(128 + 9);
    expect(await leftovers()).toEqual([]);
  });

  test("network none has only lo; host (allowed) the host's interfaces", async () => {
    const seen: Record<string, string> = {};
    await build(
      async (client) => {
        const ref = await base(client);
        for (const network of ['none', 'host'] as const) {
          const c = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }], network });
          seen[network] = (await run(c, ['ls', '/sys/class/net'])).stdout;
          await c.release();
        }
        return result(ref);
      },
      { allowNetworkHost: true },
    );
    expect(seen['none']).toBe('lo\n');
    expect(seen['host']?.split('\n').filter((l) => l !== '').sort()).toEqual(readdirSync('/sys/class/net').sort());
  });

  test('network host and insecure need their entitlements; secrets and ssh agents come from the session; a tty process gets a terminal', async () => {
    const seen: Record<string, unknown> = {};
    const secret = new TextEncoder().encode('s3cret');
    // An agent socket on the host (the container reaches it through the executor's ssh proxy).
    const agentSocket = join(sb.dir, `agent-${randomBytes(4).toString('hex')}.sock`);
    const agent = createServer((conn) => conn.end());
    await new Promise<void>((r) => agent.listen(agentSocket, r));
    await build(
      async (client) => {
        const ref = await base(client);
        seen.host = await newContainer(client, { mounts: [{ dest: '/', ref }], network: 'host' }).then(
          () => 'made',
          (e: { code?: string }) => e.code,
        );
        seen.missing = await newContainer(client, { mounts: [{ dest: '/', ref }, { dest: '/run/secrets/nope', type: 'secret', secretId: 'nope' }] }).then(
          () => 'made',
          (e: { code?: string }) => e.code,
        );
        const c = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }, { dest: '/run/secrets/tok', type: 'secret', secretId: 'tok' }] });
        seen.init = await c.start({ args: ['sleep', '100'], env: ['PATH=/bin'] });
        let tty = '';
        const t = await c.start({ args: ['sh', '-c', 'tty; stty size; echo err >&2'], env: ['PATH=/bin'], tty: true, stdout: (b) => { tty += Buffer.from(b).toString(); } });
        await t.resize({ rows: 30, cols: 100 });
        seen.ttyCode = await t.wait();
        seen.tty = tty;
        seen.insecure = await c.start({ args: ['true'], security: 'insecure' }).then(
          () => 'started',
          (e: { code?: string }) => e.code,
        );
        seen.secret = await run(c, ['sh', '-c', 'cat /run/secrets/tok; stat -c %a /run/secrets/tok']);
        await c.release();
        const withSsh = await newContainer(client, { mounts: [{ dest: '/', ref, readonly: true }, { dest: '/run/agent.sock', type: 'ssh' }] });
        seen.ssh = await run(withSsh, ['sh', '-c', 'echo $SSH_AUTH_SOCK; stat -c "%F %a" /run/agent.sock']);
        await withSsh.release();
        return result(ref);
      },
      { secrets: { tok: secret }, ssh: { default: agentSocket } },
    );
    agent.close();
    expect(seen.ssh).toMatchObject({ code: 0, stdout: '/run/agent.sock\nsocket 600\n' });
    expect(seen.host).toBe('KLN0620');
    expect(seen.missing).toBe('KLN0620');
    expect(seen.ttyCode).toBe(0);
    expect(seen.tty).toMatch(/^\/dev\/pts\/\d+\r\n\d+ \d+\r\nerr\r\n$/);
    expect(seen.insecure).toBe('KLN0620');
    expect(seen.secret).toMatchObject({ code: 0, stdout: 's3cret400\n' });
    expect(await leftovers()).toEqual([]);
  });
});
