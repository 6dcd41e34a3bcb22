import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { Definition, FrontendClient, Ref } from '@kiln/llb-core';
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
});
