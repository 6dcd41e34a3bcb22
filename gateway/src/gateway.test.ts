import { describe, expect, test } from 'vitest';
import { scratch, type Definition, type FileStat, type Frontend, type FrontendClient } from '@kiln/llb-core';
import { Gateway, FrontendRegistry, canonicalFrontendName, type SolveBackend, type SolvedRef } from '@kiln/gateway';

/** A backend whose every solve yields the same in-memory files; counts solves. */
function fakeBackend(files: Record<string, string>): SolveBackend & { solves: number } {
  const ref: SolvedRef = {
    readFile: async (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`${path}: not found`);
      return new TextEncoder().encode(text);
    },
    readDir: async () => [],
    statFile: async (path): Promise<FileStat> => ({ path, mode: 0o644, uid: 0, gid: 0, size: 0, modTime: 0n }),
  };
  const backend = {
    solves: 0,
    async solve(): Promise<SolvedRef> {
      backend.solves++;
      return ref;
    },
    async resolveImageConfig(): Promise<never> {
      throw new Error('not used');
    },
  };
  return backend;
}

async function contextDefinition(): Promise<Definition> {
  return scratch().marshal();
}

/** A frontend that records the options it was served and returns its input as the result. */
function recorder(seen: Array<{ name: string; opts: ReadonlyMap<string, string> }>, name: string): Frontend {
  return async (client: FrontendClient) => {
    seen.push({ name, opts: client.opts });
    const definition = client.inputs.get('context');
    if (definition === undefined) throw new Error('no context');
    return { ref: await client.solve({ definition }), metadata: new Map() };
  };
}

