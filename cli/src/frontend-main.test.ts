import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { encodeDefinition, local, type Definition, type FrontendClient, type Ref, type SolveFrontendRequest } from '@kiln/llb-core';
import { serveLLBBridge } from '@kiln/gateway';
import { frontendMain } from './frontend-main.js';

function streamPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

/** The gateway side as a fake FrontendClient: no solver, it only answers what the frontend asks. */
function fakeClient(files: ReadonlyMap<string, string>): FrontendClient {
  const ref = (definition: Definition): Ref => ({
    definition,
    async readFile(path) {
      const f = files.get(path);
      if (f === undefined) throw new Error(`open ${path}: no such file or directory`);
      return new TextEncoder().encode(f);
    },
    async readDir() {
      return [];
    },
    async statFile(path) {
      return { path, mode: 0o644, uid: 0, gid: 0, size: 0, modTime: 0n };
    },
  });
  return {
    opts: new Map(),
    inputs: new Map(),
    solve: async (r) => ref(r.definition),
    resolveImageConfig: async () => {
      throw new Error('no images here');
    },
    warn: () => undefined,
  };
}

describe('frontendMain (kiln frontend image entry)', () => {
  test('an unknown frontend name: Return with the error (KLN0601 text), exit code 1, the error on stderr', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fakeClient(new Map()));
    let stderr = '';
    const code = await frontendMain(['kiln/nope'], { stream: frontendSide, stderr: { write: (s: string) => ((stderr += s), true) }, env: {} });
    expect(code).toBe(1);
    expect(stderr).toContain('KLN0601: unknown frontend "kiln/nope"');
    await expect(served).rejects.toMatchObject({ code: 'KLN0610', message: 'unknown frontend "kiln/nope"' });
  });

  test('the Dockerfile frontend by default: a missing Dockerfile input fails through Return', async () => {
    const [daemonSide, frontendSide] = streamPair();
    const served = serveLLBBridge(daemonSide, fakeClient(new Map()));
    let stderr = '';
    const code = await frontendMain([], { stream: frontendSide, stderr: { write: (s: string) => ((stderr += s), true) }, env: { BUILDKIT_FRONTEND_OPT_0: 'filename=Dockerfile' } });
    expect(code).toBe(1);
    const err = await served.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'KLN0610' });
    expect(stderr).toContain(`kiln frontend dockerfile.v0: `);
    expect(stderr).toContain((err as Error).message);
  });

  test('no LLBBridge on the other end: exit code 1 and a message', async () => {
    // The other end hangs up at once (a daemon that closed the container's stdin).
    const [daemonSide, frontendSide] = streamPair();
    daemonSide.end();
    let stderr = '';
    const code = await frontendMain([], { stream: frontendSide, stderr: { write: (s: string) => ((stderr += s), true) }, env: {} });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^kiln frontend: cannot connect to LLBBridge: /);
  });

  describe('# syntax= forwarding inside the frontend container (BuildKit forwardGateway)', () => {
    /** A daemon side with a `dockerfile` input holding `files`, recording solveFrontend calls. */
    async function daemon(files: Record<string, string>) {
      const base = fakeClient(new Map(Object.entries(files)));
      const forwarded: SolveFrontendRequest[] = [];
      const dockerfile = await local('dockerfile', { sharedKeyHint: 'dockerfile' }).marshal();
      const answer = base.solve({ definition: dockerfile });
      const client: FrontendClient = {
        ...base,
        inputs: new Map([['dockerfile', dockerfile]]),
        solveFrontend: async (r) => {
          forwarded.push(r);
          return { ref: await answer, metadata: new Map([['containerimage.config', new TextEncoder().encode('{"from":"forwarded"}')]]) };
        },
      };
      const [daemonSide, frontendSide] = streamPair();
      return { forwarded, dockerfile, answer, served: serveLLBBridge(daemonSide, client), frontendSide };
    }
    const io = (stream: Duplex, env: Record<string, string>) => ({ stream, stderr: { write: () => true }, env });

    test('a syntax naming a frontend image: solveFrontend gateway.v0 with the opts plus source and cmdline, and the inputs; its result is returned', async () => {
      const d = await daemon({ 'ci/Dockerfile': '# syntax = example.com/team/fe:1 --mode=x\nFROM scratch\n' });
      const code = await frontendMain(['dockerfile.v0'], io(d.frontendSide, { BUILDKIT_FRONTEND_OPT_0: 'filename=ci/Dockerfile', BUILDKIT_FRONTEND_OPT_1: 'build-arg:A=1' }));
      expect(code).toBe(0);
      expect(d.forwarded).toHaveLength(1);
      const r = d.forwarded[0];
      expect(r?.frontend).toBe('gateway.v0');
      expect([...(r?.opts ?? [])]).toEqual([['filename', 'ci/Dockerfile'], ['build-arg:A', '1'], ['source', 'example.com/team/fe:1'], ['cmdline', 'example.com/team/fe:1 --mode=x']]);
      expect([...(r?.inputs?.keys() ?? [])]).toEqual(['dockerfile']);
      expect(encodeDefinition(r?.inputs?.get('dockerfile') as Definition)).toEqual(encodeDefinition(d.dockerfile));
      const result = await d.served;
      expect(result.ref).toBe(await d.answer);
      expect(new TextDecoder().decode(result.metadata.get('containerimage.config'))).toBe('{"from":"forwarded"}');
    });

    test('BUILDKIT_SYNTAX forwards too; a forwarded request (cmdline set) and docker/dockerfile stay here', async () => {
      const a = await daemon({ Dockerfile: 'FROM scratch\n' });
      expect(await frontendMain([], io(a.frontendSide, { BUILDKIT_FRONTEND_OPT_0: 'build-arg:BUILDKIT_SYNTAX=example.com/fe' }))).toBe(0);
      expect(a.forwarded.map((r) => r.opts.get('source'))).toEqual(['example.com/fe']);
      await a.served;
      for (const [files, env] of [
        [{ Dockerfile: '# syntax=example.com/fe\nFROM scratch\n' }, { BUILDKIT_FRONTEND_OPT_0: 'cmdline=example.com/fe' }],
        [{ Dockerfile: '# syntax=docker/dockerfile:1.7\nFROM scratch\n' }, {}],
      ] as const) {
        const d = await daemon(files);
        expect(await frontendMain([], io(d.frontendSide, env))).toBe(0);
        expect(d.forwarded).toEqual([]);
        // The Dockerfile frontend itself built it: its image config, not the forwarded answer.
        const result = await d.served;
        expect(new TextDecoder().decode(result.metadata.get('containerimage.config'))).not.toContain('forwarded');
      }
    });

    test('no inputs (buildctl --frontend gateway.v0 --local dockerfile=.): the Dockerfile comes from the local source dockerfile, as dockerui reads it, and its syntax forwards', async () => {
      const base = fakeClient(new Map([['ci.Dockerfile', '# syntax=example.com/fe:2\nFROM scratch\n']]));
      const solved: Definition[] = [];
      const forwarded: SolveFrontendRequest[] = [];
      const client: FrontendClient = {
        ...base,
        solve: async (r) => (solved.push(r.definition), base.solve(r)),
        solveFrontend: async (r) => (forwarded.push(r), { metadata: new Map([['by', new TextEncoder().encode('fe')]]) }),
      };
      const [daemonSide, frontendSide] = streamPair();
      const served = serveLLBBridge(daemonSide, client);
      expect(await frontendMain(['dockerfile.v0'], io(frontendSide, { BUILDKIT_FRONTEND_OPT_0: 'filename=ci.Dockerfile' }))).toBe(0);
      expect(forwarded.map((r) => [r.frontend, r.opts.get('source'), r.opts.get('cmdline'), r.inputs])).toEqual([['gateway.v0', 'example.com/fe:2', 'example.com/fe:2', undefined]]);
      // What was read is the Dockerfile frontend's own load of its build definition (same LLB, solved once by the daemon).
      const load = await local('dockerfile', { followPaths: ['ci.Dockerfile', 'ci.Dockerfile.dockerignore'], sharedKeyHint: 'dockerfile', customName: '[internal] load build definition from ci.Dockerfile' }).marshal();
      expect(solved.map((d) => Buffer.from(encodeDefinition(d)).toString('hex'))).toEqual([Buffer.from(encodeDefinition(load)).toString('hex')]);
      expect(new TextDecoder().decode((await served).metadata.get('by'))).toBe('fe');

      // A syntax that stays here: the Dockerfile frontend then loads the same Definition.
      const here: Definition[] = [];
      const [d2, f2] = streamPair();
      const plain = fakeClient(new Map([['Dockerfile', '# syntax=docker/dockerfile:1\nFROM scratch\n']]));
      const stays = serveLLBBridge(d2, { ...plain, solve: async (r) => (here.push(r.definition), plain.solve(r)) });
      expect(await frontendMain([], io(f2, {}))).toBe(0);
      await stays;
      const hex = here.map((d) => Buffer.from(encodeDefinition(d)).toString('hex'));
      expect(hex[0]).toBe(Buffer.from(encodeDefinition(await local('dockerfile', { followPaths: ['Dockerfile', 'Dockerfile.dockerignore'], sharedKeyHint: 'dockerfile', customName: '[internal] load build definition from Dockerfile' }).marshal())).toString('hex'));
      expect(hex[1]).toBe(hex[0]);
    });

    test('a failing forward is the Return error, with the nested message', async () => {
      const [daemonSide, frontendSide] = streamPair();
      const failing: FrontendClient = {
        ...fakeClient(new Map([['Dockerfile', '# syntax=example.com/fe\nFROM scratch\n']])),
        inputs: new Map([['dockerfile', await local('dockerfile', { sharedKeyHint: 'dockerfile' }).marshal()]]),
        solveFrontend: async () => {
          throw Object.assign(new Error('frontend example.com/fe: not found in registry'), { code: 'KLN0607' });
        },
      };
      const served = serveLLBBridge(daemonSide, failing);
      expect(await frontendMain([], io(frontendSide, {}))).toBe(1);
      await expect(served).rejects.toMatchObject({ code: 'KLN0610', message: 'frontend example.com/fe: not found in registry', frontendCode: 'KLN0607' });
    });
  });
});
