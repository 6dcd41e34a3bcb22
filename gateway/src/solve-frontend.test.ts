import { Duplex } from 'node:stream';
import { describe, expect, test, vi } from 'vitest';
import { encodeDefinition, mkfile, scratch, type Definition, type FileStat, type Frontend, type FrontendClient, type FrontendWarning } from '@kiln/llb-core';
import { FrontendRegistry, Gateway, GatewayClient, GatewayRef, MAX_FRONTEND_DEPTH, connectLLBBridge, type FrontendContainerRequest, type SolveBackend, type SolvedRef } from '@kiln/gateway';

// GatewayClient.solveFrontend in process: a frontend runs another frontend through the gateway's
// own selection and registry, inside the same build (refs, warnings, logs), bounded in depth.

/** A backend whose refs hold `files`; records every Definition it solved (as its bytes). */
function fakeBackend(files: Record<string, string>): SolveBackend & { solved: string[] } {
  const ref: SolvedRef = {
    readFile: async (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`open ${path}: no such file or directory`);
      return new TextEncoder().encode(text);
    },
    readDir: async () => [],
    statFile: async (path): Promise<FileStat> => ({ path, mode: 0o644, uid: 0, gid: 0, size: 0, modTime: 0n }),
  };
  const solved: string[] = [];
  return {
    solved,
    async solve(definition: Definition): Promise<SolvedRef> {
      solved.push(Buffer.from(encodeDefinition(definition)).toString('hex'));
      return ref;
    },
    async resolveImageConfig(): Promise<never> {
      throw new Error('no registry here');
    },
  };
}

interface Seen {
  readonly name: string;
  readonly opts: ReadonlyMap<string, string>;
  readonly inputs: readonly string[];
}

/** A frontend that records what it was served and returns a file op on its context, with metadata naming it. */
function leaf(seen: Seen[], name: string): Frontend {
  return async (client: FrontendClient) => {
    seen.push({ name, opts: client.opts, inputs: [...client.inputs.keys()] });
    client.warn({ message: `warning from ${name}`, file: 'Dockerfile', line: 1 });
    client.log?.(`log from ${name}`);
    const definition = await scratch().file(mkfile('/by', 0o644, name)).marshal();
    return { ref: await client.solve({ definition }), metadata: new Map([['containerimage.config', new TextEncoder().encode(`{"by":"${name}"}`)]]) };
  };
}

async function contextInputs(): Promise<Map<string, Definition>> {
  return new Map([['context', await scratch().marshal()]]);
}