describe('frontend selection', () => {
  const setup = (files: Record<string, string>) => {
    const seen: Array<{ name: string; opts: ReadonlyMap<string, string> }> = [];
    const registry = new FrontendRegistry()
      .register('dockerfile.v0', recorder(seen, 'dockerfile'))
      .register('kiln/ts', recorder(seen, 'ts'));
    const backend = fakeBackend(files);
    return { seen, backend, gateway: new Gateway(backend, registry) };
  };

  test('a syntax directive naming another frontend forwards to it with source and cmdline', async () => {
    const { seen, gateway } = setup({ Dockerfile: '# syntax=kiln/ts extra words\nFROM x\n' });
    const context = await contextDefinition();
    const result = await gateway.build({ opts: new Map(), inputs: new Map([['context', context]]) });
    expect(result.frontend).toBe('kiln/ts');
    expect(seen.map((s) => s.name)).toEqual(['ts']);
    expect(seen[0]?.opts.get('source')).toBe('kiln/ts');
    expect(seen[0]?.opts.get('cmdline')).toBe('kiln/ts extra words');
  });

  test.for([
    'docker/dockerfile:1',
    'docker/dockerfile:1.7',
    'docker.io/docker/dockerfile:1.4-labs',
    'docker/dockerfile',
    'dockerfile.v0',
  ])('%s stays on the built-in Dockerfile frontend', async (syntax) => {
    const { seen, gateway } = setup({ 'build.Dockerfile': `#syntax=${syntax}\nFROM x\n` });
    const inputs = new Map([['context', await contextDefinition()]]);
    const result = await gateway.build({ opts: new Map([['filename', 'build.Dockerfile']]), inputs });
    expect(result.frontend).toBe('dockerfile.v0');
    expect(seen[0]?.opts.has('cmdline')).toBe(false);
  });

  test('build-arg BUILDKIT_SYNTAX wins over the directive; a forwarded request is not forwarded again', async () => {
    const { seen, gateway } = setup({ Dockerfile: '# syntax=docker/dockerfile:1\n' });
    const inputs = new Map([['context', await contextDefinition()]]);
    await gateway.build({ opts: new Map([['build-arg:BUILDKIT_SYNTAX', 'kiln/ts']]), inputs });
    await gateway.build({ opts: new Map([['cmdline', 'kiln/ts'], ['build-arg:BUILDKIT_SYNTAX', 'kiln/ts']]), inputs });
    expect(seen.map((s) => s.name)).toEqual(['ts', 'dockerfile']);
  });

  test('BUILDKIT_SYNTAX is trimmed before its reference is taken (builder/build.go: SplitN(TrimSpace(cmdline), " ", 2))', async () => {
    const { seen, gateway } = setup({ Dockerfile: 'FROM x\n' });
    const inputs = new Map([['context', await contextDefinition()]]);
    const result = await gateway.build({ opts: new Map([['build-arg:BUILDKIT_SYNTAX', '  kiln/ts --flag ']]), inputs });
    expect(result.frontend).toBe('kiln/ts');
    expect(seen[0]?.opts.get('source')).toBe('kiln/ts');
    expect(seen[0]?.opts.get('cmdline')).toBe('  kiln/ts --flag ');
    await gateway.build({ opts: new Map([['build-arg:BUILDKIT_SYNTAX', ' docker/dockerfile:1 ']]), inputs });
    expect(seen.map((s) => s.name)).toEqual(['ts', 'dockerfile']);
  });

  test('an unknown frontend is a clear error that lists the known ones', async () => {
    const { gateway } = setup({ Dockerfile: '# syntax=example.com/custom/frontend:2\nFROM x\n' });
    const inputs = new Map([['context', await contextDefinition()]]);
    await expect(gateway.build({ opts: new Map(), inputs })).rejects.toMatchObject({
      code: 'KLN0601',
      message: 'unknown frontend "example.com/custom/frontend:2"',
    });
  });

  test('a missing entry file names the file', async () => {
    const { gateway } = setup({});
    const inputs = new Map([['context', await contextDefinition()]]);
    await expect(gateway.build({ opts: new Map([['filename', 'Nope']]), inputs })).rejects.toMatchObject({
      code: 'KLN0602',
      message: 'cannot read Nope from the build input',
    });
  });

  test('a ref is solved once however often it is read', async () => {
    const { backend, gateway } = setup({ Dockerfile: 'FROM x\n' });
    const inputs = new Map([['context', await contextDefinition()]]);
    const before = backend.solves;
    const result = await gateway.build({ frontend: 'dockerfile.v0', opts: new Map(), inputs });
    await result.ref?.readFile('Dockerfile');
    await result.ref?.readFile('Dockerfile');
    expect(backend.solves - before).toBe(1);
  });
});

test('canonical names drop registry, tag and digest of the dockerfile image only', () => {
  expect(canonicalFrontendName('docker.io/docker/dockerfile:1@sha256:abc')).toBe('dockerfile.v0');
  expect(canonicalFrontendName('docker/dockerfile-upstream:master')).toBe('dockerfile.v0');
  expect(canonicalFrontendName('kiln/ts')).toBe('kiln/ts');
});

