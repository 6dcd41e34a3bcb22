/**
 * What build code may not do in the evaluator (a real child `node`): reach Node modules at run
 * time, signal other processes (SIGUSR1 opens a Node parent's inspector, which the open network
 * could then reach), run forever, or take all memory.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { bundleBuildFile, type SourceReader } from '../load/bundle.js';
import { evaluateBundle, type EvaluateOptions, type Handlers } from './host.js';
import type { InitParams } from './protocol.js';

const memory = (files: Record<string, string>): SourceReader => ({
  async read(path) {
    const f = files[path];
    return f === undefined ? undefined : new TextEncoder().encode(f);
  },
});

const init: InitParams = { args: {}, platforms: ['linux/amd64'], inputs: {} };
const refuse = async (): Promise<never> => {
  throw new Error('not in this test');
};
const handlers: Handlers = { solve: refuse, readFile: refuse, readDir: refuse, statFile: refuse, resolveImageConfig: refuse, warn: () => undefined };

/** Evaluates a build whose default export runs `body` (TypeScript) and returns scratch. */
const run = async (body: string, opts: EvaluateOptions = {}) =>
  evaluateBundle(await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `import { scratch } from "kiln";\nexport default async () => {\n${body}\n  return scratch();\n};\n` })), init, handlers, opts);