describe('GatewayClient.solveFrontend', () => {
  test('a wrapper delegating to dockerfile.v0 gets its whole result, with only the opts and inputs it passed; the refs are the build\'s', async () => {
    const seen: Seen[] = [];
    const backend = fakeBackend({ Dockerfile: 'FROM x\n', '/by': 'dockerfile' });
    const wrapper: Frontend = async (client) => {
      if (client.solveFrontend === undefined) throw new Error('no solveFrontend');
      const inner = await client.solveFrontend({ frontend: 'dockerfile.v0', opts: new Map([['target', 't']]), inputs: client.inputs });
      if (inner.ref === undefined) throw new Error('no ref');
      // The ref is readable and can be built on by the caller.
      expect(new TextDecoder().decode(await inner.ref.readFile('/by'))).toBe('dockerfile');
      const again = await client.solve({ definition: inner.ref.definition });
      expect(again).toBe(inner.ref);
      return { ref: inner.ref, metadata: new Map([...inner.metadata, ['wrapped', new TextEncoder().encode('yes')]]) };
    };
    const registry = new FrontendRegistry().register('dockerfile.v0', leaf(seen, 'dockerfile')).register('test/wrapper', wrapper);
    const warnings: FrontendWarning[] = [];
    const logs: string[] = [];
    const gateway = new Gateway(backend, registry);
    const result = await gateway.build({ frontend: 'test/wrapper', opts: new Map([['filename', 'Dockerfile'], ['only', 'wrapper']]), inputs: await contextInputs(), onWarning: (w) => warnings.push(w), onLog: (l) => logs.push(l) });
    expect(result.frontend).toBe('test/wrapper');
    expect(seen).toEqual([{ name: 'dockerfile', opts: new Map([['target', 't']]), inputs: ['context'] }]);
    expect(new TextDecoder().decode(result.metadata.get('containerimage.config'))).toBe('{"by":"dockerfile"}');
    expect(new TextDecoder().decode(result.metadata.get('wrapped'))).toBe('yes');
    expect(new TextDecoder().decode(await result.ref?.readFile('/by'))).toBe('dockerfile');
    // The nested frontend's warnings and logs reach the build's progress.
    expect(warnings).toEqual([{ message: 'warning from dockerfile', file: 'Dockerfile', line: 1 }]);
    expect(logs).toEqual(['log from dockerfile']);
  });

  test('the nested dockerfile.v0 goes through syntax selection: # syntax=kiln/ts runs kiln/ts with source and cmdline', async () => {
    const seen: Seen[] = [];
    const backend = fakeBackend({ 'ci.Dockerfile': '# syntax=kiln/ts --x\nFROM x\n' });
    const wrapper: Frontend = async (client) => (await client.solveFrontend?.({ frontend: 'dockerfile.v0', opts: new Map([['filename', 'ci.Dockerfile']]), inputs: client.inputs })) ?? { metadata: new Map() };
    const registry = new FrontendRegistry().register('dockerfile.v0', leaf(seen, 'dockerfile')).register('kiln/ts', leaf(seen, 'ts')).register('test/wrapper', wrapper);
    const result = await new Gateway(backend, registry).build({ frontend: 'test/wrapper', opts: new Map(), inputs: await contextInputs() });
    expect(seen.map((s) => s.name)).toEqual(['ts']);
    expect([...(seen[0]?.opts ?? [])]).toEqual([['filename', 'ci.Dockerfile'], ['source', 'kiln/ts'], ['cmdline', 'kiln/ts --x']]);
    expect(new TextDecoder().decode(result.metadata.get('containerimage.config'))).toBe('{"by":"ts"}');
  });

  test('evaluate solves every ref of the nested result at the call', async () => {
    const backend = fakeBackend({});
    const two: Frontend = async (client) => {
      const a = await client.solve({ definition: await scratch().file(mkfile('/a', 0o644, 'a')).marshal() });
      const b = await client.solve({ definition: await scratch().file(mkfile('/b', 0o644, 'b')).marshal() });
      return { refs: new Map([['linux/amd64', a], ['linux/arm64', b]]), metadata: new Map() };
    };
    let solvedAtCall = -1;
    const wrapper: Frontend = async (client) => {
      const r = await client.solveFrontend?.({ frontend: 'test/two', opts: new Map(), evaluate: true });
      solvedAtCall = backend.solved.length;
      expect([...(r?.refs?.values() ?? [])].every((x) => x instanceof GatewayRef)).toBe(true);
      return r ?? { metadata: new Map() };
    };
    const registry = new FrontendRegistry().register('test/two', two).register('test/wrapper', wrapper);
    const result = await new Gateway(backend, registry).build({ frontend: 'test/wrapper', opts: new Map(), inputs: new Map() });
    expect(solvedAtCall).toBe(2);
    expect([...result.refs.keys()]).toEqual(['linux/amd64', 'linux/arm64']);
  });

  test(`a frontend forwarding to itself fails with KLN0604 after ${MAX_FRONTEND_DEPTH} nested levels`, async () => {
    let runs = 0;
    const loop: Frontend = async (client) => {
      runs++;
      const r = await client.solveFrontend?.({ frontend: 'test/loop', opts: client.opts, inputs: client.inputs });
      return r ?? { metadata: new Map() };
    };
    const gateway = new Gateway(fakeBackend({}), new FrontendRegistry().register('test/loop', loop));
    const failed = gateway.build({ frontend: 'test/loop', opts: new Map(), inputs: new Map() });
    await expect(failed).rejects.toMatchObject({
      code: 'KLN0604',
      message: `frontends nested more than 8 levels deep: ${Array.from({ length: 10 }, () => 'test/loop').join(' > ')}`,
    });
    expect(runs).toBe(1 + MAX_FRONTEND_DEPTH);
  });

  test('a chain within the bound works (8 levels), and an unknown frontend name fails with its message', async () => {
    const chain: Frontend = async (client) => {
      const depth = Number(client.opts.get('depth') ?? '0');
      if (depth === MAX_FRONTEND_DEPTH) return { metadata: new Map([['depth', new TextEncoder().encode(String(depth))]]) };
      const r = await client.solveFrontend?.({ frontend: 'test/chain', opts: new Map([['depth', String(depth + 1)]]) });
      return r ?? { metadata: new Map() };
    };
    const unknown: Frontend = async (client) => (await client.solveFrontend?.({ frontend: 'example.com/no/such:1', opts: new Map() })) ?? { metadata: new Map() };
    const gateway = new Gateway(fakeBackend({}), new FrontendRegistry().register('test/chain', chain).register('test/unknown', unknown));
    const ok = await gateway.build({ frontend: 'test/chain', opts: new Map(), inputs: new Map() });
    expect(new TextDecoder().decode(ok.metadata.get('depth'))).toBe('8');
    await expect(gateway.build({ frontend: 'test/unknown', opts: new Map(), inputs: new Map() })).rejects.toMatchObject({
      code: 'KLN0601',
      message: 'unknown frontend "example.com/no/such:1"',
    });
  });

  test('a GatewayClient made without a runner has no solveFrontend', async () => {
    const client = new GatewayClient({ backend: fakeBackend({}), opts: new Map(), inputs: new Map() });
    expect(client.solveFrontend).toBeUndefined();
  });
});