describe('image prefetch', () => {
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  /** A frontend resolving `refs` (in order), then returning its context. */
  const resolving = (refs: readonly string[]): Frontend => async (client: FrontendClient) => {
    for (const r of refs) await client.resolveImageConfig(r, { platform: { os: 'linux', architecture: 'amd64' }, resolveMode: 'pull' });
    const definition = client.inputs.get('context');
    if (definition === undefined) throw new Error('no context');
    return { ref: await client.solve({ definition }), metadata: new Map() };
  };

  test('every resolved image is handed to the backend to prefetch, after its config resolved, with the same options', async () => {
    const events: string[] = [];
    const prefetched: Array<{ ref: string; platform: unknown; resolveMode: unknown; signal: boolean }> = [];
    const backend: SolveBackend = {
      ...fakeBackend({ Dockerfile: 'FROM x\n' }),
      async resolveImageConfig(ref) {
        events.push(`resolve ${ref}`);
        if (ref.includes('missing')) throw new Error(`${ref}: not found`);
        return { digest: 'sha256:' + 'a'.repeat(64), config };
      },
      prefetchImage(ref, options) {
        events.push(`prefetch ${ref}`);
        prefetched.push({ ref, platform: options.platform, resolveMode: options.resolveMode, signal: options.signal !== undefined });
      },
    };
    const gateway = new Gateway(backend, new FrontendRegistry().register('dockerfile.v0', resolving(['docker.io/library/a:1', 'docker.io/library/b:2'])));
    const ctl = new AbortController();
    await gateway.build({ frontend: 'dockerfile.v0', opts: new Map(), inputs: new Map([['context', await contextDefinition()]]), signal: ctl.signal });
    expect(events).toEqual(['resolve docker.io/library/a:1', 'prefetch docker.io/library/a:1', 'resolve docker.io/library/b:2', 'prefetch docker.io/library/b:2']);
    expect(prefetched[0]).toEqual({ ref: 'docker.io/library/a:1', platform: { os: 'linux', architecture: 'amd64' }, resolveMode: 'pull', signal: true });

    // An image that cannot be resolved is not prefetched (the frontend gets the error).
    events.length = 0;
    const failing = new Gateway(backend, new FrontendRegistry().register('dockerfile.v0', resolving(['docker.io/library/missing:1'])));
    await expect(failing.build({ frontend: 'dockerfile.v0', opts: new Map(), inputs: new Map([['context', await contextDefinition()]]) })).rejects.toThrow(/not found/);
    expect(events).toEqual(['resolve docker.io/library/missing:1']);
  });

  test('a prefetch that throws does not fail the resolve; backends without prefetch still resolve', async () => {
    const throwing: SolveBackend = {
      ...fakeBackend({ Dockerfile: 'FROM x\n' }),
      async resolveImageConfig() {
        return { digest: 'sha256:' + 'b'.repeat(64), config };
      },
      prefetchImage() {
        throw new Error('prefetch broke');
      },
    };
    const { prefetchImage: _prefetch, ...plain } = throwing;
    for (const backend of [throwing, plain]) {
      const gateway = new Gateway(backend, new FrontendRegistry().register('dockerfile.v0', resolving(['docker.io/library/a:1'])));
      const r = await gateway.build({ frontend: 'dockerfile.v0', opts: new Map(), inputs: new Map([['context', await contextDefinition()]]) });
      expect(r.frontend).toBe('dockerfile.v0');
    }
  });
});

describe('attestations in the gateway result', () => {
  /** A frontend returning its context as the result and a bundle attestation over it. */
  const attesting: Frontend = async (client: FrontendClient) => {
    const definition = client.inputs.get('context');
    if (definition === undefined) throw new Error('no context');
    const ref = await client.solve({ definition });
    return {
      ref,
      metadata: new Map(),
      attestations: new Map([['linux/amd64', [{ kind: 'bundle' as const, ref, metadata: new Map([['reason', new TextEncoder().encode('sbom')]]), predicateType: 'https://spdx.dev/Document' }]]]),
    };
  };

  test('solved like the result refs, from the top-level frontend and through a wrapper that returns a nested result (solveFrontend)', async () => {
    const backend = fakeBackend({ 'sbom.spdx.json': '{}', Dockerfile: 'FROM x\n' });
    const wrapper: Frontend = async (client) => {
      if (client.solveFrontend === undefined) throw new Error('no solveFrontend');
      return client.solveFrontend({ frontend: 'attesting', opts: new Map(), inputs: client.inputs, evaluate: true });
    };
    const gateway = new Gateway(backend, new FrontendRegistry().register('attesting', attesting).register('wrapper', wrapper));
    const inputs = new Map([['context', await contextDefinition()]]);
    for (const frontend of ['attesting', 'wrapper']) {
      const result = await gateway.build({ frontend, opts: new Map(), inputs });
      const list = result.attestations.get('linux/amd64') ?? [];
      expect(list.map((a) => [a.kind, a.predicateType, new TextDecoder().decode(a.metadata?.get('reason'))])).toEqual([['bundle', 'https://spdx.dev/Document', 'sbom']]);
      // The solved ref itself (the backend's), readable like result.ref.
      expect(list[0]?.ref).toBe(result.ref);
      expect(new TextDecoder().decode(await list[0]?.ref.readFile('sbom.spdx.json'))).toBe('{}');
    }
    // A frontend that makes none: an empty map.
    const plain = await new Gateway(backend, new FrontendRegistry().register('dockerfile.v0', recorder([], 'dockerfile'))).build({ frontend: 'dockerfile.v0', opts: new Map(), inputs });
    expect(plain.attestations.size).toBe(0);
  });
});