describe('evaluator sandbox', () => {
  test('process.kill is unavailable (no signal to the parent: SIGUSR1 would open its inspector)', async () => {
    const p = run(`  (globalThis as any).process.kill((globalThis as any).process.ppid, 0);`);
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3 } });
    await expect(p).rejects.toThrow(/process\.kill is not available in a build file/);
  });

  test('process._debugProcess and process._kill are unavailable', async () => {
    await expect(run(`  (globalThis as any).process._debugProcess((globalThis as any).process.ppid);`)).rejects.toThrow(/process\._debugProcess is not available/);
    await expect(run(`  (globalThis as any).process._kill((globalThis as any).process.ppid, 0);`)).rejects.toThrow(/process\._kill is not available/);
  });

  test('a computed import() of a Node module is refused (node:net would reach unix sockets such as the daemon\'s)', async () => {
    await expect(run(`  const m = "node:" + "net";\n  await import(m);`)).rejects.toThrow(/import\("node:net"\) is not available in a build file/);
    await expect(run(`  const m = "child_" + "process";\n  await import(m);`)).rejects.toThrow(/import\("child_process"\) is not available/);
  });

  test('no worker thread for build code (the permission model allows workers for Node\'s own loader hooks), nor node:module to load one', async () => {
    await expect(run(`  const m = "node:worker" + "_threads";\n  await import(m);`)).rejects.toThrow(/import\("node:worker_threads"\) is not available/);
    await expect(run(`  const m = "node:" + "module";\n  await import(m);`)).rejects.toThrow(/import\("node:module"\) is not available/);
    // No global Worker in Node 20 or 22 either.
    await expect(run(`  new (globalThis as any).Worker("data:,1");`)).rejects.toThrow(/Worker is not a constructor/);
  });

  test('process.getBuiltinModule and data: URL imports are refused', async () => {
    await expect(run(`  (globalThis as any).process.getBuiltinModule("net");`)).rejects.toThrow(/process\.getBuiltinModule is not available/);
    await expect(run(`  const u = "data:text/javascript,export default 1";\n  await import(u);`)).rejects.toThrow(/import\("data:text\/javascript,export default 1"\) is not available/);
  });

  test('no network from build code: fetch, WebSocket and EventSource throw, undici\'s dispatcher cannot be reached, and a local server sees no connection', async () => {
    let connections = 0;
    const server = createServer((_req, res) => res.end('reached'));
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await expect(run(`  await fetch("http://127.0.0.1:${port}/");`)).rejects.toThrow(/fetch is not available in a build file/);
      await expect(run(`  new (globalThis as any).WebSocket("ws://127.0.0.1:${port}/");`)).rejects.toThrow(/not available in a build file|WebSocket is not a constructor/);
      await expect(run(`  (globalThis as any).fetch = 1;`)).rejects.toThrow(/read.only|Cannot assign/);
      await expect(run(`  if ((globalThis as any)[Symbol.for("undici.globalDispatcher.1")] !== undefined) throw new Error("dispatcher reachable");\n  Object.defineProperty(globalThis, Symbol.for("undici.globalDispatcher.1"), { value: {} });`)).rejects.toThrow(/Cannot redefine property/);
      expect(connections).toBe(0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a forged request on stdout for a method that is no ctx call is refused, not run (it crashed the parent)', async () => {
    const lines = [...['warn', 'constructor', 'toString'].map((method) => JSON.stringify({ jsonrpc: '2.0', id: 99, method, params: {} })), 'null', '{"jsonrpc":"2.0","method":"warn"}'];
    for (const forged of lines) {
      const r = await run(`  (globalThis as any).process.stdout.write(${JSON.stringify(`${forged}
`)});
  await new Promise((res) => setTimeout(res, 100));`);
      expect(r.results).toHaveLength(1);
    }
  });

  test('an endless line on stdout is cut off with an error, not buffered until kiln runs out of memory', async () => {
    const p = run(`  const chunk = "x".repeat(64 * 1024);\n  for (let i = 0; i < 64; i++) (globalThis as any).process.stdout.write(chunk);\n  await new Promise((res) => setTimeout(res, 200));`, { maxMessageBytes: 1024 * 1024 });
    await expect(p).rejects.toMatchObject({ code: 'KLN0804', message: expect.stringContaining('longer than 1 MiB') });
  });

  test('run as root, the evaluator drops to nobody (65534) before any build code runs', async () => {
    expect(process.getuid?.()).toBe(0); // kiln runs builds as root (runc, overlayfs)
    const p = run(`  const proc = (globalThis as any).process;\n  throw new Error(\`ids \${proc.getuid()}:\${proc.getgid()}:\${proc.getgroups().join(",")}\`);`);
    await expect(p).rejects.toThrow(/ids 65534:65534:(65534)?$/);
  });

  test('an endless loop is stopped after the time limit with a clear error', async () => {
    const t0 = Date.now();
    const p = run(`  for (;;) {}`, { timeoutMs: 1500 });
    await expect(p).rejects.toMatchObject({ code: 'KLN0804', message: expect.stringContaining('did not finish within 1.5 s') });
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  test('a kernel CPU limit stops the evaluator even when the parent cannot (killed, the timer gone)', async () => {
    const p = run(`  for (;;) {}`, { timeoutMs: 600_000, cpuLimitSeconds: 1 });
    await expect(p).rejects.toMatchObject({ code: 'KLN0804', message: expect.stringContaining('used more than 1 s of CPU') });
  });

  test('time spent waiting on ctx calls does not count against the limit', async () => {
    const slow: Handlers = {
      ...handlers,
      solve: async () => {
        await new Promise((res) => setTimeout(res, 3000));
        return { ref: 'r1' };
      },
      readFile: async () => ({ data: Buffer.from('x').toString('base64') }),
    };
    const bundle = await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `import { scratch, type Ctx } from "kiln";\nexport default async (ctx: Ctx) => scratch().mkfile("/t", await ctx.solve(scratch()).readFile("/x"));\n` }));
    // The wait is longer than the limit; the limit is long enough for node's own start-up on a
    // loaded 2-core machine (1 s was not, with the suite's other files running beside it).
    const r = await evaluateBundle(bundle, init, slow, { timeoutMs: 2500 });
    expect(r.results).toHaveLength(1);
  });

  test('a build that allocates without bound fails with an out-of-memory error', async () => {
    const p = run(`  const a: string[] = [];\n  for (let i = 0; ; i++) a.push("x".repeat(1000) + i);`, { memoryMb: 64 });
    await expect(p).rejects.toMatchObject({ code: 'KLN0804', message: expect.stringContaining('ran out of memory (64 MB)') });
  });
});

describe('what a bundle may import', () => {
  test('only the Node modules the DSL runtime needs: any other one kiln code imports becomes importable by build code', async () => {
    const bundle = await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': 'import { image } from "kiln";\nexport default () => image("busybox").run("true");\n' }));
    // node:net came in with an IP check in llb-core once, and build code could then import() it.
    expect(bundle.imports.filter((i) => /^(node:)?(net|child_process|worker_threads|module|fs|fs\/promises|http|https|dgram|tls|dns|vm|inspector|cluster)$/.test(i))).toEqual([]);
  });
});