describe('solveFrontend over LLBBridge: cancellation', () => {
  const A = '127.0.0.1:5000/outer:1';
  const B = '127.0.0.1:5000/inner:1';

  /** Frontend images A and B as scripts (not runc): A connects LLBBridge for real and asks for B, then dies. */
  function backendWith(containers: Record<string, (req: FrontendContainerRequest) => Promise<number>>): SolveBackend & { started: string[] } {
    const base = fakeBackend({});
    const backend = {
      ...base,
      started: [] as string[],
      async resolveImageConfig(ref: string) {
        if (ref !== A && ref !== B) throw new Error(`${ref}: not found`);
        const config = { architecture: 'amd64', os: 'linux', config: { Entrypoint: [`/${ref === A ? 'a' : 'b'}`] } };
        return { digest: `sha256:${(ref === A ? 'aa' : 'bb').repeat(32)}`, config: new TextEncoder().encode(JSON.stringify(config)) };
      },
      async runFrontendContainer(req: FrontendContainerRequest) {
        const name = req.args[0] ?? '';
        backend.started.push(name);
        const run = containers[name];
        const exitCode = run === undefined ? 127 : await run(req);
        req.stdout.end();
        return { exitCode };
      },
    };
    return backend;
  }

  function envOf(req: FrontendContainerRequest): Record<string, string> {
    return Object.fromEntries(req.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  }

  test('a frontend image that dies while its nested frontend image runs: the nested container is stopped (its Solve call is cancelled)', async () => {
    let bStarted!: () => void;
    const started = new Promise<void>((resolve) => (bStarted = resolve));
    let bSignal: AbortSignal | undefined;
    let bDone!: (aborted: boolean) => void;
    const bEnded = new Promise<boolean>((resolve) => (bDone = resolve));
    const backend = backendWith({
      '/a': async (req) => {
        const client = await connectLLBBridge(Duplex.from({ readable: req.stdin, writable: req.stdout }), envOf(req));
        void client.solveFrontend({ frontend: 'gateway.v0', opts: new Map([['source', B]]) }).catch(() => undefined);
        await started;
        return 1; // crashes without Return
      },
      '/b': async (req) => {
        bSignal = req.signal;
        bStarted();
        // A real frontend would run until its work is done; this one until stopped (or 3 s).
        const aborted = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), 3000);
          req.signal?.addEventListener('abort', () => (clearTimeout(t), resolve(true)), { once: true });
        });
        bDone(aborted);
        return aborted ? 137 : 0;
      },
    });
    const gateway = new Gateway(backend, new FrontendRegistry());
    await expect(gateway.build({ frontend: A, opts: new Map(), inputs: new Map() })).rejects.toMatchObject({ code: 'KLN0611' });
    expect(backend.started).toEqual(['/a', '/b']);
    expect(await bEnded).toBe(true);
    expect(bSignal?.aborted).toBe(true);
  });

  test('Ctrl-C while a frontend image runs a nested frontend image: both containers are stopped, the build fails with the reason', async () => {
    const signals: Record<string, AbortSignal | undefined> = {};
    const ended: Record<string, number> = {};
    let bStarted!: () => void;
    const started = new Promise<void>((resolve) => (bStarted = resolve));
    const untilAborted = (req: FrontendContainerRequest): Promise<number> =>
      new Promise<number>((resolve) => {
        const t = setTimeout(() => resolve(0), 3000);
        req.signal?.addEventListener('abort', () => (clearTimeout(t), resolve(137)), { once: true });
      });
    const backend = backendWith({
      '/a': async (req) => {
        signals['a'] = req.signal;
        const client = await connectLLBBridge(Duplex.from({ readable: req.stdin, writable: req.stdout }), envOf(req));
        void client.solveFrontend({ frontend: 'gateway.v0', opts: new Map([['source', B]]) }).then((r) => client.return(r), (e: Error) => client.returnError(e)).catch(() => undefined);
        return (ended['a'] = await untilAborted(req));
      },
      '/b': async (req) => {
        signals['b'] = req.signal;
        bStarted();
        return (ended['b'] = await untilAborted(req));
      },
    });
    const ac = new AbortController();
    const build = new Gateway(backend, new FrontendRegistry()).build({ frontend: A, opts: new Map(), inputs: new Map(), signal: ac.signal });
    await started;
    const reason = new Error('interrupted');
    ac.abort(reason);
    await expect(build).rejects.toBe(reason);
    await vi.waitFor(() => expect(ended).toEqual({ a: 137, b: 137 }), { timeout: 1000 });
    expect(signals['a']?.aborted).toBe(true);
    expect(signals['b']?.aborted).toBe(true);
  });
});