describe('gateway.v0 with source docker/dockerfile[:…] (what a Go Dockerfile frontend image forwards for # syntax=docker/dockerfile:1)', () => {
  const opts = (source: string) => new Map([['source', source], ['cmdline', `${source} --flag`], ['filename', 'Dockerfile']]);
  test('runs the built-in Dockerfile frontend with the opts as sent, with or without frontend containers, top level and nested', async () => {
    const seen: Array<{ name: string; opts: ReadonlyMap<string, string> }> = [];
    const registry = new FrontendRegistry().register('dockerfile.v0', recorder(seen, 'dockerfile'));
    const inputs = new Map([['context', await contextDefinition()]]);
    const noContainers = fakeBackend({ Dockerfile: 'FROM x\n' });
    let containers = 0;
    const withContainers = Object.assign(fakeBackend({ Dockerfile: 'FROM x\n' }), {
      runFrontendContainer: async () => {
        containers++;
        return { exitCode: 1 };
      },
    });
    for (const [backend, source] of [[noContainers, 'docker/dockerfile:1'], [withContainers, 'docker.io/docker/dockerfile:1.7@sha256:' + 'a'.repeat(64)]] as const) {
      const result = await new Gateway(backend, registry).build({ frontend: 'gateway.v0', opts: opts(source), inputs });
      expect(result.frontend).toBe('gateway.v0');
      expect(seen.at(-1)?.name).toBe('dockerfile');
      expect(seen.at(-1)?.opts.get('source')).toBe(source);
      expect(seen.at(-1)?.opts.get('cmdline')).toBe(`${source} --flag`);
    }
    // Nested: a wrapper's solveFrontend of gateway.v0 with that source.
    const wrapper: Frontend = async (client) => client.solveFrontend?.({ frontend: 'gateway.v0', opts: opts('docker/dockerfile'), inputs: client.inputs }) ?? Promise.reject(new Error('no solveFrontend'));
    seen.length = 0;
    await new Gateway(withContainers, new FrontendRegistry().register('dockerfile.v0', recorder(seen, 'dockerfile')).register('wrapper', wrapper)).build({ frontend: 'wrapper', opts: new Map(), inputs });
    expect(seen.map((s) => s.name)).toEqual(['dockerfile']);
    expect(containers).toBe(0);
  });

  test('another image stays an image; a named context for the dockerfile image keeps it an image too', async () => {
    const seen: Array<{ name: string; opts: ReadonlyMap<string, string> }> = [];
    const registry = new FrontendRegistry().register('dockerfile.v0', recorder(seen, 'dockerfile'));
    const inputs = new Map([['context', await contextDefinition()]]);
    const gateway = new Gateway(fakeBackend({}), registry);
    await expect(gateway.build({ frontend: 'gateway.v0', opts: opts('example.com/fe:1'), inputs })).rejects.toMatchObject({ code: 'KLN0601' });
    const named = new Map([...opts('docker/dockerfile:1'), ['context:docker/dockerfile:1', 'docker-image://example.com/fe:1']]);
    await expect(gateway.build({ frontend: 'gateway.v0', opts: named, inputs })).rejects.toMatchObject({ code: 'KLN0601' });
    expect(seen).toEqual([]);
  });
});
